/*
 * Repeating timers (loop_call_every), on the virtual clock: runs one period
 * apart, first one period after the call; cancelled from its own callback,
 * from outside, or in the batch it is queued in; after a stall, one late
 * run and then now + period, never a burst.
 */
#include "fixtures.h"
#include "record.h"

#include <errno.h>
#include <unistd.h>

/* A repeating timer that logs each run, and cancels itself after stop_after. */
struct every {
    struct record *log;
    int id;
    loop_handle self;
    int stop_after; /* 0: never */
    int runs;
    int cancel_rc; /* what cancelling itself returned */
};

/* ---- call_every ---------------------------------------------------------- */

static void every_cb(loop_t *loop, void *arg)
{
    struct every *e = arg;
    record_add(e->log, loop, e->id);
    e->runs++;
    if (e->stop_after && e->runs == e->stop_after)
        e->cancel_rc = loop_cancel(loop, e->self);
}

static void test_call_every_runs_at_multiples_of_its_period(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct record log = {0};
    struct every e = {.log = &log, .id = 1, .stop_after = 8, .cancel_rc = 99};
    assert_int_equal(loop_advance(l, LOOP_MS(7)), 0);
    assert_int_equal(loop_call_every(l, LOOP_MS(100), every_cb, &e, &e.self), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(log.n, 8);
    for (int i = 0; i < 8; i++)
        assert_u64_eq(log.now[i], LOOP_MS(7) + (uint64_t)(i + 1) * LOOP_MS(100));
    assert_int_equal(loop_free(l), 0);
}

static void test_cancel_of_call_every_from_its_own_callback_returns_0_and_stops_it(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct record log = {0};
    struct every e = {.log = &log, .id = 1, .stop_after = 3, .cancel_rc = 99};
    assert_int_equal(loop_call_every(l, LOOP_MS(10), every_cb, &e, &e.self), 0);
    /* loop_run returns only if the cancelled timer no longer counts. */
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(e.cancel_rc, 0);
    assert_int_equal(e.runs, 3);
    assert_u64_eq(loop_now(l), LOOP_MS(30));
    assert_int_equal(loop_cancel(l, e.self), -ENOENT);
    assert_int_equal(loop_free(l), 0);
}

static void test_cancel_of_call_every_from_outside_stops_it(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    struct record log = {0};
    struct every e = {.log = &log, .id = 1};
    assert_int_equal(loop_call_every(l, LOOP_MS(10), every_cb, &e, &e.self), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(e.runs, 4);
    /* The handle stays valid across runs. */
    assert_int_equal(loop_cancel(l, e.self), 0);
    assert_int_equal(loop_cancel(l, e.self), -ENOENT);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(e.runs, 4);
    assert_u64_eq(loop_now(l), LOOP_MS(40));
    assert_int_equal(loop_free(l), 0);
}

struct every_canceller {
    loop_handle target;
    int rc;
};

static void cancel_target_cb(loop_t *loop, void *arg)
{
    struct every_canceller *c = arg;
    c->rc = loop_cancel(loop, c->target);
}

static void test_call_every_cancelled_in_the_same_batch_never_runs_again(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    struct record log = {0};
    struct every e = {.log = &log, .id = 1};
    struct every_canceller c = {.rc = 99};
    assert_int_equal(loop_call_every(l, LOOP_MS(10), every_cb, &e, &e.self), 0);
    /* Due at 20 ms like the every timer's second run, but scheduled
     * earlier (that run is armed only at 10 ms): it runs first in the
     * 20 ms batch and cancels the run queued behind it. */
    assert_int_equal(loop_call_at(l, LOOP_MS(20), cancel_target_cb, &c, NULL), 0);
    c.target = e.self;
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(e.runs, 1);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_u64_eq(loop_now(l), LOOP_MS(20));
    assert_int_equal(c.rc, 0);
    assert_int_equal(e.runs, 1);
    /* Nothing is left: run returns at once. */
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(e.runs, 1);
    assert_u64_eq(loop_now(l), LOOP_MS(20));
    assert_int_equal(loop_free(l), 0);
}

static void test_call_every_after_an_outside_stall_runs_once_then_now_plus_period(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    struct record log = {0};
    struct every e = {.log = &log, .id = 1, .stop_after = 4};
    assert_int_equal(loop_call_every(l, LOOP_MS(100), every_cb, &e, &e.self), 0);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(e.runs, 1);
    assert_u64_eq(log.now[0], LOOP_MS(100));

    /* The loop stalls for ten periods. */
    assert_int_equal(loop_advance(l, LOOP_MS(1000)), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(e.runs, 2); /* one late run, not a burst of ten */
    assert_u64_eq(log.now[1], LOOP_MS(1100));
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(e.runs, 2);

    assert_int_equal(loop_run(l), 0);
    assert_int_equal(e.runs, 4);
    assert_u64_eq(log.now[2], LOOP_MS(1200));
    assert_u64_eq(log.now[3], LOOP_MS(1300));
    assert_int_equal(loop_free(l), 0);
}

static void stalling_every_cb(loop_t *loop, void *arg)
{
    struct every *e = arg;
    every_cb(loop, arg);
    if (e->runs == 2)
        assert_int_equal(loop_advance(loop, LOOP_MS(1000)), 0);
}

static void test_call_every_after_a_stall_in_its_callback_does_not_burst(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    struct record log = {0};
    struct every e = {.log = &log, .id = 1, .stop_after = 6};
    assert_int_equal(loop_call_every(l, LOOP_MS(100), stalling_every_cb, &e, &e.self), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(e.runs, 6);
    assert_u64_eq(log.now[0], LOOP_MS(100));
    assert_u64_eq(log.now[1], LOOP_MS(200));
    /*
     * The next deadline is set when a run is queued, before its callback
     * runs (include/loop.h): the second run, queued at 200 ms, set it to
     * 300 ms, and then stalled the loop until 1200 ms.  So the third run
     * comes once, late, at 1200 ms; queueing it finds 300 + 100 ms past
     * too, so the next deadline is now + period: 1300 ms, and one period
     * apart from there.  Never a burst of catch-up runs.
     */
    assert_u64_eq(log.now[2], LOOP_MS(1200));
    for (int i = 3; i < 6; i++)
        assert_u64_eq(log.now[i], LOOP_MS(1200) + (uint64_t)(i - 2) * LOOP_MS(100));
    assert_int_equal(loop_free(l), 0);
}

static void test_call_every_first_runs_one_period_after_the_call(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    struct record log = {0};
    struct every e = {.log = &log, .id = 1, .stop_after = 1};
    assert_int_equal(loop_advance(l, LOOP_MS(123)), 0);
    assert_int_equal(loop_call_every(l, LOOP_SEC(2), every_cb, &e, &e.self), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(e.runs, 1);
    assert_u64_eq(log.now[0], LOOP_MS(123) + LOOP_SEC(2));
    assert_int_equal(loop_free(l), 0);
}

static void test_call_every_with_period_0_is_einval_and_schedules_nothing(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    int a = 0;
    loop_handle h = {UINT64_C(0xfeed)};
    assert_int_equal(loop_call_every(l, 0, count_cb, &a, &h), -EINVAL);
    assert_true(h.id == 0);
    assert_int_equal(loop_call_every(l, 0, count_cb, &a, NULL), -EINVAL);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(a, 0);
    assert_u64_eq(loop_now(l), 0);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_every_runs_at_multiples_of_its_period),
        cmocka_unit_test(test_cancel_of_call_every_from_its_own_callback_returns_0_and_stops_it),
        cmocka_unit_test(test_cancel_of_call_every_from_outside_stops_it),
        cmocka_unit_test(test_call_every_cancelled_in_the_same_batch_never_runs_again),
        cmocka_unit_test(test_call_every_after_an_outside_stall_runs_once_then_now_plus_period),
        cmocka_unit_test(test_call_every_after_a_stall_in_its_callback_does_not_burst),
        cmocka_unit_test(test_call_every_first_runs_one_period_after_the_call),
        cmocka_unit_test(test_call_every_with_period_0_is_einval_and_schedules_nothing),
    };
    alarm(120);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
