/*
 * Model-based test on the real clock, with posts from other threads.
 *
 * The operations of test_model.c (delays of microseconds) on a loop that
 * runs on LOOP_CLOCK_MONOTONIC, while two other threads each make 200
 * loop_call_soon_threadsafe() calls, numbered.  The reference model
 * (tests/support/model.h) checks what the rules pin down on a real clock:
 *  - never early: a timer runs only in an iteration whose loop_now() is at
 *    or past its deadline (a deadline counted from a clock read inside a
 *    call is known to lie between two reads made around it);
 *  - order: call_soon FIFO, then I/O, then timers by (deadline, schedule
 *    order) wherever the bounds of the deadlines decide it;
 *  - liveness: a timer whose deadline has certainly passed at a poll runs
 *    in that iteration; an uncapped wait for a timer does not end before
 *    its deadline unless something else woke the loop (only checked while
 *    no other thread posts);
 *  - the clock never goes back, and loop_now() does not move during an
 *    iteration;
 *  - every post of another thread runs exactly once, in that thread's
 *    order, in the I/O phase of an iteration that polled; once the threads
 *    are joined, every post left runs in the next iteration that polls.
 * and everything test_model.c checks that does not depend on exact times
 * (return codes, cancel, reschedule, stop, run and run_once, poll skipping
 * within its bound).
 *
 *   LOOP_MODEL_SEEDS=N   run seeds 1..N (default 300; 40 under valgrind)
 *   LOOP_MODEL_SEED=N    replay one seed's loop-thread operations, printing them
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define MODEL_IMPLEMENTATION
#include "fdleak.h"
#include "model_driver.h"

static void test_real_clock_and_other_threads_agree_with_the_reference_model(void **state)
{
    (void)state;
    const struct driver d = {
        .name = "test_model_threads",
        .real_clock = true,
        .nthreads = 2,
        .tick = 2000,
        .steps = 150,
        .seeds = 300,
        .valgrind_seeds = 40,
    };
    driver_main(&d);
}

/*
 * include/loop.h: threadsafe calls "join the ready queue during the I/O
 * phase of the loop's next iteration".  A call made by the loop's own
 * thread must do so even while other threads post: the model found that
 * it can miss that iteration when another thread's call has made the
 * queue non-empty but not yet written the eventfd (it writes after
 * unlocking, and the loop collects posts only when the eventfd fired).
 * This test pins that rule alone, with a clear message.
 */
#define OWN_ROUNDS 100000
#define OWN_ROUNDS_VALGRIND 10000

static int posters_stop;
static uint64_t own_posted_in, own_late, own_marks;

static void noop(loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
}

static void *busy_poster(void *arg)
{
    loop_t *loop = arg;
    while (!__atomic_load_n(&posters_stop, __ATOMIC_RELAXED)) {
        if (loop_call_soon_threadsafe(loop, noop, NULL))
            break;
        sched_yield();
    }
    return NULL;
}

static uint64_t iteration(loop_t *loop)
{
    loop_stats_t s;
    loop_stats(loop, &s);
    return s.iterations;
}

static void own_mark(loop_t *loop, void *arg)
{
    (void)arg;
    own_marks++;
    if (iteration(loop) != own_posted_in + 1)
        own_late++;
}

static void own_post(loop_t *loop, void *arg)
{
    (void)arg;
    own_posted_in = iteration(loop);
    assert_int_equal(loop_call_soon_threadsafe(loop, own_mark, NULL), 0);
}

static void
test_a_post_from_the_loop_thread_runs_in_the_next_iteration_while_others_post(void **state)
{
    (void)state;
    loop_t *loop;
    loop_options o = {.clock = LOOP_CLOCK_VIRTUAL, .strict_poll = true};
    assert_int_equal(loop_new_with(&loop, &o), 0);
    pthread_t threads[2];
    posters_stop = 0;
    own_late = own_marks = 0;
    for (int t = 0; t < 2; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, busy_poster, loop), 0);
    int rounds = RUNNING_ON_VALGRIND ? OWN_ROUNDS_VALGRIND : OWN_ROUNDS;
    int lost = 0;
    for (int i = 0; i < rounds && !own_late && !lost; i++) {
        assert_int_equal(loop_call_soon(loop, own_post, NULL, NULL), 0);
        assert_int_equal(loop_run_once(loop, 0), 0); /* own_post: posts own_mark */
        assert_int_equal(loop_run_once(loop, 0), 0); /* own_mark must run in this one */
        for (int wait = 0; own_marks < (uint64_t)i + 1 && wait < 1000; wait++)
            assert_int_equal(loop_run_once(loop, 0), 0); /* a late one, counted */
        lost = own_marks < (uint64_t)i + 1;
    }
    __atomic_store_n(&posters_stop, 1, __ATOMIC_RELAXED);
    for (int t = 0; t < 2; t++)
        pthread_join(threads[t], NULL);
    assert_int_equal(loop_free(loop), 0);
    if (lost)
        fail_msg("a post from the loop thread never ran");
    if (own_late)
        fail_msg("a post from the loop thread missed the next iteration (%" PRIu64 " of %" PRIu64
                 " calls)",
                 own_late, own_marks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_clock_and_other_threads_agree_with_the_reference_model),
        cmocka_unit_test(
            test_a_post_from_the_loop_thread_runs_in_the_next_iteration_while_others_post),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
