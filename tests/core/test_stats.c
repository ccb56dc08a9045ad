/*
 * Observability: loop_stats() counters (iterations, polls, callbacks,
 * events, wait_ns, busy_ns), the before/after-poll hooks that run around
 * every kernel poll, and loop_set_slow_callback(), which reports every
 * callback or fd handler that ran for its threshold or longer.
 *
 * Durations are checked from below only: a callback that spins for 20 ms
 * of CLOCK_MONOTONIC ran at least that long however loaded the machine is.
 */
#include "fixtures.h"
#include "realtime.h"
#include "sockets.h"
#include "watchdog.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------- */

static loop_stats_t stats_of(loop_t *l)
{
    loop_stats_t st;
    memset(&st, 0xa5, sizeof(st));
    assert_int_equal(loop_stats(l, &st), 0);
    return st;
}

/* Drain one byte and count. */
static void read_one_io(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)events;
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
    (*(int *)arg)++;
}

/* ---- counters ------------------------------------------------------------ */

static void test_stats_with_null_arguments_is_einval(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){0});
    loop_stats_t st;
    assert_int_equal(loop_stats(NULL, &st), -EINVAL);
    assert_int_equal(loop_stats(l, NULL), -EINVAL);
    assert_int_equal(loop_free(l), 0);
}

static void test_a_new_loop_has_all_counters_at_zero(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){0});
    loop_stats_t st = stats_of(l);
    assert_u64_eq(st.iterations, 0);
    assert_u64_eq(st.polls, 0);
    assert_u64_eq(st.callbacks, 0);
    assert_u64_eq(st.events, 0);
    assert_u64_eq(st.wait_ns, 0);
    assert_u64_eq(st.busy_ns, 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_counters_count_iterations_polls_callbacks_and_fd_events(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){.clock = LOOP_CLOCK_VIRTUAL, .strict_poll = true});
    int sv[2];
    make_socketpair(sv);
    int runs = 0, reads = 0;
    assert_int_equal(loop_add_reader(l, sv[0], read_one_io, &reads), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(loop_call_soon(l, count_cb, &runs, NULL), 0);
    assert_int_equal(write(sv[1], "x", 1), 1);

    /* One iteration: one poll, one event, three callbacks and one handler. */
    assert_int_equal(loop_run_once(l, 0), 0);
    loop_stats_t st = stats_of(l);
    assert_int_equal(runs, 3);
    assert_int_equal(reads, 1);
    assert_u64_eq(st.iterations, 1);
    assert_u64_eq(st.polls, 1);
    assert_u64_eq(st.callbacks, 4);
    assert_u64_eq(st.events, 1);

    /* An iteration with nothing ready still counts, and polls. */
    assert_int_equal(loop_run_once(l, 0), 0);
    st = stats_of(l);
    assert_u64_eq(st.iterations, 2);
    assert_u64_eq(st.polls, 2);
    assert_u64_eq(st.callbacks, 4);
    assert_u64_eq(st.events, 1);

    /* Two fds ready at once: two events. */
    int sv2[2];
    make_socketpair(sv2);
    assert_int_equal(loop_add_reader(l, sv2[0], read_one_io, &reads), 0);
    assert_int_equal(write(sv[1], "y", 1), 1);
    assert_int_equal(write(sv2[1], "z", 1), 1);
    assert_int_equal(loop_run_once(l, 0), 0);
    st = stats_of(l);
    assert_int_equal(reads, 3);
    assert_u64_eq(st.events, 3);
    assert_u64_eq(st.callbacks, 6);

    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    assert_int_equal(loop_remove_reader(l, sv2[0]), 0);
    close_pair(sv);
    close_pair(sv2);
    assert_int_equal(loop_free(l), 0);
}

static void test_iterations_that_skip_their_poll_count_as_iterations_not_polls(void **state)
{
    (void)state;
    /* Not strict: a call_soon chain skips most zero-timeout polls. */
    loop_t *l = new_loop_with((loop_options){.clock = LOOP_CLOCK_VIRTUAL, .poll_interval = 16});
    struct chain c = {.left = 200};
    assert_int_equal(loop_call_soon(l, chain_cb, &c, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(c.ran, 200);
    loop_stats_t st = stats_of(l);
    assert_u64_eq(st.iterations, 200);
    assert_u64_eq(st.callbacks, 200);
    assert_true(st.polls >= 1);
    assert_true(st.polls < st.iterations);
    assert_int_equal(loop_free(l), 0);

    /* Strict: every iteration polls. */
    l = new_loop_with((loop_options){.clock = LOOP_CLOCK_VIRTUAL, .strict_poll = true});
    c = (struct chain){.left = 200};
    assert_int_equal(loop_call_soon(l, chain_cb, &c, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    st = stats_of(l);
    assert_u64_eq(st.iterations, 200);
    assert_u64_eq(st.polls, 200);
    assert_int_equal(loop_free(l), 0);
}

static void test_threadsafe_calls_and_signals_count_as_callbacks_not_events(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){.strict_poll = true});
    int runs = 0;
    assert_int_equal(loop_add_signal(l, SIGUSR1, count_cb, &runs), 0);
    assert_int_equal(loop_call_soon_threadsafe(l, count_cb, &runs), 0);
    assert_int_equal(loop_call_soon_threadsafe(l, count_cb, &runs), 0);
    raise(SIGUSR1);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(runs, 3);
    assert_u64_eq(stats_of(l).callbacks, 3);
    assert_u64_eq(stats_of(l).events, 0); /* the loop's own wake-ups are no fd events */
    assert_int_equal(loop_free(l), 0);
}

static void test_wait_ns_is_the_time_polls_waited_on_the_virtual_clock(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){.clock = LOOP_CLOCK_VIRTUAL});
    int runs = 0;
    assert_int_equal(loop_call_later(l, LOOP_MS(10), count_cb, &runs, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_MS(25), count_cb, &runs, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_MS(40), count_cb, &runs, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(runs, 3);
    loop_stats_t st = stats_of(l);
    assert_u64_eq(st.wait_ns, LOOP_MS(40));
    /* The virtual clock does not move while callbacks run. */
    assert_u64_eq(st.busy_ns, 0);
    assert_u64_eq(st.polls, 3);
    assert_int_equal(loop_free(l), 0);
}

/* A callback that keeps the CPU busy for *arg nanoseconds. */
static void spin_cb(loop_t *loop, void *arg)
{
    (void)loop;
    spin_ns(*(uint64_t *)arg);
}

static void test_busy_ns_counts_the_time_callbacks_run_between_waits(void **state)
{
    (void)state;
    /* A typical daemon: every poll waits (for a timer), then a callback
     * works.  Each of the three callbacks spins for 20 ms, so the loop was
     * busy for at least 60 ms. */
    loop_t *l = new_loop_with((loop_options){0});
    uint64_t spin = LOOP_MS(20);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(loop_call_later(l, LOOP_MS(i), spin_cb, &spin, NULL), 0);
    uint64_t t0 = mono_ns();
    assert_int_equal(loop_run(l), 0);
    uint64_t elapsed = mono_ns() - t0;
    loop_stats_t st = stats_of(l);
    assert_u64_eq(st.callbacks, 3);
    assert_u64_ge(st.busy_ns, 3 * spin);
    /* Both are measured inside loop_run: together, no more than its span. */
    assert_u64_ge(elapsed, st.busy_ns + st.wait_ns);
    assert_int_equal(loop_free(l), 0);
}

static void test_busy_ns_counts_callbacks_run_without_waiting(void **state)
{
    (void)state;
    /* Only zero-timeout polls: everything is busy time. */
    loop_t *l = new_loop_with((loop_options){.strict_poll = true});
    uint64_t spin = LOOP_MS(20);
    for (int i = 0; i < 3; i++)
        assert_int_equal(loop_call_soon(l, spin_cb, &spin, NULL), 0);
    uint64_t t0 = mono_ns();
    assert_int_equal(loop_run(l), 0);
    uint64_t elapsed = mono_ns() - t0;
    loop_stats_t st = stats_of(l);
    assert_u64_ge(st.busy_ns, 3 * spin);
    assert_u64_eq(st.wait_ns, 0);
    assert_u64_ge(elapsed, st.busy_ns);
    assert_int_equal(loop_free(l), 0);
}

static void test_wait_ns_counts_time_blocked_on_the_real_clock(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){0});
    int runs = 0;
    uint64_t t0 = mono_ns();
    assert_int_equal(loop_call_later(l, LOOP_MS(30), count_cb, &runs, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    uint64_t elapsed = mono_ns() - t0;
    loop_stats_t st = stats_of(l);
    assert_int_equal(runs, 1);
    assert_true(st.wait_ns > 0);
    assert_u64_ge(elapsed, st.busy_ns + st.wait_ns);
    assert_int_equal(loop_free(l), 0);
}

/* ---- poll hooks ---------------------------------------------------------- */

struct hooks {
    int before, after;
    int order_ok; /* each after follows its before */
    int schedule; /* before-hook: call_soon this many times, once each */
    int scheduled_ran;
};

static void scheduled_cb(loop_t *loop, void *arg)
{
    (void)loop;
    ((struct hooks *)arg)->scheduled_ran++;
}

static void before_hook(loop_t *loop, void *arg)
{
    struct hooks *h = arg;
    if (h->before != h->after)
        h->order_ok = 0;
    h->before++;
    if (h->schedule > 0) {
        h->schedule--;
        assert_int_equal(loop_call_soon(loop, scheduled_cb, h, NULL), 0);
    }
}

static void after_hook(loop_t *loop, void *arg)
{
    (void)loop;
    struct hooks *h = arg;
    h->after++;
    if (h->before != h->after)
        h->order_ok = 0;
}

static void test_hooks_run_in_every_iteration_even_those_that_skip_their_poll(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){.clock = LOOP_CLOCK_VIRTUAL, .poll_interval = 8});
    struct hooks h = {.order_ok = 1};
    assert_int_equal(loop_on_before_poll(l, before_hook, &h), 0);
    assert_int_equal(loop_on_after_poll(l, after_hook, &h), 0);
    struct chain c = {.left = 100};
    int runs = 0;
    assert_int_equal(loop_call_soon(l, chain_cb, &c, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_MS(5), count_cb, &runs, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    loop_stats_t st = stats_of(l);
    assert_true(st.polls < st.iterations);          /* some iterations skipped their poll ... */
    assert_int_equal(h.before, (int)st.iterations); /* ... and still ran their hooks */
    assert_int_equal(h.after, (int)st.iterations);
    assert_int_equal(h.order_ok, 1);

    /* NULL removes a hook. */
    assert_int_equal(loop_on_before_poll(l, NULL, NULL), 0);
    assert_int_equal(loop_on_after_poll(l, NULL, NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(h.before, (int)st.iterations);
    assert_int_equal(h.after, (int)st.iterations);

    assert_int_equal(loop_on_before_poll(NULL, before_hook, &h), -EINVAL);
    assert_int_equal(loop_on_after_poll(NULL, after_hook, &h), -EINVAL);
    assert_int_equal(loop_free(l), 0);
}

static void test_a_callback_queued_by_the_before_hook_keeps_the_poll_from_waiting(void **state)
{
    (void)state;
    /* Only a ref: the poll would block forever but for the hook's callback. */
    loop_t *l = new_loop_with((loop_options){0});
    loop_ref(l);
    struct hooks h = {.order_ok = 1, .schedule = 1};
    assert_int_equal(loop_on_before_poll(l, before_hook, &h), 0);
    assert_int_equal(loop_on_after_poll(l, after_hook, &h), 0);
    watchdog_start("a poll after the before-poll hook queued a callback", 60);
    assert_int_equal(loop_run_once(l, -1), 0);
    watchdog_stop();
    /* Queued before the poll, so part of this iteration's snapshot. */
    assert_int_equal(h.scheduled_ran, 1);
    assert_int_equal(h.before, 1);
    assert_int_equal(h.after, 1);
    assert_u64_eq(stats_of(l).wait_ns, 0);
    loop_unref(l);
    assert_int_equal(loop_free(l), 0);
}

/* ---- slow callbacks ---------------------------------------------------- */

struct slow_log {
    int n;
    loop_slow_info info[8];
    void *arg_seen;
};

static void slow_report(loop_t *loop, const loop_slow_info *info, void *arg)
{
    (void)loop;
    struct slow_log *s = arg;
    if (s->n < 8)
        s->info[s->n] = *info;
    s->n++;
}

static void spin_io(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)events;
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
    spin_ns(*(uint64_t *)arg);
}

static void test_slow_callback_is_reported_with_its_fn_arg_and_duration(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){0});
    struct slow_log log = {0};
    uint64_t spin = LOOP_MS(20);
    assert_int_equal(loop_set_slow_callback(l, LOOP_MS(10), slow_report, &log), 0);
    assert_int_equal(loop_call_soon(l, spin_cb, &spin, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(log.n, 1);
    assert_true(log.info[0].fn == spin_cb);
    assert_null(log.info[0].io_fn);
    assert_ptr_equal(log.info[0].arg, &spin);
    assert_int_equal(log.info[0].fd, -1);
    assert_u64_ge(log.info[0].ns, spin);
    assert_int_equal(loop_free(l), 0);
}

static void test_slow_fd_handler_is_reported_with_its_io_fn_and_fd(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){0});
    struct slow_log log = {0};
    uint64_t spin = LOOP_MS(20);
    int sv[2];
    make_socketpair(sv);
    assert_int_equal(loop_set_slow_callback(l, LOOP_MS(10), slow_report, &log), 0);
    assert_int_equal(loop_add_reader(l, sv[0], spin_io, &spin), 0);
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(log.n, 1);
    assert_null(log.info[0].fn);
    assert_true(log.info[0].io_fn == spin_io);
    assert_ptr_equal(log.info[0].arg, &spin);
    assert_int_equal(log.info[0].fd, sv[0]);
    assert_u64_ge(log.info[0].ns, spin);
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void test_every_callback_at_or_over_the_threshold_is_reported(void **state)
{
    (void)state;
    /* Timers, threadsafe calls and signals go through the same check. */
    loop_t *l = new_loop_with((loop_options){.strict_poll = true});
    struct slow_log log = {0};
    uint64_t spin = LOOP_MS(5);
    assert_int_equal(loop_set_slow_callback(l, LOOP_MS(5), slow_report, &log), 0);
    assert_int_equal(loop_add_signal(l, SIGUSR1, spin_cb, &spin), 0);
    assert_int_equal(loop_call_soon_threadsafe(l, spin_cb, &spin), 0);
    assert_int_equal(loop_call_later(l, 0, spin_cb, &spin, NULL), 0);
    assert_int_equal(loop_call_soon(l, spin_cb, &spin, NULL), 0);
    raise(SIGUSR1);
    int guard = 0;
    while (stats_of(l).callbacks < 4 && guard++ < 1000)
        assert_int_equal(loop_run_once(l, -1), 0);
    assert_u64_eq(stats_of(l).callbacks, 4);
    assert_int_equal(log.n, 4);
    for (int i = 0; i < 4; i++)
        assert_u64_ge(log.info[i].ns, LOOP_MS(5));
    assert_int_equal(loop_free(l), 0);
}

static void test_callbacks_under_the_threshold_are_not_reported(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){0});
    struct slow_log log = {0};
    int runs = 0;
    /* Nothing that counts to one takes ten seconds. */
    assert_int_equal(loop_set_slow_callback(l, LOOP_SEC(10), slow_report, &log), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(loop_call_soon(l, count_cb, &runs, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(runs, 100);
    assert_int_equal(log.n, 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_threshold_zero_or_null_fn_turns_reporting_off(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){0});
    struct slow_log log = {0};
    uint64_t spin = LOOP_MS(2);
    assert_int_equal(loop_set_slow_callback(l, 1, slow_report, &log), 0);
    assert_int_equal(loop_set_slow_callback(l, 0, slow_report, &log), 0);
    assert_int_equal(loop_call_soon(l, spin_cb, &spin, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(log.n, 0);

    assert_int_equal(loop_set_slow_callback(l, 1, slow_report, &log), 0);
    assert_int_equal(loop_set_slow_callback(l, 1, NULL, &log), 0);
    assert_int_equal(loop_call_soon(l, spin_cb, &spin, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(log.n, 0);

    assert_int_equal(loop_set_slow_callback(NULL, 1, slow_report, &log), -EINVAL);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_with_null_arguments_is_einval),
        cmocka_unit_test(test_a_new_loop_has_all_counters_at_zero),
        cmocka_unit_test(test_counters_count_iterations_polls_callbacks_and_fd_events),
        cmocka_unit_test(test_iterations_that_skip_their_poll_count_as_iterations_not_polls),
        cmocka_unit_test(test_threadsafe_calls_and_signals_count_as_callbacks_not_events),
        cmocka_unit_test(test_wait_ns_is_the_time_polls_waited_on_the_virtual_clock),
        cmocka_unit_test(test_busy_ns_counts_the_time_callbacks_run_between_waits),
        cmocka_unit_test(test_busy_ns_counts_callbacks_run_without_waiting),
        cmocka_unit_test(test_wait_ns_counts_time_blocked_on_the_real_clock),
        cmocka_unit_test(test_hooks_run_in_every_iteration_even_those_that_skip_their_poll),
        cmocka_unit_test(test_a_callback_queued_by_the_before_hook_keeps_the_poll_from_waiting),
        cmocka_unit_test(test_slow_callback_is_reported_with_its_fn_arg_and_duration),
        cmocka_unit_test(test_slow_fd_handler_is_reported_with_its_io_fn_and_fd),
        cmocka_unit_test(test_every_callback_at_or_over_the_threshold_is_reported),
        cmocka_unit_test(test_callbacks_under_the_threshold_are_not_reported),
        cmocka_unit_test(test_threshold_zero_or_null_fn_turns_reporting_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
