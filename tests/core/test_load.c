/* ctest-label: slow */
/*
 * Load: the loop at sizes far beyond any unit test, checked exactly.
 *
 *  - 1,000,000 timers with random deadlines (many equal), half cancelled,
 *    some of those from inside callbacks: each survivor runs exactly once,
 *    at its deadline, in (deadline, schedule order); no cancelled one runs.
 *  - 10,000,000 call_soon, flat (all queued first) and chained (each queues
 *    the next): FIFO, every one runs; after a flat burst memory is back to
 *    its start, a second never grows past the first; a chain allocates
 *    nothing.
 *  - 10,000,000 timers scheduled and cancelled with at most 1,024 live:
 *    peak memory (counted through loop_options.realloc) stays flat.
 *  - 9,000 socketpairs (18,000 fds, the soft fd limit raised to fit), all
 *    readable and never drained: every fd is served within a few rounds of
 *    epoll's 512-event batches and none starves; an iteration's cost does
 *    not grow with the largest fd number (figures printed).
 *
 * Under valgrind every size is divided by 100: valgrind is there to find
 * memory errors, not to measure.
 */
#include "counting_alloc.h"
#include "fdleak.h"
#include "internals.h"
#include "realtime.h"
#include "rng.h"
#include "sockets.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t scaled(size_t n)
{
    return RUNNING_ON_VALGRIND ? n / 100 : n;
}

static uint64_t rng_state = 0x853c49e6748fea9bu;

static uint64_t rnd(void)
{
    return rng_next(&rng_state);
}

/* ---- a loop that counts its allocations (support/counting_alloc.h) --------------- */

static loop_t *counted_loop(struct counting_alloc *c, enum loop_clock clock)
{
    loop_t *loop;
    loop_options o = {.clock = clock, .realloc = counting_realloc, .alloc_ctx = c};
    assert_int_equal(loop_new_with(&loop, &o), 0);
    return loop;
}

/* ---- 1,000,000 timers ----------------------------------------------------- */

enum { KEEP, CANCEL_OUTSIDE, CANCEL_INSIDE };

static struct {
    uint64_t *when;
    loop_handle *h;
    uint8_t *plan;
    uint32_t *runs;
    uint32_t *inside; /* CANCEL_INSIDE timers, by deadline */
    size_t ninside, next_inside, n;
    size_t ran, last;
    uint64_t last_when;
    int broken;
    char why[200];
} T;

static void timer_broken(const char *fmt, size_t i, uint64_t a, uint64_t b)
{
    if (!T.broken++)
        snprintf(T.why, sizeof(T.why), fmt, i, a, b);
}

static void timer_cb(loop_t *loop, void *arg)
{
    size_t i = (size_t)(uintptr_t)arg;
    if (T.plan[i] != KEEP)
        timer_broken("timer %zu was cancelled but ran (%" PRIu64 " %" PRIu64 ")", i, 0, 0);
    if (loop_now(loop) != T.when[i])
        timer_broken("timer %zu ran at %" PRIu64 ", its deadline is %" PRIu64, i, loop_now(loop),
                     T.when[i]);
    if (T.ran && (T.when[i] < T.last_when || (T.when[i] == T.last_when && i < T.last)))
        timer_broken("timer %zu (deadline %" PRIu64 ") ran after one due at %" PRIu64, i, T.when[i],
                     T.last_when);
    T.runs[i]++;
    T.ran++;
    T.last = i;
    T.last_when = T.when[i];
    /* Cancel one not yet due from inside: it must never run. */
    if (T.next_inside < T.ninside) {
        uint32_t j = T.inside[T.next_inside];
        if (T.when[j] > loop_now(loop)) {
            T.next_inside++;
            if (loop_cancel(loop, T.h[j]) != 0)
                timer_broken("cancel of timer %zu from a callback failed (%" PRIu64 " %" PRIu64 ")",
                             j, 0, 0);
        }
    }
}

static int by_when(const void *a, const void *b)
{
    uint64_t x = T.when[*(const uint32_t *)a], y = T.when[*(const uint32_t *)b];
    return x < y ? -1 : x > y;
}

static void test_million_timers_run_once_each_in_deadline_order(void **state)
{
    (void)state;
    size_t n = scaled(1000000);
    T.n = n;
    T.when = calloc(n, sizeof(*T.when));
    T.h = calloc(n, sizeof(*T.h));
    T.plan = calloc(n, sizeof(*T.plan));
    T.runs = calloc(n, sizeof(*T.runs));
    T.inside = calloc(n, sizeof(*T.inside));
    assert_true(T.when && T.h && T.plan && T.runs && T.inside);

    loop_t *loop;
    assert_int_equal(loop_new_with(&loop, &(loop_options){.clock = LOOP_CLOCK_VIRTUAL}), 0);
    /* Deadlines 1 us .. n/2 us apart by whole microseconds: about two
     * timers per distinct deadline, so ties are common.  Cancelled-inside
     * timers are due only in the last tenth, after plenty of callbacks. */
    uint64_t span = n / 2;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rnd() % 100;
        T.plan[i] = r < 40 ? CANCEL_OUTSIDE : r < 50 ? CANCEL_INSIDE : KEEP;
        if (T.plan[i] == CANCEL_INSIDE)
            T.when[i] = 1000 * (1 + span - span / 10 + rnd() % (span / 10));
        else
            T.when[i] = 1000 * (1 + rnd() % span);
        assert_int_equal(loop_call_at(loop, T.when[i], timer_cb, (void *)(uintptr_t)i, &T.h[i]), 0);
        if (T.plan[i] == CANCEL_INSIDE)
            T.inside[T.ninside++] = (uint32_t)i;
    }
    qsort(T.inside, T.ninside, sizeof(*T.inside), by_when);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (T.plan[i] == CANCEL_OUTSIDE)
            assert_int_equal(loop_cancel(loop, T.h[i]), 0);
        kept += T.plan[i] == KEEP;
    }
    assert_loop_valid(loop);

    uint64_t t0 = mono_ns();
    assert_int_equal(loop_run(loop), 0);
    uint64_t t1 = mono_ns();
    assert_loop_valid(loop);
    if (T.broken)
        fail_msg("%d violation(s); first: %s", T.broken, T.why);
    assert_int_equal(T.next_inside, T.ninside);
    for (size_t i = 0; i < n; i++) {
        if (T.runs[i] != (T.plan[i] == KEEP))
            fail_msg("timer %zu (plan %d) ran %u times", i, T.plan[i], T.runs[i]);
        if (T.plan[i] != KEEP)
            assert_int_equal(loop_cancel(loop, T.h[i]), -ENOENT);
    }
    assert_int_equal(T.ran, kept);
    printf("load: %zu timers, %zu cancelled (%zu from callbacks), %zu ran in order in %.0f ms\n", n,
           n - kept, T.ninside, kept, (double)(t1 - t0) / 1e6);
    assert_int_equal(loop_free(loop), 0);
    free(T.when);
    free(T.h);
    free(T.plan);
    free(T.runs);
    free(T.inside);
}

/* ---- 10,000,000 call_soon ---------------------------------------------- */

static size_t soon_expected, soon_n, soon_bad;

static void flat_cb(loop_t *loop, void *arg)
{
    (void)loop;
    if ((size_t)(uintptr_t)arg != soon_expected)
        soon_bad++;
    soon_expected++;
}

static void soon_chain_cb(loop_t *loop, void *arg)
{
    size_t i = (size_t)(uintptr_t)arg;
    if (i != soon_expected)
        soon_bad++;
    soon_expected++;
    if (i + 1 < soon_n && loop_call_soon(loop, soon_chain_cb, (void *)(uintptr_t)(i + 1), NULL))
        soon_bad++;
}

static void flat_burst(loop_t *loop, size_t n)
{
    soon_expected = soon_bad = 0;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(loop_call_soon(loop, flat_cb, (void *)(uintptr_t)i, NULL), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(soon_bad, 0);
    assert_int_equal(soon_expected, n);
}

static void test_ten_million_call_soon_flat_and_chained_are_fifo(void **state)
{
    (void)state;
    struct counting_alloc c = {0};
    size_t n = scaled(10000000);
    loop_t *loop = counted_loop(&c, LOOP_CLOCK_MONOTONIC);
    size_t start = c.live_bytes;

    /* Chained: each callback queues the next; one entry is ever queued. */
    soon_n = n;
    soon_expected = soon_bad = 0;
    assert_int_equal(loop_call_soon(loop, soon_chain_cb, (void *)(uintptr_t)0, NULL), 0);
    size_t calls0 = c.calls;
    uint64_t t0 = mono_ns();
    assert_int_equal(loop_run(loop), 0);
    uint64_t t1 = mono_ns();
    assert_int_equal(soon_bad, 0);
    assert_int_equal(soon_expected, n);
    assert_int_equal(c.calls, calls0); /* the chain allocated nothing */
    size_t after_chain = c.live_bytes;
    assert_true(after_chain - start < 4096);

    /* Flat: all queued first, then run in order. */
    uint64_t t2 = mono_ns();
    flat_burst(loop, n);
    uint64_t t3 = mono_ns();
    size_t retained = c.live_bytes, peak = c.peak_bytes;
    assert_loop_valid(loop);
    /* The burst drained: its ring was given back, memory is back to start. */
    assert_true(retained - start < 4096);

    /* The same burst again: memory never goes past the first burst's. */
    flat_burst(loop, n);
    assert_int_equal(c.live_bytes, retained);
    assert_int_equal(c.peak_bytes, peak);

    printf("load: %zu call_soon chained in %.0f ms (%.1f ns each), flat in %.0f ms; "
           "memory: %zu bytes at start, %zu after the chain, %zu held after a flat burst "
           "(the burst's ring given back), peak %zu\n",
           n, (double)(t1 - t0) / 1e6, (double)(t1 - t0) / (double)n, (double)(t3 - t2) / 1e6,
           start, after_chain, retained, peak);
    assert_int_equal(loop_free(loop), 0);
    assert_int_equal(c.live_bytes, 0);
}

/* With handles: every slot comes back, cancelled ones too. */
static void test_million_call_soon_with_handles_leave_no_live_slot(void **state)
{
    (void)state;
    struct counting_alloc c = {0};
    size_t n = scaled(1000000);
    loop_t *loop = counted_loop(&c, LOOP_CLOCK_VIRTUAL);
    loop_handle *h = calloc(n, sizeof(*h));
    assert_non_null(h);
    for (int round = 0; round < 2; round++) {
        soon_expected = soon_bad = 0;
        for (size_t i = 0; i < n; i++)
            assert_int_equal(loop_call_soon(loop, flat_cb, (void *)(uintptr_t)i, &h[i]), 0);
        size_t calls = c.calls, peak = c.peak_bytes;
        assert_int_equal(loop_run(loop), 0);
        assert_int_equal(soon_bad, 0);
        assert_int_equal(soon_expected, n);
        assert_int_equal(test_live_slots(loop), 0);
        assert_int_equal(c.calls, calls);
        assert_int_equal(c.peak_bytes, peak);
        for (size_t i = 0; i < n; i += 997)
            assert_int_equal(loop_cancel(loop, h[i]), -ENOENT);
    }
    assert_loop_valid(loop);
    assert_int_equal(loop_free(loop), 0);
    assert_int_equal(c.live_bytes, 0);
    free(h);
}

/* ---- memory bounded by what is live --------------------------------------- */

static void never(loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
    fail_msg("a cancelled timer ran");
}

static void test_ten_million_timers_scheduled_and_cancelled_keep_memory_flat(void **state)
{
    (void)state;
    enum { WINDOW = 1024 };
    static loop_handle h[WINDOW];
    struct counting_alloc c = {0};
    size_t n = scaled(10000000);
    loop_t *loop = counted_loop(&c, LOOP_CLOCK_VIRTUAL);
    size_t peak_early = 0, calls_early = 0, early_at = n < 200000 ? n / 2 : 100000;
    uint64_t t0 = mono_ns();
    for (size_t i = 0; i < n; i++) {
        loop_handle *slot = &h[i % WINDOW];
        if (i >= WINDOW)
            assert_int_equal(loop_cancel(loop, *slot), 0);
        uint64_t delay = LOOP_SEC(1) + rnd() % LOOP_SEC(100);
        int err = i % 3 == 0   ? loop_call_later(loop, delay, never, NULL, slot)
                  : i % 3 == 1 ? loop_call_at(loop, loop_now(loop) + delay, never, NULL, slot)
                               : loop_call_every(loop, delay, never, NULL, slot);
        assert_int_equal(err, 0);
        if (i % 4096 == 0)
            assert_int_equal(loop_run_once(loop, 0), 0);
        if (i + 1 == early_at) {
            peak_early = c.peak_bytes;
            calls_early = c.calls;
        }
    }
    uint64_t t1 = mono_ns();
    assert_loop_valid(loop);
    assert_int_equal(c.peak_bytes, peak_early);
    assert_int_equal(c.calls, calls_early);
    printf("load: %zu timers scheduled and cancelled (%d live at most) in %.0f ms; "
           "peak memory %zu bytes, the same as after the first %zu\n",
           n, WINDOW, (double)(t1 - t0) / 1e6, (size_t)c.peak_bytes, early_at);
    assert_int_equal(loop_free(loop), 0);
    assert_int_equal(c.live_bytes, 0);
}

/* ---- 9,000 socketpairs ------------------------------------------------------ */

static uint32_t *served; /* by fd */
static uint32_t served_total;

static void count_read(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)arg;
    if (events & LOOP_READABLE)
        served[fd]++;
    served_total++;
}

static void test_nine_thousand_readable_socketpairs_are_all_served(void **state)
{
    (void)state;
    size_t pairs = scaled(9000);
    size_t limit = raise_fd_limit(2 * pairs + 64);
    if (limit < 2 * pairs + 64) {
        size_t fit = (limit - 64) / 2;
        printf("load: the fd limit is %zu: %zu socketpairs instead of %zu\n", limit, fit, pairs);
        pairs = fit;
    }
    int(*sv)[2] = calloc(pairs, sizeof(*sv));
    served = calloc(limit + 1, sizeof(*served));
    assert_true(sv && served);
    loop_t *loop;
    assert_int_equal(loop_new_with(&loop, &(loop_options){.strict_poll = true}), 0);
    int maxfd = 0;
    for (size_t i = 0; i < pairs; i++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv[i]),
                         0);
        for (int e = 0; e < 2; e++) {
            assert_int_equal(send(sv[i][e], "x", 1, 0), 1); /* the other end becomes readable */
            assert_int_equal(loop_add_reader(loop, sv[i][e], count_read, NULL), 0);
            if (sv[i][e] > maxfd)
                maxfd = sv[i][e];
        }
    }
    size_t nfds = 2 * pairs;
    /* epoll hands out at most 512 events per wait and rotates its ready
     * list, so all are served in ceil(nfds / 512) iterations; allow three
     * times that. */
    size_t rounds = (nfds + test_max_events() - 1) / test_max_events();
    size_t iters = 0;
    for (; iters < 3 * rounds + 3; iters++) {
        assert_int_equal(loop_run_once(loop, 0), 0);
        size_t unserved = 0;
        for (size_t i = 0; i < pairs; i++)
            unserved += !served[sv[i][0]] + !served[sv[i][1]];
        if (!unserved)
            break;
    }
    if (iters == 3 * rounds + 3)
        fail_msg("some fds were never served in %zu iterations", iters);
    size_t first_round = iters + 1;

    /* Keep going: after k more full rounds, no fd is far behind another. */
    for (size_t k = 0; k < 10 * rounds; k++)
        assert_int_equal(loop_run_once(loop, 0), 0);
    uint32_t lo = UINT32_MAX, hi = 0;
    for (size_t i = 0; i < pairs; i++) {
        for (int e = 0; e < 2; e++) {
            uint32_t s = served[sv[i][e]];
            lo = s < lo ? s : lo;
            hi = s > hi ? s : hi;
        }
    }
    assert_true(lo >= 9);      /* 10 more rounds: at least 9 services each */
    assert_true(hi - lo <= 3); /* and none far ahead of another */
    assert_loop_valid(loop);

    /* Iteration cost against the largest fd: with every fd idle but one,
     * an iteration where the one ready fd is the highest number costs as
     * much as one where it is the lowest. */
    char buf[8];
    for (size_t i = 0; i < pairs; i++)
        for (int e = 0; e < 2; e++)
            while (recv(sv[i][e], buf, sizeof(buf), 0) > 0)
                ;
    int low = sv[0][0], high = maxfd;
    int peer_low = sv[0][1], peer_high = -1;
    for (size_t i = 0; i < pairs; i++)
        peer_high = sv[i][0] == high ? sv[i][1] : sv[i][1] == high ? sv[i][0] : peer_high;
    assert_true(peer_high >= 0);
    enum { SAMPLES = 301 };
    static uint64_t tl[SAMPLES], th[SAMPLES];
    for (int s = 0; s < SAMPLES; s++) {
        for (int which = 0; which < 2; which++) {
            int peer = which ? peer_high : peer_low;
            int fd = which ? high : low;
            assert_int_equal(send(peer, "y", 1, 0), 1);
            uint64_t a = mono_ns();
            assert_int_equal(loop_run_once(loop, 0), 0);
            uint64_t b = mono_ns();
            (which ? th : tl)[s] = b - a;
            assert_int_equal(recv(fd, buf, sizeof(buf), 0), 1);
        }
    }
    qsort(tl, SAMPLES, sizeof(uint64_t), cmp_u64);
    qsort(th, SAMPLES, sizeof(uint64_t), cmp_u64);
    uint64_t ml = tl[SAMPLES / 2], mh = th[SAMPLES / 2];
    printf("load: %zu fds all readable: all served within %zu iterations (%zu batches of %d "
           "needed), then %u..%u services each over %zu more; one iteration with fd %d ready "
           "takes %.1f us (median), with fd %d ready %.1f us\n",
           nfds, first_round, rounds, test_max_events(), lo, hi, 10 * rounds, low, (double)ml / 1e3,
           high, (double)mh / 1e3);
    /* Generous: a scan of the fd table per iteration costs 50x or more. */
    if (!RUNNING_ON_VALGRIND)
        assert_true(mh <= 8 * ml + 20000);

    for (size_t i = 0; i < pairs; i++) {
        for (int e = 0; e < 2; e++) {
            assert_int_equal(loop_remove_reader(loop, sv[i][e]), 0);
            close(sv[i][e]);
        }
    }
    assert_loop_valid(loop);
    assert_int_equal(loop_free(loop), 0);
    free(sv);
    free(served);
    served = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_million_timers_run_once_each_in_deadline_order),
        cmocka_unit_test(test_ten_million_call_soon_flat_and_chained_are_fifo),
        cmocka_unit_test(test_million_call_soon_with_handles_leave_no_live_slot),
        cmocka_unit_test(test_ten_million_timers_scheduled_and_cancelled_keep_memory_flat),
        cmocka_unit_test(test_nine_thousand_readable_socketpairs_are_all_served),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
