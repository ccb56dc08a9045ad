/*
 * When a timer runs: never before its deadline by loop_now() (virtual and
 * real clock); call_later counts from the call, call_at(loop_now() + d)
 * from the iteration's start; the virtual clock jumps to the earliest
 * deadline (or by run_once's cap) and loop_advance() moves it by hand.
 */
#include "fixtures.h"
#include "realtime.h"
#include "rng.h"

#include <stdlib.h>
#include <unistd.h>

static uint64_t rng_state;

static uint64_t rng(void)
{
    return rng_next(&rng_state);
}

/* ---- never early ------------------------------------------------------- */

struct deadline_probe {
    uint64_t deadline;
    uint64_t ran_at;
    int runs;
};

static void deadline_cb(loop_t *loop, void *arg)
{
    struct deadline_probe *p = arg;
    p->ran_at = loop_now(loop);
    p->runs++;
}

static void test_timer_never_runs_before_its_deadline_virtual(void **state)
{
    (void)state;
    enum { N = 2000 };
    struct deadline_probe *p = calloc(N, sizeof *p);
    assert_non_null(p);
    rng_state = 12345;
    loop_t *l = new_virtual_loop(false);
    for (int i = 0; i < N; i++) {
        /* Deadlines at arbitrary nanoseconds within 3 s. */
        uint64_t d = rng() % LOOP_SEC(3);
        if (i % 2) {
            p[i].deadline = d;
            assert_int_equal(loop_call_at(l, d, deadline_cb, &p[i], NULL), 0);
        } else {
            p[i].deadline = loop_now(l) + d;
            assert_int_equal(loop_call_later(l, d, deadline_cb, &p[i], NULL), 0);
        }
        /* Sometimes let some time pass between schedules. */
        if (i % 100 == 99)
            assert_int_equal(loop_run_once(l, (int64_t)(rng() % LOOP_MS(50))), 0);
    }
    assert_int_equal(loop_run(l), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(p[i].runs, 1);
        assert_u64_ge(p[i].ran_at, p[i].deadline);
    }
    free(p);
    assert_int_equal(loop_free(l), 0);
}

static void test_timer_never_runs_before_its_deadline_real_clock(void **state)
{
    (void)state;
    enum { N = 20 };
    struct deadline_probe p[N] = {{0}};
    loop_t *l = NULL;
    assert_int_equal(loop_new(&l), 0);
    rng_state = 777;
    for (int i = 0; i < N; i++) {
        /* Delays from 0 to 3 ms, many below a millisecond. */
        uint64_t d = rng() % 3000000u;
        p[i].deadline = loop_now(l) + d;
        assert_int_equal(loop_call_at(l, p[i].deadline, deadline_cb, &p[i], NULL), 0);
    }
    assert_int_equal(loop_run(l), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(p[i].runs, 1);
        assert_u64_ge(p[i].ran_at, p[i].deadline);
    }
    assert_int_equal(loop_free(l), 0);
}

static void test_real_clock_2ms_timer_runs_at_or_after_its_deadline(void **state)
{
    (void)state;
    loop_t *l = NULL;
    assert_int_equal(loop_new(&l), 0);
    struct deadline_probe p = {0};
    uint64_t before = mono_ns();
    assert_int_equal(loop_call_later(l, LOOP_MS(2), deadline_cb, &p, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(p.runs, 1);
    assert_u64_ge(p.ran_at, before + LOOP_MS(2));
    assert_u64_ge(mono_ns(), before + LOOP_MS(2));
    assert_int_equal(loop_free(l), 0);
}

/* ---- the virtual clock ------------------------------------------------- */

static void test_virtual_time_jumps_to_the_earliest_deadline(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    int a = 0, b = 0, c = 0;
    assert_int_equal(loop_call_later(l, LOOP_SEC(9), count_cb, &c, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_SEC(5), count_cb, &a, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_SEC(7), count_cb, &b, NULL), 0);

    assert_int_equal(loop_run_once(l, -1), 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(5));
    assert_int_equal(a + b + c, 1);
    assert_int_equal(a, 1);

    assert_int_equal(loop_run_once(l, -1), 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(7));
    assert_int_equal(b, 1);
    assert_int_equal(c, 0);

    /* Sub-millisecond deadlines are met exactly, too. */
    assert_int_equal(loop_call_at(l, LOOP_SEC(7) + 1234, count_cb, &a, NULL), 0);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(a, 2);
    assert_u64_ge(loop_now(l), LOOP_SEC(7) + 1234);
    assert_true(loop_now(l) < LOOP_SEC(9));

    assert_int_equal(loop_run(l), 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(9));
    assert_int_equal(c, 1);
    assert_int_equal(loop_free(l), 0);
}

static void test_run_once_cap_limits_the_virtual_jump(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    int a = 0;
    assert_int_equal(loop_call_later(l, LOOP_SEC(10), count_cb, &a, NULL), 0);

    assert_int_equal(loop_run_once(l, 0), 0);
    assert_u64_eq(loop_now(l), 0);
    assert_int_equal(loop_run_once(l, (int64_t)LOOP_SEC(1)), 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(1));
    assert_int_equal(a, 0);
    assert_int_equal(loop_run_once(l, 1), 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(1) + 1);
    assert_int_equal(a, 0);

    /* A cap beyond the deadline: the jump stops at the deadline. */
    assert_int_equal(loop_run_once(l, (int64_t)LOOP_SEC(20)), 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(10));
    assert_int_equal(a, 1);
    assert_int_equal(loop_free(l), 0);
}

static void test_run_once_cap_exactly_at_the_deadline_runs_the_timer(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    int a = 0;
    assert_int_equal(loop_call_later(l, LOOP_MS(3), count_cb, &a, NULL), 0);
    assert_int_equal(loop_run_once(l, (int64_t)LOOP_MS(3)), 0);
    assert_u64_eq(loop_now(l), LOOP_MS(3));
    assert_int_equal(a, 1);
    assert_int_equal(loop_free(l), 0);
}

static void test_advance_moves_the_clock_without_running_anything(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    int a = 0, b = 0;
    assert_int_equal(loop_call_later(l, LOOP_SEC(1), count_cb, &a, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_SEC(5), count_cb, &b, NULL), 0);
    assert_int_equal(loop_advance(l, LOOP_SEC(2)), 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(2));
    assert_int_equal(a, 0);

    /* What fell due runs at the next iteration, without a further jump. */
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(a, 1);
    assert_int_equal(b, 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(2));
    assert_int_equal(loop_free(l), 0);
}

struct advancer {
    uint64_t by;
    int *target_runs;
    int target_runs_in_cb;
};

static void advance_cb(loop_t *loop, void *arg)
{
    struct advancer *a = arg;
    assert_int_equal(loop_advance(loop, a->by), 0);
    a->target_runs_in_cb = *a->target_runs;
}

static void test_advance_in_a_callback_runs_due_timers_at_the_next_iteration(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    int t = 0, soon = 0;
    struct advancer a = {.by = LOOP_SEC(1), .target_runs = &t};
    assert_int_equal(loop_call_later(l, LOOP_MS(500), count_cb, &t, NULL), 0);
    assert_int_equal(loop_call_soon(l, advance_cb, &a, NULL), 0);
    assert_int_equal(loop_call_soon(l, count_cb, &soon, NULL), 0);

    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(soon, 1); /* the rest of the snapshot ran */
    assert_int_equal(t, 0);    /* the timer was not in it */
    assert_u64_eq(loop_now(l), LOOP_SEC(1));

    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(t, 1);
    assert_u64_eq(loop_now(l), LOOP_SEC(1));
    assert_int_equal(loop_free(l), 0);
}

/* ---- call_later counts from the call ------------------------------------ */

struct later_from_cb {
    uint64_t advance_by; /* virtual: how far the callback moves the clock */
    uint64_t busy_ns;    /* real: how long the callback spins */
    uint64_t delay;
    uint64_t called_at; /* the clock just before call_later, or loop_now() */
    struct deadline_probe probe;
};

static void later_from_cb(loop_t *loop, void *arg)
{
    struct later_from_cb *c = arg;
    if (c->advance_by)
        assert_int_equal(loop_advance(loop, c->advance_by), 0);
    if (c->busy_ns)
        spin_ns(c->busy_ns);
    c->called_at = c->advance_by ? loop_now(loop) : mono_ns();
    assert_int_equal(loop_call_later(loop, c->delay, deadline_cb, &c->probe, NULL), 0);
}

static void test_call_later_counts_from_the_call_on_the_virtual_clock(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    struct later_from_cb c = {.advance_by = LOOP_SEC(5), .delay = LOOP_SEC(1)};
    assert_int_equal(loop_call_soon(l, later_from_cb, &c, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_u64_eq(c.called_at, LOOP_SEC(5));
    assert_int_equal(c.probe.runs, 1);
    assert_u64_eq(c.probe.ran_at, LOOP_SEC(6));
    assert_int_equal(loop_free(l), 0);
}

static void test_call_later_counts_from_the_call_on_the_real_clock(void **state)
{
    (void)state;
    /*
     * The callback spins 15 ms, then asks for a 10 ms delay.  Counted from
     * the iteration's start, that deadline would already be past; counted
     * from the call, the timer runs no earlier than the clock read just
     * before the call plus 10 ms.  Only a lower bound is asserted.
     */
    loop_t *l = NULL;
    assert_int_equal(loop_new(&l), 0);
    struct later_from_cb c = {.busy_ns = LOOP_MS(15), .delay = LOOP_MS(10)};
    assert_int_equal(loop_call_soon(l, later_from_cb, &c, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(c.probe.runs, 1);
    assert_u64_ge(c.probe.ran_at, c.called_at + LOOP_MS(10));
    assert_int_equal(loop_free(l), 0);
}

static void at_now_plus_cb(loop_t *loop, void *arg)
{
    struct later_from_cb *c = arg;
    c->called_at = loop_now(loop);
    spin_ns(c->busy_ns); /* real time moves on; loop_now() does not */
    assert_int_equal(loop_call_at(loop, loop_now(loop) + c->delay, deadline_cb, &c->probe, NULL),
                     0);
}

static void test_call_at_now_plus_d_counts_from_the_iterations_time(void **state)
{
    (void)state;
    /*
     * The callback spins 20 ms, then asks for loop_now() + 10 ms.
     * loop_now() is still the iteration's time, so that deadline is past
     * when the callback returns: the timer runs at the next iteration, and
     * no poll waits for it (wait_ns stays 0).  Counted from the call, as
     * call_later counts, the loop would wait 10 ms for it.  Only the real
     * clock tells the two apart: a virtual one stands still in a callback.
     */
    loop_t *l = new_real_loop();
    struct later_from_cb c = {.busy_ns = LOOP_MS(20), .delay = LOOP_MS(10)};
    assert_int_equal(loop_call_soon(l, at_now_plus_cb, &c, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(c.probe.runs, 1);
    assert_u64_ge(c.probe.ran_at, c.called_at + LOOP_MS(10)); /* never early */
    loop_stats_t st;
    assert_int_equal(loop_stats(l, &st), 0);
    assert_u64_eq(st.wait_ns, 0);
    assert_int_equal(loop_free(l), 0);
}

/* ---- volume --------------------------------------------------------------------- */

static void test_many_timers_with_distinct_deadlines_all_run_in_order(void **state)
{
    (void)state;
    enum { N = 100000 };
    loop_t *l = new_virtual_loop(false);
    struct deadline_probe *p = calloc(N, sizeof *p);
    assert_non_null(p);
    /* Scheduled in a scrambled order; deadlines i microseconds. */
    for (int k = 0; k < N; k++) {
        int i = (int)(((uint64_t)k * 7919u) % N);
        p[i].deadline = (uint64_t)(i + 1) * 1000u;
        assert_int_equal(loop_call_at(l, p[i].deadline, deadline_cb, &p[i], NULL), 0);
    }
    assert_int_equal(loop_run(l), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(p[i].runs, 1);
        assert_u64_eq(p[i].ran_at, p[i].deadline);
    }
    free(p);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_never_runs_before_its_deadline_virtual),
        cmocka_unit_test(test_timer_never_runs_before_its_deadline_real_clock),
        cmocka_unit_test(test_real_clock_2ms_timer_runs_at_or_after_its_deadline),
        cmocka_unit_test(test_virtual_time_jumps_to_the_earliest_deadline),
        cmocka_unit_test(test_run_once_cap_limits_the_virtual_jump),
        cmocka_unit_test(test_run_once_cap_exactly_at_the_deadline_runs_the_timer),
        cmocka_unit_test(test_advance_moves_the_clock_without_running_anything),
        cmocka_unit_test(test_advance_in_a_callback_runs_due_timers_at_the_next_iteration),
        cmocka_unit_test(test_call_later_counts_from_the_call_on_the_virtual_clock),
        cmocka_unit_test(test_call_later_counts_from_the_call_on_the_real_clock),
        cmocka_unit_test(test_call_at_now_plus_d_counts_from_the_iterations_time),
        cmocka_unit_test(test_many_timers_with_distinct_deadlines_all_run_in_order),
    };
    alarm(120);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
