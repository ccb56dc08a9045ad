/*
 * Sleeping in a task (hop rule 5): sleep(0) is one call_soon hop and no
 * timer; sleep(d) is a timer completing a future, the task running one
 * hop after the timer fires; a cancelled sleep cancels its timer.
 */
#include "task_testing.h"

struct sleeper {
    uint64_t ns;
    int err;
    uint64_t hop_before, hop_after, now_after;
};

static int sleep_once(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct sleeper *s = arg;
    s->hop_before = hops(loop);
    s->err = loop_task_sleep(s->ns);
    s->hop_after = hops(loop);
    s->now_after = loop_now(loop);
    return 0;
}

static void test_sleep_zero_is_one_call_soon_hop_and_no_timer(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    struct sleeper s = {.ns = 0};
    loop_task *t = spawn(l, sleep_once, &s);
    assert_int_equal(loop_run_once(l, 0), 0); /* the task is now asleep */
    assert_int_equal(loop_timeout_ns(l), 0);  /* its step is ready... */
    assert_int_equal(loop_run_once(l, 0), 0); /* ...and ran in the next hop */
    assert_true(loop_future_done(loop_task_future(t)));
    assert_int_equal(s.err, 0);
    assert_u64_eq(s.hop_after, s.hop_before + 1);
    assert_int_equal(loop_timeout_ns(l), -1); /* no timer was left behind */
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
}

static void record_hop(loop_t *loop, void *arg)
{
    *(uint64_t *)arg = hops(loop);
}

static void test_sleep_runs_the_task_one_hop_after_its_timer_fires(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    struct sleeper s = {.ns = LOOP_MS(7)};
    uint64_t timer_hop = 0;
    loop_task *t = spawn(l, sleep_once, &s);
    assert_int_equal(loop_run_once(l, 0), 0); /* asleep: its timer is set */
    /* A timer set now, for the same deadline, fires with the sleep's. */
    assert_int_equal(loop_call_later(l, LOOP_MS(7), record_hop, &timer_hop, NULL), 0);
    assert_int_equal(run_task(l, t, NULL), 0);
    assert_int_equal(s.err, 0);
    assert_u64_eq(s.now_after, LOOP_MS(7));
    assert_u64_eq(s.hop_after, timer_hop + 1);
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
}

static void cancel_it(loop_t *loop, void *arg)
{
    (void)loop;
    assert_int_equal(loop_task_cancel(*(loop_task **)arg), 1);
}

static void test_a_cancelled_sleep_returns_ecanceled_and_cancels_its_timer(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct sleeper s = {.ns = LOOP_SEC(60)};
    loop_task *t = spawn(l, sleep_once, &s);
    assert_int_equal(loop_call_later(l, LOOP_SEC(1), cancel_it, &t, NULL), 0);
    assert_int_equal(loop_run(l), 0); /* runs until nothing is left */
    assert_int_equal(s.err, -ECANCELED);
    assert_u64_eq(s.now_after, LOOP_SEC(1));
    assert_u64_eq(loop_now(l), LOOP_SEC(1)); /* the 60 s timer did not keep it alive */
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
}

static void test_sleeps_of_several_tasks_wake_them_in_deadline_order(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct sleeper a = {.ns = LOOP_MS(30)}, b = {.ns = LOOP_MS(10)}, c = {.ns = LOOP_MS(20)};
    loop_task *ta = spawn(l, sleep_once, &a), *tb = spawn(l, sleep_once, &b),
              *tc = spawn(l, sleep_once, &c);
    assert_int_equal(loop_run(l), 0);
    assert_u64_eq(a.now_after, LOOP_MS(30));
    assert_u64_eq(b.now_after, LOOP_MS(10));
    assert_u64_eq(c.now_after, LOOP_MS(20));
    assert_true(b.hop_after < c.hop_after && c.hop_after < a.hop_after);
    loop_task_unref(ta);
    loop_task_unref(tb);
    loop_task_unref(tc);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sleep_zero_is_one_call_soon_hop_and_no_timer),
        cmocka_unit_test(test_sleep_runs_the_task_one_hop_after_its_timer_fires),
        cmocka_unit_test(test_a_cancelled_sleep_returns_ecanceled_and_cancels_its_timer),
        cmocka_unit_test(test_sleeps_of_several_tasks_wake_them_in_deadline_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
