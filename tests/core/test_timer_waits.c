/*
 * Waits on the real clock: how long an iteration sleeps for a timer or for
 * run_once's cap.  Each test asserts "never early" strictly and "not
 * absurdly late" with a bound far above what a loaded machine needs, so
 * that only a broken wait can cross it.
 */
#include "internals.h"
#include "realtime.h"
#include "record.h"

#include <sys/prctl.h>
#include <unistd.h>

static void test_huge_delay_on_the_real_clock_waits_only_the_cap(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    int a = 0;
    loop_handle h;
    assert_int_equal(loop_call_later(l, UINT64_MAX, count_cb, &a, &h), 0);
    assert_int_equal(loop_call_at(l, UINT64_MAX, count_cb, &a, NULL), 0);
    /* The timers keep the loop alive, so the iteration waits: for its cap,
     * not less, and not for ever (a hang would trip the suite's alarm). */
    uint64_t t0 = mono_ns();
    assert_int_equal(loop_run_once(l, (int64_t)LOOP_MS(20)), 0);
    uint64_t waited = mono_ns() - t0;
    assert_u64_ge(waited, LOOP_MS(20));
    assert_u64_lt(waited, LOOP_SEC(1));
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(a, 0);
    assert_int_equal(loop_cancel(l, h), 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_run_once_cap_bounds_the_wait_on_the_real_clock(void **state)
{
    (void)state;
    /* A timer 3 s away: run_once(20 ms) returns after about 20 ms, never
     * before, and well before the timer is due. */
    loop_t *l = new_real_loop();
    struct record r = {0};
    struct mark far = {&r, 'f'};
    loop_handle h;
    assert_int_equal(loop_call_later(l, LOOP_SEC(3), record_cb, &far, &h), 0);
    uint64_t t0 = mono_ns();
    assert_int_equal(loop_run_once(l, (int64_t)LOOP_MS(20)), 0);
    uint64_t waited = mono_ns() - t0;
    assert_int_equal(r.n, 0);
    assert_u64_ge(waited, LOOP_MS(20));
    assert_u64_lt(waited, LOOP_MS(1500));
    assert_int_equal(loop_cancel(l, h), 0);
    assert_int_equal(loop_free(l), 0);
}

/* Run a loop whose only work is one timer `delay` from now; how long the
 * run took, and the timer's record in *r. */
static uint64_t run_one_timer(loop_t *l, uint64_t delay, struct record *r, uint64_t *deadline)
{
    static struct mark m;
    m = (struct mark){r, 't'};
    uint64_t t0 = mono_ns();
    *deadline = t0 + delay; /* call_later counts from the call, which is later */
    assert_int_equal(loop_call_later(l, delay, record_cb, &m, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    return mono_ns() - t0;
}

static void test_a_timed_wait_ends_at_its_deadline_whatever_the_threads_timer_slack(void **state)
{
    (void)state;
    /*
     * The kernel lets a poll's timeout expire late by the thread's timer
     * slack (prctl PR_SET_TIMERSLACK; 50 us by default), but fires a
     * timerfd at its deadline, and the loop ends its timed waits with one.
     * With a slack of 1 s, a 20 ms timer must still run long before 1 s: a
     * wait left to the poll's timeout would last 1020 ms.  (500 ms leaves
     * room for a loaded machine on both sides.)
     */
    long slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    assert_true(slack > 0);
    assert_int_equal(prctl(PR_SET_TIMERSLACK, (unsigned long)LOOP_SEC(1), 0, 0, 0), 0);
    loop_t *l = new_real_loop();
    struct record r = {0};
    uint64_t deadline;
    uint64_t took = run_one_timer(l, LOOP_MS(20), &r, &deadline);
    assert_int_equal(prctl(PR_SET_TIMERSLACK, (unsigned long)slack, 0, 0, 0), 0);
    assert_int_equal(r.n, 1);
    assert_u64_ge(r.now[0], deadline);
    assert_u64_lt(took, LOOP_MS(500));
    assert_int_equal(loop_free(l), 0);
}

static void test_a_wait_in_whole_milliseconds_is_rounded_up(void **state)
{
    (void)state;
    /*
     * Where the kernel (or valgrind) lacks epoll_pwait2, the loop waits
     * with epoll_wait, whose timeout is in whole milliseconds; without a
     * timerfd, that timeout is the whole wait.  A timer 1.5 ms away then
     * takes one poll of 2 ms.  Rounded down, the first poll would wait
     * 1 ms, and the next ones 0 ms each until the timer is due: a spin of
     * hundreds of polls.
     */
    loop_t *l = new_real_loop();
    test_disable_pwait2(l);
    test_disable_timerfd(l);
    struct record r = {0};
    uint64_t deadline;
    run_one_timer(l, 1500000, &r, &deadline);
    assert_int_equal(r.n, 1);
    assert_u64_ge(r.now[0], deadline);
    loop_stats_t st;
    assert_int_equal(loop_stats(l, &st), 0);
    assert_u64_lt(st.polls, 3); /* one wait; a spin makes hundreds */
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_huge_delay_on_the_real_clock_waits_only_the_cap),
        cmocka_unit_test(test_run_once_cap_bounds_the_wait_on_the_real_clock),
        cmocka_unit_test(test_a_timed_wait_ends_at_its_deadline_whatever_the_threads_timer_slack),
        cmocka_unit_test(test_a_wait_in_whole_milliseconds_is_rounded_up),
    };
    alarm(120);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
