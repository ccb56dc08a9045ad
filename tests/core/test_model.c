/*
 * Model-based test of the scheduler, on the virtual clock.
 *
 * Random operations (call_soon, call_later, call_at, call_every, cancel of
 * live, run, cancelled and bogus handles, reschedule, reschedule_at, ref,
 * unref, stop, advance, threadsafe posts from the loop's thread, run_once
 * with and without a cap, run), from outside and from inside callbacks,
 * are applied to a loop through the reference model of tests/support/
 * model.h, which is the rules of include/loop.h written out plainly and
 * never looks inside the loop.  Every return code, every callback that
 * runs, the loop_now() it sees and the clock after each poll must be what
 * the rules say; every callback the rules put in an iteration must run in
 * it; at the end every handle must be pending exactly when the model says
 * so (loop_cancel answers 0 or -ENOENT).  loop__verify() is an extra check
 * after every step and inside every callback.
 *
 * Even seeds use strict_poll; odd seeds the default poll skipping, with a
 * varied poll_interval.  The model does not guess which iterations skip
 * their poll: it sees the polls through the public hooks and checks each
 * skip against the bound of include/loop.h (see model.h), then predicts
 * the iteration exactly.
 *
 *   LOOP_MODEL_SEEDS=N   run seeds 1..N (default 3000; 300 under valgrind)
 *   LOOP_MODEL_SEED=N    replay one seed, printing every step
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#define MODEL_IMPLEMENTATION
#include "fdleak.h"
#include "model_driver.h"

static void test_loop_agrees_with_the_reference_scheduler(void **state)
{
    (void)state;
    const struct driver d = {
        .name = "test_model",
        .tick = 1000,
        .steps = 250,
        .seeds = 3000,
        .valgrind_seeds = 300,
    };
    driver_main(&d);
}

/*
 * Regressions found by the model, each reduced to its smallest form.
 *
 * Seed 15 (default polling): an iteration that skipped its poll ran a
 * callback that moved the clock, but the next poll measured its timeout
 * from the clock read before that callback, so the timer ran late.
 */
static int chain_steps;
static uint64_t fired_at;

static void chain_then_advance(loop_t *loop, void *arg)
{
    (void)arg;
    if (++chain_steps == 4) {
        assert_int_equal(loop_advance(loop, 5000), 0);
        return;
    }
    assert_int_equal(loop_call_soon(loop, chain_then_advance, NULL, NULL), 0);
}

static void record_time(loop_t *loop, void *arg)
{
    (void)arg;
    fired_at = loop_now(loop);
}

static void test_poll_after_skipped_polls_waits_from_the_current_time(void **state)
{
    (void)state;
    for (uint32_t interval = 1; interval <= 5; interval++) {
        loop_t *loop;
        loop_options o = {.clock = LOOP_CLOCK_VIRTUAL, .poll_interval = interval};
        assert_int_equal(loop_new_with(&loop, &o), 0);
        chain_steps = 0;
        fired_at = 0;
        assert_int_equal(loop_call_at(loop, 100000, record_time, NULL, NULL), 0);
        assert_int_equal(loop_call_soon(loop, chain_then_advance, NULL, NULL), 0);
        assert_int_equal(loop_run(loop), 0);
        assert_int_equal(fired_at, 100000);
        assert_int_equal(loop_free(loop), 0);
    }
}

/*
 * Seed 1 (and the fuzzer): a call_soon'd callback rescheduled to a
 * deadline due by the next iteration ran from its old place in the ready
 * queue (first), not as the timer it became (after T1, due as early and
 * scheduled before it).
 */
static char order[16];

static void note(loop_t *loop, void *arg)
{
    (void)loop;
    strncat(order, arg, sizeof(order) - strlen(order) - 1);
}

static void test_rescheduled_call_soon_runs_as_the_timer_it_became(void **state)
{
    (void)state;
    loop_t *loop;
    loop_handle h;
    loop_options o = {.clock = LOOP_CLOCK_VIRTUAL, .strict_poll = true};
    assert_int_equal(loop_new_with(&loop, &o), 0);
    order[0] = 0;
    assert_int_equal(loop_call_at(loop, 0, note, "T", NULL), 0);
    assert_int_equal(loop_call_soon(loop, note, "X", &h), 0);
    assert_int_equal(loop_reschedule_at(loop, h, 0), 0);
    int run = loop_run_once(loop, 0), stale = loop_cancel(loop, h);
    assert_int_equal(loop_free(loop), 0); /* first, so that a failure leaks nothing */
    assert_int_equal(run, 0);
    assert_string_equal(order, "TX");
    assert_int_equal(stale, -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_agrees_with_the_reference_scheduler),
        cmocka_unit_test(test_poll_after_skipped_polls_waits_from_the_current_time),
        cmocka_unit_test(test_rescheduled_call_soon_runs_as_the_timer_it_became),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
