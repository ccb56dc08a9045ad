/*
 * Timers on the virtual clock (exact and deterministic): call_later and
 * call_at run in (deadline, schedule order), a past deadline runs at the
 * next iteration's timer phase, cancelled timers never run, deadlines past
 * the end of time never run, and bad arguments schedule nothing.  The
 * clock and deadlines: test_timer_deadlines.c; call_every:
 * test_timers_every.c; waits on the real clock: test_timer_waits.c.
 */
#include "fixtures.h"
#include "record.h"
#include "rng.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static uint64_t rng_state;

static uint64_t rng(void)
{
    return rng_next(&rng_state);
}

/* ---- order ------------------------------------------------------------- */

static void test_timers_run_in_deadline_order(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct record log = {0};
    const int ms[] = {50, 10, 30, 20, 40, 5, 45};
    const int n = (int)(sizeof ms / sizeof ms[0]);
    struct mark e[7];
    for (int i = 0; i < n; i++) {
        e[i] = (struct mark){&log, ms[i]};
        assert_int_equal(loop_call_later(l, LOOP_MS(ms[i]), record_cb, &e[i], NULL), 0);
    }
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(log.n, n);
    const int want[] = {5, 10, 20, 30, 40, 45, 50};
    for (int i = 0; i < n; i++) {
        assert_int_equal(log.id[i], want[i]);
        assert_u64_eq(log.now[i], LOOP_MS(want[i]));
    }
    assert_int_equal(loop_free(l), 0);
}

static void test_timer_ties_run_in_schedule_order(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct record log = {0};
    /* Interleave two deadlines, scheduled through both call_at and
     * call_later (the same deadline on the virtual clock). */
    struct mark e[200];
    for (int i = 0; i < 200; i++) {
        e[i] = (struct mark){&log, i};
        uint64_t when = (i % 2) ? LOOP_SEC(1) : LOOP_SEC(2);
        if (i % 3)
            assert_int_equal(loop_call_at(l, when, record_cb, &e[i], NULL), 0);
        else
            assert_int_equal(loop_call_later(l, when, record_cb, &e[i], NULL), 0);
    }
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(log.n, 200);
    /* Odd ids (1 s) first, in order, then even ids (2 s), in order. */
    for (int i = 0; i < 100; i++) {
        assert_int_equal(log.id[i], 2 * i + 1);
        assert_u64_eq(log.now[i], LOOP_SEC(1));
        assert_int_equal(log.id[100 + i], 2 * i);
        assert_u64_eq(log.now[100 + i], LOOP_SEC(2));
    }
    assert_int_equal(loop_free(l), 0);
}

/*
 * Many timers over few distinct deadlines, with cancellations mixed in:
 * the order of runs must be the stable sort of the live ones by deadline.
 */
enum { RANDOM_TIMERS = 5000 };

struct rnd_timer {
    uint64_t when;
    int seq;
    loop_handle h;
    int cancelled;
    int runs;
};

static struct rnd_timer rnd[RANDOM_TIMERS];
static int rnd_order[RANDOM_TIMERS];
static int rnd_nran;
static int rnd_early;

static void rnd_cb(loop_t *loop, void *arg)
{
    struct rnd_timer *t = arg;
    t->runs++;
    if (loop_now(loop) < t->when)
        rnd_early++;
    rnd_order[rnd_nran++] = t->seq;
    /* Now and then cancel a timer that has not run yet, from a callback:
     * even one due at this very moment. */
    if (t->seq % 7 == 0) {
        int victim = (int)(rng() % RANDOM_TIMERS);
        struct rnd_timer *v = &rnd[victim];
        int rc = loop_cancel(loop, v->h);
        if (v->runs || v->cancelled)
            assert_int_equal(rc, -ENOENT);
        else {
            assert_int_equal(rc, 0);
            v->cancelled = 1;
        }
    }
}

static int cmp_stable(const void *a, const void *b)
{
    const struct rnd_timer *x = &rnd[*(const int *)a], *y = &rnd[*(const int *)b];
    if (x->when != y->when)
        return x->when < y->when ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static void test_random_timers_run_in_stable_deadline_order(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    rng_state = UINT64_C(0x9e3779b97f4a7c15);
    rnd_nran = 0;
    rnd_early = 0;
    for (int i = 0; i < RANDOM_TIMERS; i++) {
        rnd[i] = (struct rnd_timer){.when = LOOP_MS(rng() % 20), .seq = i};
        assert_int_equal(loop_call_at(l, rnd[i].when, rnd_cb, &rnd[i], &rnd[i].h), 0);
        if (rng() % 5 == 0) {
            assert_int_equal(loop_cancel(l, rnd[i].h), 0);
            rnd[i].cancelled = 1;
        }
    }
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(rnd_early, 0);

    int expect[RANDOM_TIMERS];
    int n = 0;
    for (int i = 0; i < RANDOM_TIMERS; i++) {
        assert_int_equal(rnd[i].runs, rnd[i].cancelled ? 0 : 1);
        if (rnd[i].runs)
            expect[n++] = i;
    }
    assert_int_equal(rnd_nran, n);
    qsort(expect, (size_t)n, sizeof expect[0], cmp_stable);
    for (int i = 0; i < n; i++)
        assert_int_equal(rnd_order[i], expect[i]);
    assert_int_equal(loop_free(l), 0);
}

/* ---- call_at ------------------------------------------------------------ */

struct past {
    struct mark soon, timer;
};

static void schedule_past_cb(loop_t *loop, void *arg)
{
    struct past *p = arg;
    /* Scheduled during iteration k: both wait for k + 1, the call_soon
     * first (queued before the poll), the timer in the timer phase. */
    assert_int_equal(loop_call_at(loop, LOOP_SEC(5), record_cb, &p->timer, NULL), 0);
    assert_int_equal(loop_call_soon(loop, record_cb, &p->soon, NULL), 0);
}

static void test_call_at_in_the_past_runs_at_the_next_iterations_timer_phase(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    struct record log = {0};
    struct past p = {.soon = {&log, 1}, .timer = {&log, 2}};
    assert_int_equal(loop_advance(l, LOOP_SEC(10)), 0);
    assert_int_equal(loop_call_soon(l, schedule_past_cb, &p, NULL), 0);

    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(log.n, 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(log.n, 2);
    assert_int_equal(log.id[0], 1);
    assert_int_equal(log.id[1], 2);
    assert_u64_eq(log.now[1], LOOP_SEC(10)); /* no jump for a past deadline */

    /* Before any iteration, call_at(0) runs in the first one. */
    int a = 0;
    assert_int_equal(loop_call_at(l, 0, count_cb, &a, NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(a, 1);
    assert_int_equal(loop_free(l), 0);
}

static void test_timer_due_while_callbacks_run_waits_for_the_next_iteration(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    struct record log = {0};
    struct mark first = {&log, 1};
    struct past p = {.soon = {&log, 3}, .timer = {&log, 4}};
    /* A timer callback schedules an already-due timer: not this batch. */
    assert_int_equal(loop_advance(l, LOOP_SEC(6)), 0);
    assert_int_equal(loop_call_at(l, LOOP_SEC(1), schedule_past_cb, &p, NULL), 0);
    assert_int_equal(loop_call_at(l, LOOP_SEC(2), record_cb, &first, NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.id[0], 1);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(log.n, 3);
    assert_int_equal(log.id[1], 3);
    assert_int_equal(log.id[2], 4);
    assert_int_equal(loop_free(l), 0);
}

/* ---- saturation ----------------------------------------------------------- */

static void test_huge_delay_saturates_and_never_runs(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int a = 0, b = 0, c = 0;
    loop_handle ha, hb, hc;
    /* From 5 s, now + UINT64_MAX would wrap to just before 5 s. */
    assert_int_equal(loop_advance(l, LOOP_SEC(5)), 0);
    assert_int_equal(loop_call_later(l, UINT64_MAX, count_cb, &a, &ha), 0);
    assert_int_equal(loop_call_at(l, UINT64_MAX, count_cb, &b, &hb), 0);
    assert_int_equal(loop_call_later(l, UINT64_MAX - LOOP_SEC(1), count_cb, &c, &hc), 0);

    /* The timers keep the loop alive: each capped iteration waits its cap
     * (no spin, no error), and nothing runs. */
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(loop_run_once(l, (int64_t)LOOP_MS(10)), 0);
        assert_u64_eq(loop_now(l), LOOP_SEC(5) + (uint64_t)i * LOOP_MS(10));
    }
    assert_int_equal(a + b + c, 0);

    assert_int_equal(loop_cancel(l, ha), 0);
    assert_int_equal(loop_cancel(l, hb), 0);
    assert_int_equal(loop_cancel(l, hc), 0);
    uint64_t t = loop_now(l);
    /* Nothing left: run returns without moving the clock. */
    assert_int_equal(loop_run(l), 0);
    assert_u64_eq(loop_now(l), t);
    assert_int_equal(a + b + c, 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_huge_period_saturates_and_never_runs(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int a = 0;
    loop_handle h;
    assert_int_equal(loop_advance(l, LOOP_SEC(5)), 0);
    assert_int_equal(loop_call_every(l, UINT64_MAX, count_cb, &a, &h), 0);
    assert_int_equal(loop_run_once(l, (int64_t)LOOP_MS(10)), 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(5) + LOOP_MS(10));
    assert_int_equal(a, 0);
    assert_int_equal(loop_cancel(l, h), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_huge_delay_does_not_disturb_nearer_timers(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    int far = 0, near = 0;
    loop_handle h;
    assert_int_equal(loop_call_later(l, UINT64_MAX, count_cb, &far, &h), 0);
    assert_int_equal(loop_call_later(l, LOOP_SEC(3), count_cb, &near, NULL), 0);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(near, 1);
    assert_u64_eq(loop_now(l), LOOP_SEC(3));
    assert_int_equal(loop_cancel(l, h), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(far, 0);
    assert_int_equal(loop_free(l), 0);
}

/* ---- cancel ----------------------------------------------------------------- */

static void test_cancelled_timer_never_runs_and_does_not_keep_the_loop_alive(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int a = 0, b = 0;
    loop_handle ha;
    assert_int_equal(loop_call_later(l, LOOP_SEC(1), count_cb, &a, &ha), 0);
    assert_int_equal(loop_call_later(l, LOOP_MS(10), count_cb, &b, NULL), 0);
    assert_int_equal(loop_cancel(l, ha), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(a, 0);
    assert_int_equal(b, 1);
    assert_u64_eq(loop_now(l), LOOP_MS(10));
    assert_int_equal(loop_cancel(l, ha), -ENOENT);
    assert_int_equal(loop_free(l), 0);
}

static void test_cancel_of_a_timer_after_it_ran_is_enoent(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int a = 0;
    loop_handle h;
    assert_int_equal(loop_call_at(l, LOOP_MS(1), count_cb, &a, &h), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(a, 1);
    assert_int_equal(loop_cancel(l, h), -ENOENT);
    assert_int_equal(loop_free(l), 0);
}

/* ---- bad arguments ------------------------------------------------------------ */

static void test_timer_calls_with_null_loop_or_fn_are_einval_and_clear_out(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int a = 0;
    loop_handle h;

    h.id = 77;
    assert_int_equal(loop_call_later(NULL, 1, count_cb, &a, &h), -EINVAL);
    assert_true(h.id == 0);
    h.id = 77;
    assert_int_equal(loop_call_later(l, 1, NULL, &a, &h), -EINVAL);
    assert_true(h.id == 0);
    h.id = 77;
    assert_int_equal(loop_call_at(NULL, 1, count_cb, &a, &h), -EINVAL);
    assert_true(h.id == 0);
    h.id = 77;
    assert_int_equal(loop_call_at(l, 1, NULL, &a, &h), -EINVAL);
    assert_true(h.id == 0);
    h.id = 77;
    assert_int_equal(loop_call_every(NULL, 1, count_cb, &a, &h), -EINVAL);
    assert_true(h.id == 0);
    h.id = 77;
    assert_int_equal(loop_call_every(l, 1, NULL, &a, &h), -EINVAL);
    assert_true(h.id == 0);

    assert_int_equal(loop_run(l), 0);
    assert_u64_eq(loop_now(l), 0);
    assert_int_equal(a, 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_timer_calls_accept_a_null_out(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int a = 0;
    assert_int_equal(loop_call_later(l, LOOP_MS(1), count_cb, &a, NULL), 0);
    assert_int_equal(loop_call_at(l, LOOP_MS(2), count_cb, &a, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(a, 2);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_run_in_deadline_order),
        cmocka_unit_test(test_timer_ties_run_in_schedule_order),
        cmocka_unit_test(test_random_timers_run_in_stable_deadline_order),
        cmocka_unit_test(test_call_at_in_the_past_runs_at_the_next_iterations_timer_phase),
        cmocka_unit_test(test_timer_due_while_callbacks_run_waits_for_the_next_iteration),
        cmocka_unit_test(test_huge_delay_saturates_and_never_runs),
        cmocka_unit_test(test_huge_period_saturates_and_never_runs),
        cmocka_unit_test(test_huge_delay_does_not_disturb_nearer_timers),
        cmocka_unit_test(test_cancelled_timer_never_runs_and_does_not_keep_the_loop_alive),
        cmocka_unit_test(test_cancel_of_a_timer_after_it_ran_is_enoent),
        cmocka_unit_test(test_timer_calls_with_null_loop_or_fn_are_einval_and_clear_out),
        cmocka_unit_test(test_timer_calls_accept_a_null_out),
    };
    alarm(120);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
