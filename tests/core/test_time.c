/* ctest-label: slow */
/*
 * Real time: what the loop promises about CLOCK_MONOTONIC.
 *
 *  - Never early, asserted strictly: thousands of 1-50 ms timers (whole
 *    and odd nanoseconds, call_later, call_at and call_every, strict and
 *    default polling) each check CLOCK_MONOTONIC and loop_now() against
 *    their deadline inside the callback.
 *  - No busy-spinning on sub-millisecond timers: a chain of 50-950 us
 *    timers costs about one poll each (counted with loop_stats).
 *  - An EINTR storm (a signal every 100 us, no SA_RESTART, aimed at the
 *    loop's thread with timer_create) neither fails loop_run nor makes any
 *    timer early.
 *
 * Lateness is printed (p50 / p99 / max), not asserted, except for one
 * bound so generous (1 s) that only a broken wait could cross it: a loaded
 * 2-core machine running this under ASan delays these timers by tens of ms
 * at worst, while a wait in the wrong unit, or one that overlooks a timer,
 * is late by seconds or for ever.
 * Assertions about counts allow three times what is needed.
 */
#include "fdleak.h"
#include "fixtures.h"
#include "realtime.h"
#include "rng.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LATE_BOUND_NS LOOP_SEC(1)

static uint64_t rng_state = 0x2545f4914f6cdd1du;

static uint64_t rnd(void)
{
    return rng_next(&rng_state);
}

/* ---- one timer's record ------------------------------------------------- */

struct tmr {
    uint64_t not_before; /* CLOCK_MONOTONIC: the deadline, or a lower bound of it */
    uint64_t exact;      /* the loop's deadline when known exactly (call_at), else 0 */
    uint64_t period;     /* call_every */
    int runs, want_runs;
    loop_handle h;
};

static struct tmr *tm;
static size_t ntm;
static uint64_t *late; /* lateness of every run, ns */
static size_t nlate;
static int early;
static char early_msg[200];

static void on_timer(loop_t *loop, void *arg)
{
    uint64_t now = mono_ns();
    struct tmr *t = &tm[(uintptr_t)arg];
    if (now < t->not_before || loop_now(loop) < t->not_before ||
        (t->exact && loop_now(loop) < t->exact)) {
        if (!early++)
            snprintf(early_msg, sizeof(early_msg),
                     "timer %zu early: monotonic %" PRIu64 ", loop_now %" PRIu64
                     ", deadline %" PRIu64,
                     (size_t)(uintptr_t)arg, now, loop_now(loop), t->not_before);
    }
    late[nlate++] = now - t->not_before;
    t->runs++;
    if (t->period) {
        /* The next deadline is at least this one plus the period. */
        t->not_before += t->period;
        if (t->runs == t->want_runs)
            loop_cancel(loop, t->h);
    }
}

static void report(const char *what, uint64_t *v, size_t n)
{
    if (!n)
        return;
    qsort(v, n, sizeof(*v), cmp_u64);
    printf("time: %s: %zu runs, lateness p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", what, n,
           (double)v[n / 2] / 1e6, (double)v[n * 99 / 100] / 1e6, (double)v[n - 1] / 1e6);
}

/* Thousands of 1-50 ms timers of every kind, at once. */
static void never_early(bool strict)
{
    size_t n = RUNNING_ON_VALGRIND ? 300 : 3000;
    tm = calloc(n, sizeof(*tm));
    late = calloc(n * 8, sizeof(*late));
    assert_true(tm && late);
    ntm = n;
    nlate = 0;
    early = 0;
    loop_t *loop;
    assert_int_equal(loop_new_with(&loop, &(loop_options){.strict_poll = strict}), 0);
    for (size_t i = 0; i < n; i++) {
        struct tmr *t = &tm[i];
        uint64_t d = LOOP_MS(1) + rnd() % LOOP_MS(49);
        if (i % 2)
            d -= d % 1000000; /* whole milliseconds, some with odd ns */
        void *arg = (void *)(uintptr_t)i;
        switch (i % 4) {
        case 0: /* counts from the call: its deadline is at least now + d */
            t->not_before = mono_ns() + d;
            assert_int_equal(loop_call_later(loop, d, on_timer, arg, &t->h), 0);
            break;
        case 1:
        case 2: /* counts from the iteration's start: exact */
            t->exact = t->not_before = loop_now(loop) + d;
            assert_int_equal(loop_call_at(loop, t->exact, on_timer, arg, &t->h), 0);
            break;
        default:
            t->period = LOOP_MS(1) + rnd() % LOOP_MS(9);
            t->want_runs = 5;
            t->not_before = mono_ns() + t->period;
            assert_int_equal(loop_call_every(loop, t->period, on_timer, arg, &t->h), 0);
            break;
        }
    }
    assert_int_equal(loop_run(loop), 0);
    if (early)
        fail_msg("%d early run(s); first: %s", early, early_msg);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(tm[i].runs, tm[i].period ? tm[i].want_runs : 1);
    char what[80];
    snprintf(what, sizeof(what), "%zu timers of 1-50 ms, %s", n,
             strict ? "strict_poll" : "default polling");
    report(what, late, nlate);
    if (!RUNNING_ON_VALGRIND)
        assert_true(late[nlate - 1] < LATE_BOUND_NS);
    assert_int_equal(loop_free(loop), 0);
    free(tm);
    free(late);
}

static void test_thousands_of_timers_are_never_early_strict(void **state)
{
    (void)state;
    never_early(true);
}

static void test_thousands_of_timers_are_never_early_default(void **state)
{
    (void)state;
    never_early(false);
}

/* ---- sub-millisecond timers -------------------------------------------------- */

static size_t chain_left;

static void sub_ms(loop_t *loop, void *arg)
{
    struct tmr *t = arg;
    uint64_t now = mono_ns();
    if (now < t->not_before && !early++)
        snprintf(early_msg, sizeof(early_msg), "sub-ms timer early by %" PRIu64 " ns",
                 t->not_before - now);
    late[nlate++] = now - t->not_before;
    if (--chain_left) {
        uint64_t d = 50000 + rnd() % 900000;
        t->not_before = mono_ns() + d;
        assert_int_equal(loop_call_later(loop, d, sub_ms, t, NULL), 0);
    }
}

static void test_sub_millisecond_timers_do_not_busy_spin(void **state)
{
    (void)state;
    size_t n = RUNNING_ON_VALGRIND ? 50 : 500;
    late = calloc(n, sizeof(*late));
    assert_non_null(late);
    nlate = 0;
    early = 0;
    chain_left = n;
    struct tmr t = {0};
    loop_t *loop;
    assert_int_equal(loop_new(&loop), 0);
    t.not_before = mono_ns() + 300000;
    assert_int_equal(loop_call_later(loop, 300000, sub_ms, &t, NULL), 0);
    loop_stats_t before, after;
    assert_int_equal(loop_stats(loop, &before), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(loop_stats(loop, &after), 0);
    if (early)
        fail_msg("%s", early_msg);
    uint64_t polls = after.polls - before.polls, iters = after.iterations - before.iterations;
    printf("time: %zu chained timers of 50-950 us: %" PRIu64 " polls, %" PRIu64
           " iterations (%.2f polls per timer)\n",
           n, polls, iters, (double)polls / (double)n);
    report("sub-millisecond chain", late, nlate);
    /* One wait per timer is what is needed; a spin makes thousands. */
    assert_true(polls <= 3 * n + 10);
    assert_true(iters <= 3 * n + 10);

    /* One timer 20 ms away: a handful of polls, not a spin. */
    nlate = 0;
    chain_left = 1;
    t.not_before = mono_ns() + LOOP_MS(20);
    assert_int_equal(loop_call_later(loop, LOOP_MS(20), sub_ms, &t, NULL), 0);
    assert_int_equal(loop_stats(loop, &before), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(loop_stats(loop, &after), 0);
    assert_true(after.polls - before.polls <= 3);
    assert_int_equal(loop_free(loop), 0);
    free(late);
}

/* ---- EINTR storm --------------------------------------------------------------- */

static volatile sig_atomic_t storm_signals;

static void on_storm(int signo)
{
    (void)signo;
    storm_signals++;
}

static void test_eintr_storm_fails_nothing_and_delays_little(void **state)
{
    (void)state;
    size_t n = RUNNING_ON_VALGRIND ? 100 : 1000;
    tm = calloc(n, sizeof(*tm));
    late = calloc(n, sizeof(*late));
    assert_true(tm && late);
    ntm = n;
    nlate = 0;
    early = 0;

    /* No SA_RESTART: every signal interrupts the wait with EINTR. */
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_storm;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
    struct sigevent sev = {0};
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGALRM;
#ifdef sigev_notify_thread_id
    sev.sigev_notify_thread_id = gettid();
#else
    sev._sigev_un._tid = gettid(); /* glibc before 2.37 does not name it */
#endif
    timer_t storm;
    assert_int_equal(timer_create(CLOCK_MONOTONIC, &sev, &storm), 0);
    long interval = RUNNING_ON_VALGRIND ? 1000000 : 100000;
    struct itimerspec its = {{0, interval}, {0, interval}};

    loop_t *loop;
    assert_int_equal(loop_new(&loop), 0);
    for (size_t i = 0; i < n; i++) {
        uint64_t d = LOOP_MS(1) + rnd() % LOOP_MS(19);
        tm[i].not_before = mono_ns() + d;
        assert_int_equal(loop_call_later(loop, d, on_timer, (void *)(uintptr_t)i, NULL), 0);
    }
    /* Plus a lone timer with nothing else pending: its whole wait is stormed. */
    loop_stats_t before, after;
    assert_int_equal(loop_stats(loop, &before), 0);
    storm_signals = 0;
    assert_int_equal(timer_settime(storm, 0, &its, NULL), 0);
    int rc = loop_run(loop);
    size_t lone = nlate;
    tm = realloc(tm, (n + 1) * sizeof(*tm));
    late = realloc(late, (n + 1) * sizeof(*late));
    assert_true(tm && late);
    memset(&tm[n], 0, sizeof(tm[n]));
    tm[n].not_before = mono_ns() + LOOP_MS(30);
    assert_int_equal(loop_call_later(loop, LOOP_MS(30), on_timer, (void *)(uintptr_t)n, NULL), 0);
    int rc2 = loop_run(loop);
    struct itimerspec off = {{0, 0}, {0, 0}};
    timer_settime(storm, 0, &off, NULL);
    timer_delete(storm);
    sigaction(SIGALRM, &old, NULL);
    assert_int_equal(loop_stats(loop, &after), 0);

    assert_int_equal(rc, 0);
    assert_int_equal(rc2, 0);
    if (early)
        fail_msg("%d early run(s) under the storm; first: %s", early, early_msg);
    for (size_t i = 0; i <= n; i++)
        assert_int_equal(tm[i].runs, 1);
    uint64_t lone_late = late[lone];
    printf("time: EINTR storm: %d signals every %ld us, %" PRIu64 " polls for %zu timers; "
           "a lone 30 ms timer was %.3f ms late\n",
           (int)storm_signals, interval / 1000, after.polls - before.polls, n + 1,
           (double)lone_late / 1e6);
    report("timers under an EINTR storm", late, nlate);
    /* The storm happened (valgrind delivers signals at its own pace). */
    assert_true(storm_signals > (RUNNING_ON_VALGRIND ? 0 : 10));
    if (!RUNNING_ON_VALGRIND)
        assert_true(late[nlate - 1] < LATE_BOUND_NS);
    assert_int_equal(loop_free(loop), 0);
    free(tm);
    free(late);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thousands_of_timers_are_never_early_strict),
        cmocka_unit_test(test_thousands_of_timers_are_never_early_default),
        cmocka_unit_test(test_sub_millisecond_timers_do_not_busy_spin),
        cmocka_unit_test(test_eintr_storm_fails_nothing_and_delays_little),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
