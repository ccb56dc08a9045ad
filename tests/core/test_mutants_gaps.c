/*
 * Promises that scripts/mutate.sh found untested: each test here is named
 * after its rule, and scripts/mutants.txt names the mutant it kills.
 *
 *  - a repeating timer stalled to exactly its next deadline runs once
 *    (repeating-timer-at-now);
 *  - a timer due at UINT64_MAX never runs, even once the virtual clock has
 *    saturated there too (timer-never-deadline-runs);
 *  - the poll timeout counts from the clock after the before-poll hook, so
 *    a timer that fell due meanwhile is not waited for
 *    (timeout-from-stale-clock);
 *  - a blocked loop is not woken by the timerfd of a timer that was
 *    cancelled (timerfd-armed-while-idle);
 *  - a signal run dropped by loop_remove_signal() stays dropped when the
 *    signal is added again before it would have run
 *    (signal-dispatch-no-generation).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "fdleak.h"
#include "fixtures.h"
#include "realtime.h"

/* ---- repeating timers ------------------------------------------------- */

struct runs {
    int n;
    uint64_t at[4];
};

static void record_cb(loop_t *loop, void *arg)
{
    struct runs *r = arg;
    if (r->n < 4)
        r->at[r->n] = loop_now(loop);
    r->n++;
}

static void
test_call_every_stalled_to_exactly_its_next_deadline_runs_once_then_at_now_plus_period(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){.clock = LOOP_CLOCK_VIRTUAL});
    struct runs r = {0};
    assert_int_equal(loop_call_every(l, LOOP_MS(10), record_cb, &r, NULL), 0);
    /* Deadline 10 ms; the loop stalls to 20 ms, which is exactly 10 + 10:
     * that next deadline is not in the future, so it becomes 20 + 10. */
    assert_int_equal(loop_advance(l, LOOP_MS(20)), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(r.n, 1);
    assert_true(r.at[0] == LOOP_MS(20));
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(r.n, 2);
    assert_true(r.at[1] == LOOP_MS(30));
    assert_int_equal(loop_free(l), 0);
}

/* ---- the deadline that never comes ------------------------------------ */

static void test_timer_due_at_uint64_max_never_runs_even_when_the_clock_saturates(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){.clock = LOOP_CLOCK_VIRTUAL});
    int ran = 0;
    loop_handle h;
    assert_int_equal(loop_call_later(l, UINT64_MAX, count_cb, &ran, &h), 0);
    assert_int_equal(loop_advance(l, UINT64_MAX), 0);
    assert_true(loop_now(l) == UINT64_MAX);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(ran, 0);
    assert_int_equal(loop_cancel(l, h), 0); /* still pending */
    assert_int_equal(loop_free(l), 0);
}

/* ---- the poll timeout ------------------------------------------------- */

/* A before-poll hook that takes until the deadline in *arg has passed. */
static void spin_past_cb(loop_t *loop, void *arg)
{
    (void)loop;
    uint64_t when = *(uint64_t *)arg;
    while (mono_ns() <= when) {
    }
}

static void test_timer_due_by_the_end_of_the_before_poll_hook_is_not_waited_for(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){0});
    int ran = 0;
    uint64_t when = mono_ns() + LOOP_MS(5);
    assert_int_equal(loop_call_at(l, when, count_cb, &ran, NULL), 0);
    assert_int_equal(loop_on_before_poll(l, spin_past_cb, &when), 0);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(ran, 1);
    /* The timeout was computed after the hook, when the timer was due: the
     * poll was not allowed to wait at all. */
    loop_stats_t st;
    assert_int_equal(loop_stats(l, &st), 0);
    assert_true(st.polls == 1);
    assert_true(st.wait_ns == 0);
    assert_int_equal(loop_free(l), 0);
}

/* ---- no stray wake-up ------------------------------------------------- */

struct late_write {
    int fd;
    uint64_t at; /* CLOCK_MONOTONIC ns */
};

static void *write_at(void *arg)
{
    struct late_write *w = arg;
    struct timespec ts = {(time_t)(w->at / 1000000000u), (long)(w->at % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
    ssize_t n = write(w->fd, "x", 1);
    (void)n;
    return NULL;
}

static void read_cb(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)events;
    char c;
    if (read(fd, &c, 1) == 1)
        (*(int *)arg)++;
}

static void test_blocked_loop_is_not_woken_by_a_cancelled_timers_deadline(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){0});
    int p[2], got = 0;
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    assert_int_equal(loop_add_reader(l, p[0], read_cb, &got), 0);

    /* One iteration that would wait for a 200 ms timer, but returns at once
     * (a threadsafe call is queued), so the loop prepared that wait.  (200
     * ms: the timer must not come due before the cancel, even under
     * valgrind on a loaded machine.) */
    loop_handle h;
    assert_int_equal(loop_call_later(l, LOOP_MS(200), nop_cb, NULL, &h), 0);
    uint64_t deadline = mono_ns() + LOOP_MS(200);
    assert_int_equal(loop_call_soon_threadsafe(l, nop_cb, NULL), 0);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(loop_cancel(l, h), 0);

    /* Now only the reader can bring work: the iteration must block until
     * the byte written well after the cancelled deadline, and run it. */
    struct late_write w = {p[1], deadline + LOOP_MS(50)};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, write_at, &w), 0);
    int rc = loop_run_once(l, -1);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(got, 1);

    assert_int_equal(loop_free(l), 0);
    close(p[0]);
    close(p[1]);
}

/* ---- signals ---------------------------------------------------------- */

static int runs_a, runs_b;

static void readd_cb(loop_t *loop, void *arg)
{
    (void)arg;
    assert_int_equal(loop_remove_signal(loop, SIGUSR1), 0);
    assert_int_equal(loop_add_signal(loop, SIGUSR1, count_cb, &runs_b), 0);
}

static void raise_then_queue_readd_cb(loop_t *loop, void *arg)
{
    (void)arg;
    raise(SIGUSR1);
    assert_int_equal(loop_call_soon(loop, readd_cb, NULL, NULL), 0);
}

static void
test_signal_run_dropped_by_remove_stays_dropped_when_the_signal_is_added_again(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){.strict_poll = true}); /* polls every iteration */
    runs_a = runs_b = 0;
    assert_int_equal(loop_add_signal(l, SIGUSR1, count_cb, &runs_a), 0);
    assert_int_equal(loop_call_soon(l, raise_then_queue_readd_cb, NULL, NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0); /* raises, queues readd */
    /* Polls (the signal's run is queued after readd), then readd removes
     * the signal, dropping that run, and adds it again with another fn. */
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(runs_a, 0);
    assert_int_equal(runs_b, 0);
    assert_int_equal(loop_remove_signal(l, SIGUSR1), 0);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_call_every_stalled_to_exactly_its_next_deadline_runs_once_then_at_now_plus_period),
        cmocka_unit_test(test_timer_due_at_uint64_max_never_runs_even_when_the_clock_saturates),
        cmocka_unit_test(test_timer_due_by_the_end_of_the_before_poll_hook_is_not_waited_for),
        cmocka_unit_test(test_blocked_loop_is_not_woken_by_a_cancelled_timers_deadline),
        cmocka_unit_test(
            test_signal_run_dropped_by_remove_stays_dropped_when_the_signal_is_added_again),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
