/*
 * The iteration itself (src/core/loop.c): how phases chain, what the default
 * (non-strict) mode may skip, and regressions in them.
 */
#include "internals.h"

#include <errno.h>

static uint64_t fired_at;

static void record_time(loop_t *loop, void *arg)
{
    (void)arg;
    fired_at = loop_now(loop);
}

static void advance_4ms(loop_t *loop, void *arg)
{
    (void)arg;
    assert_int_equal(loop_advance(loop, LOOP_MS(4)), 0);
}

/* Queue work for an iteration that will skip its poll: a ready callback,
 * and a timer due at once (which also ends the chaining of iterations). */
static void start(loop_t *loop, void *arg)
{
    (void)arg;
    assert_int_equal(loop_call_soon(loop, nop_cb, NULL, NULL), 0);
    assert_int_equal(loop_call_at(loop, loop_now(loop), advance_4ms, NULL, NULL), 0);
}

static void test_poll_after_skipped_polls_waits_from_a_fresh_clock(void **state)
{
    (void)state;
    loop_t *loop;
    assert_int_equal(loop_new_with(&loop, &(loop_options){.clock = LOOP_CLOCK_VIRTUAL}), 0);
    assert_int_equal(loop_call_at(loop, LOOP_MS(10), record_time, NULL, NULL), 0);
    /* Iteration 1 polls and runs start; iteration 2 skips its poll and
     * moves the clock to 4 ms; iteration 3 must wait 6 ms, not 10. */
    assert_int_equal(loop_call_at(loop, 0, start, NULL, NULL), 0);
    fired_at = 0;
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(fired_at, LOOP_MS(10));
    assert_int_equal(loop_free(loop), 0);
}

static int soon_runs, timer_runs;

static void spin(loop_t *loop, void *arg)
{
    (void)arg;
    soon_runs++;
    if (timer_runs == 0)
        assert_int_equal(loop_call_soon(loop, spin, NULL, NULL), 0);
}

static void count_timer(loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
    timer_runs++;
}

static void test_default_mode_checks_timers_within_poll_interval_callbacks(void **state)
{
    (void)state;
    loop_t *loop;
    assert_int_equal(
        loop_new_with(&loop, &(loop_options){.clock = LOOP_CLOCK_VIRTUAL, .poll_interval = 16}), 0);
    soon_runs = timer_runs = 0;
    assert_int_equal(loop_call_soon(loop, spin, NULL, NULL), 0);
    assert_int_equal(loop_call_at(loop, 0, count_timer, NULL, NULL), 0); /* due at once */
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(timer_runs, 1);
    assert_true(soon_runs <= 16 + 1);
    assert_int_equal(loop_free(loop), 0);
}

static void run_chain(bool strict, loop_stats_t *st)
{
    loop_t *loop;
    assert_int_equal(loop_new_with(&loop, &(loop_options){.strict_poll = strict}), 0);
    struct chain c = {.left = 1000};
    assert_int_equal(loop_call_soon(loop, chain_cb, &c, NULL), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(loop_stats(loop, st), 0);
    assert_int_equal(loop_free(loop), 0);
}

static void test_strict_mode_polls_every_iteration(void **state)
{
    (void)state;
    loop_stats_t st;
    run_chain(true, &st);
    assert_int_equal(st.iterations, 1000);
    assert_int_equal(st.polls, 1000);
}

static void test_default_mode_polls_once_per_poll_interval_callbacks(void **state)
{
    (void)state;
    loop_stats_t st;
    run_chain(false, &st);
    assert_int_equal(st.iterations, 1000);
    assert_int_equal(st.callbacks, 1000);
    /* Every iteration has a callback ready, so only every 64th polls: a
     * poll_interval of 0 means 64 (include/loop.h). */
    assert_int_equal(st.polls, (1000 - 1) / 64);
}

static void test_adding_the_loops_own_fds_is_rejected(void **state)
{
    (void)state;
    loop_t *loop;
    assert_int_equal(loop_new(&loop), 0);
    int own[] = {loop_fd(loop), test_wakefd(loop), test_timerfd(loop)};
    for (unsigned i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        assert_true(own[i] >= 0);
        assert_int_equal(loop_add_reader(loop, own[i], nop_io, NULL), -EINVAL);
        assert_int_equal(loop_add_writer(loop, own[i], nop_io, NULL), -EINVAL);
    }
    assert_int_equal(loop_free(loop), 0);
}

/* What one timer of the slack test saw. */
struct slack_probe {
    uint64_t deadline;
    int runs;
    uint64_t ran_at;    /* loop_now() when it ran */
    uint64_t iteration; /* loop_stats().iterations when it ran */
    uint64_t waited_ns; /* loop_stats().wait_ns when it ran */
};

static void slack_probe_cb(loop_t *loop, void *arg)
{
    struct slack_probe *p = arg;
    loop_stats_t st;
    assert_int_equal(loop_stats(loop, &st), 0);
    p->runs++;
    p->ran_at = loop_now(loop);
    p->iteration = st.iterations;
    p->waited_ns = st.wait_ns;
}

/*
 * Timers `lead` and lead + 80 ms from now, on a loop with 100 ms of slack.
 * Returns false if the run proves nothing: the loop's first poll came after
 * the first deadline (a loaded machine), so it had no wait to widen.
 */
static bool slack_run(uint64_t lead, struct slack_probe p[2])
{
    loop_t *loop = new_loop_with((loop_options){.timer_slack_ns = LOOP_MS(100)});
    p[0] = (struct slack_probe){.deadline = loop_now(loop) + lead};
    p[1] = (struct slack_probe){.deadline = p[0].deadline + LOOP_MS(80)};
    for (int i = 0; i < 2; i++)
        assert_int_equal(loop_call_at(loop, p[i].deadline, slack_probe_cb, &p[i], NULL), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(loop_free(loop), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(p[i].runs, 1);
        assert_u64_ge(p[i].ran_at, p[i].deadline); /* never early, slack or not */
    }
    return p[0].waited_ns > 0;
}

static void test_timer_slack_lets_nearby_timers_share_a_wakeup(void **state)
{
    (void)state;
    /*
     * The loop may wake up to 100 ms late for the first timer, so that the
     * second, due 80 ms after it, shares that wake-up: both run in one
     * iteration.  Without the slack the loop wakes at the first deadline
     * and the second waits for an iteration of its own.  (Only a first
     * poll that comes after the first deadline has no wait to widen; then
     * the run is tried again with a longer lead.)
     */
    struct slack_probe p[2];
    uint64_t lead = LOOP_MS(5);
    while (!slack_run(lead, p)) {
        if (lead >= LOOP_MS(500))
            fail_msg("the loop never waited for a timer %" PRIu64 " ms away", lead / 1000000);
        lead *= 10;
    }
    assert_u64_eq(p[1].iteration, p[0].iteration);
    /* Late by the slack at most, give or take a loaded machine's delay. */
    assert_u64_lt(p[0].ran_at, p[0].deadline + LOOP_MS(100) + LOOP_SEC(1));
}

static void test_virtual_clock_ignores_timer_slack(void **state)
{
    (void)state;
    loop_t *loop;
    assert_int_equal(loop_new_with(&loop, &(loop_options){.clock = LOOP_CLOCK_VIRTUAL,
                                                          .timer_slack_ns = LOOP_MS(5)}),
                     0);
    assert_int_equal(loop_call_at(loop, LOOP_MS(10), record_time, NULL, NULL), 0);
    fired_at = 0;
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(fired_at, LOOP_MS(10));
    assert_int_equal(loop_free(loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poll_after_skipped_polls_waits_from_a_fresh_clock),
        cmocka_unit_test(test_default_mode_checks_timers_within_poll_interval_callbacks),
        cmocka_unit_test(test_strict_mode_polls_every_iteration),
        cmocka_unit_test(test_default_mode_polls_once_per_poll_interval_callbacks),
        cmocka_unit_test(test_adding_the_loops_own_fds_is_rejected),
        cmocka_unit_test(test_timer_slack_lets_nearby_timers_share_a_wakeup),
        cmocka_unit_test(test_virtual_clock_ignores_timer_slack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
