/*
 * loop_call_soon_threadsafe(): calls from any thread run exactly once on
 * the loop thread, in the order each thread made them; one eventfd write
 * per empty-to-non-empty transition wakes a blocked loop; a full eventfd
 * counter is not an error; loop_stop() can be asked for from another
 * thread through it.
 *
 * The stress test posts 1000000 calls from each of 8 threads (about 10 s
 * under ThreadSanitizer).  LOOP_TEST_THREADSAFE_CALLS=N sets the number per
 * thread, for slower machines and tools; the rules checked do not change.
 */
#include "counting_alloc.h"
#include "internals.h"
#include "poster.h"
#include "record.h"
#include "watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NTHREADS 8
#define DEFAULT_CALLS 1000000u
#define WATCHDOG_SECONDS 240

/* ---- helpers ---------------------------------------------------------- */

static unsigned calls_per_thread(void)
{
    const char *s = getenv("LOOP_TEST_THREADSAFE_CALLS");
    if (!s || !*s)
        return DEFAULT_CALLS;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || v == 0 || v > 100000000ul)
        fail_msg("LOOP_TEST_THREADSAFE_CALLS=%s: want a number of calls per thread", s);
    return (unsigned)v;
}

/* ---- the stress test: exact counts, per-thread order -------------------- */

struct stress {
    loop_t *loop;
    unsigned calls; /* per thread */
    pthread_barrier_t start;
    pthread_t loop_thread;
    /* Written by the loop thread only. */
    uint64_t next[NTHREADS]; /* the sequence number each thread posts next */
    uint64_t total;
    uint64_t out_of_order, wrong_thread;
    uint64_t first_bad_thread, first_bad_got, first_bad_want;
    /* Written by each poster for itself. */
    int post_errors[NTHREADS];
};

struct stress_poster {
    struct stress *s;
    unsigned id;
};

/* The callbacks' argument carries the post itself, so the run needs this. */
static struct stress *stress;

static void stress_cb(loop_t *loop, void *arg)
{
    struct stress *s = stress;
    uintptr_t v = (uintptr_t)arg;
    unsigned id = (unsigned)(v % NTHREADS);
    uint64_t seq = v / NTHREADS;
    if (!pthread_equal(pthread_self(), s->loop_thread))
        s->wrong_thread++;
    if (seq != s->next[id] && s->out_of_order++ == 0) {
        s->first_bad_thread = id;
        s->first_bad_got = seq;
        s->first_bad_want = s->next[id];
    }
    s->next[id] = seq + 1;
    if (++s->total == (uint64_t)NTHREADS * s->calls)
        loop_stop(loop);
}

static void *stress_poster_main(void *arg)
{
    struct stress_poster *p = arg;
    struct stress *s = p->s;
    pthread_barrier_wait(&s->start);
    for (uintptr_t seq = 0; seq < s->calls; seq++) {
        int err = loop_call_soon_threadsafe(s->loop, stress_cb, (void *)(seq * NTHREADS + p->id));
        if (err)
            s->post_errors[p->id]++;
    }
    return NULL;
}

static void test_calls_from_8_threads_each_run_once_in_per_thread_order(void **state)
{
    (void)state;
    struct stress *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    stress = s;
    s->loop = new_real_loop();
    s->calls = calls_per_thread();
    s->loop_thread = pthread_self();
    assert_true((uint64_t)s->calls * NTHREADS < UINTPTR_MAX / 2);
    assert_int_equal(pthread_barrier_init(&s->start, NULL, NTHREADS + 1), 0);

    pthread_t threads[NTHREADS];
    struct stress_poster posters[NTHREADS];
    for (unsigned i = 0; i < NTHREADS; i++) {
        posters[i] = (struct stress_poster){s, i};
        assert_int_equal(pthread_create(&threads[i], NULL, stress_poster_main, &posters[i]), 0);
    }
    watchdog_start("8 posting threads", WATCHDOG_SECONDS);
    loop_ref(s->loop); /* the posters may not have posted anything yet */
    pthread_barrier_wait(&s->start);
    assert_int_equal(loop_run(s->loop), 0);
    loop_unref(s->loop);
    for (unsigned i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    watchdog_stop();

    /* Nothing more is queued: a further iteration runs nothing. */
    assert_int_equal(loop_run_once(s->loop, 0), 0);
    assert_int_equal(loop_run(s->loop), 0);

    for (unsigned i = 0; i < NTHREADS; i++) {
        assert_int_equal(s->post_errors[i], 0);
        if (s->next[i] != s->calls)
            fail_msg("thread %u: %" PRIu64 " calls ran, want %u", i, s->next[i], s->calls);
    }
    if (s->out_of_order)
        fail_msg("%" PRIu64 " calls out of order; first: thread %" PRIu64 " ran call %" PRIu64
                 " when %" PRIu64 " was due",
                 s->out_of_order, s->first_bad_thread, s->first_bad_got, s->first_bad_want);
    assert_int_equal(s->wrong_thread, 0);
    if (s->total != (uint64_t)NTHREADS * s->calls)
        fail_msg("%" PRIu64 " calls ran, want %" PRIu64, s->total, (uint64_t)NTHREADS * s->calls);

    loop_stats_t st;
    assert_int_equal(loop_stats(s->loop, &st), 0);
    assert_true(st.callbacks >= s->total);

    assert_int_equal(loop_free(s->loop), 0);
    pthread_barrier_destroy(&s->start);
    stress = NULL;
    free(s);
}

/* ---- waking a blocked loop ------------------------------------------------ */

static void test_stop_posted_from_another_thread_wakes_a_blocked_loop(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    loop_ref(l); /* nothing else to do: without a wake-up, the loop sleeps forever */
    /* Posted only once the loop sleeps in its poll: the post must wake it. */
    struct poster p = {.loop = l, .fn = stop_cb, .wait_for = test_gettid()};
    assert_int_equal(poster_start(&p), 0);
    watchdog_start("loop_stop posted while the loop was blocked", 60);
    assert_int_equal(loop_run(l), 0);
    watchdog_stop();
    assert_int_equal(poster_join(&p), 0);

    loop_stats_t st;
    assert_int_equal(loop_stats(l, &st), 0);
    assert_true(st.callbacks == 1);
    loop_unref(l);
    assert_int_equal(loop_free(l), 0);
}

/* A callback that keeps the ready queue non-empty forever. */
static void spin_cb(loop_t *loop, void *arg)
{
    __atomic_fetch_add((uint64_t *)arg, 1, __ATOMIC_RELAXED); /* the poster reads it */
    assert_int_equal(loop_call_soon(loop, spin_cb, arg, NULL), 0);
}

struct poster_once {
    loop_t *loop;
    const uint64_t *spins;
    int err;
};

static void *post_stop_when_spinning(void *arg)
{
    struct poster_once *p = arg;
    const struct timespec ms = {0, 1000000};
    while (__atomic_load_n(p->spins, __ATOMIC_RELAXED) == 0)
        nanosleep(&ms, NULL);
    p->err = loop_call_soon_threadsafe(p->loop, stop_cb, NULL);
    return NULL;
}

static void test_stop_posted_from_another_thread_ends_a_busy_loop(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    uint64_t spins = 0;
    assert_int_equal(loop_call_soon(l, spin_cb, &spins, NULL), 0);
    struct poster_once p = {l, &spins, -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, post_stop_when_spinning, &p), 0);
    watchdog_start("loop_stop posted while call_soon kept the loop busy", 60);
    assert_int_equal(loop_run(l), 0);
    watchdog_stop();
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(p.err, 0);
    assert_true(__atomic_load_n(&spins, __ATOMIC_RELAXED) > 0);
    assert_int_equal(loop_free(l), 0); /* the pending spin_cb is dropped */
}

/* ---- the eventfd --------------------------------------------------------- */

static uint64_t read_counter(loop_t *l)
{
    uint64_t v = 0;
    ssize_t n = read(test_wakefd(l), &v, sizeof(v));
    if (n != (ssize_t)sizeof(v))
        return 0; /* EAGAIN: the counter is 0 */
    return v;
}

static void test_eventfd_is_written_once_when_the_queue_becomes_non_empty(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    int runs = 0;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(loop_call_soon_threadsafe(l, count_cb, &runs), 0);
    assert_int_equal(read_counter(l), 1);

    /* Put the wake-up back, and let the loop take the calls. */
    uint64_t one = 1;
    assert_int_equal(write(test_wakefd(l), &one, sizeof(one)), (ssize_t)sizeof(one));
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(runs, 1000);

    /* Drained: the next call is the next empty-to-non-empty transition. */
    assert_int_equal(read_counter(l), 0);
    assert_int_equal(loop_call_soon_threadsafe(l, count_cb, &runs), 0);
    assert_int_equal(loop_call_soon_threadsafe(l, count_cb, &runs), 0);
    assert_int_equal(read_counter(l), 1);
    assert_int_equal(write(test_wakefd(l), &one, sizeof(one)), (ssize_t)sizeof(one));
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(runs, 1002);
    assert_int_equal(loop_free(l), 0);
}

static void test_full_eventfd_counter_neither_blocks_nor_fails_a_call(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    /* The largest value an eventfd holds: any further write would block or
     * fail with EAGAIN. */
    uint64_t max = UINT64_MAX - 1;
    assert_int_equal(write(test_wakefd(l), &max, sizeof(max)), (ssize_t)sizeof(max));
    uint64_t one = 1;
    assert_int_equal(write(test_wakefd(l), &one, sizeof(one)), -1);
    assert_int_equal(errno, EAGAIN);

    int runs = 0;
    watchdog_start("a call posted over a full eventfd counter", 60);
    assert_int_equal(loop_call_soon_threadsafe(l, count_cb, &runs), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(runs, 1);

    /* The read reset the counter: later calls wake the loop normally. */
    assert_int_equal(loop_call_soon_threadsafe(l, count_cb, &runs), 0);
    assert_int_equal(loop_run(l), 0);
    watchdog_stop();
    assert_int_equal(runs, 2);
    assert_int_equal(loop_free(l), 0);
}

/* ---- lifetime and ordering on the loop thread ---------------------------- */

static void test_queued_calls_keep_loop_run_alive_but_the_channel_does_not(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    /* Nothing queued, no ref: loop_run returns at once, without blocking. */
    watchdog_start("loop_run with only the threadsafe channel", 60);
    assert_int_equal(loop_run(l), 0);

    int runs = 0;
    assert_int_equal(loop_call_soon_threadsafe(l, count_cb, &runs), 0);
    assert_int_equal(loop_run(l), 0);
    watchdog_stop();
    assert_int_equal(runs, 1);
    assert_int_equal(loop_free(l), 0);
}

static void post_two_cb(loop_t *loop, void *arg)
{
    struct mark *items = arg;
    assert_int_equal(loop_call_soon_threadsafe(loop, record_cb, &items[1]), 0);
    assert_int_equal(loop_call_soon_threadsafe(loop, record_cb, &items[2]), 0);
    /* Posted from a callback: not run in this iteration's snapshot. */
    assert_int_equal(items[0].r->n, 0);
}

static void test_calls_posted_from_the_loop_thread_run_in_a_later_iteration(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    struct record o = {0};
    struct mark items[3] = {{&o, 0}, {&o, 1}, {&o, 2}};
    assert_int_equal(loop_call_soon(l, post_two_cb, items, NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(o.n, 0);
    watchdog_start("calls posted from the loop thread", 60);
    assert_int_equal(loop_run(l), 0);
    watchdog_stop();
    assert_int_equal(o.n, 2);
    assert_int_equal(o.id[0], 1);
    assert_int_equal(o.id[1], 2);
    assert_int_equal(loop_free(l), 0);
}

static void test_null_loop_or_fn_is_einval(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    int runs = 0;
    assert_int_equal(loop_call_soon_threadsafe(NULL, count_cb, &runs), -EINVAL);
    assert_int_equal(loop_call_soon_threadsafe(l, NULL, &runs), -EINVAL);
    assert_int_equal(loop_run(l), 0); /* nothing was queued */
    assert_int_equal(runs, 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_enomem_queues_nothing_and_the_loop_stays_usable(void **state)
{
    (void)state;
    struct counting_alloc a = {0};
    loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
    int runs = 0, failed = 0;
    counting_alloc_fail_after(&a, 0);
    /* The queue starts empty, so the first call must allocate and fails. */
    assert_int_equal(loop_call_soon_threadsafe(l, count_cb, &runs), -ENOMEM);
    assert_int_equal(loop_run(l), 0); /* nothing was queued: nothing keeps it alive */
    assert_int_equal(runs, 0);

    counting_alloc_never_fail(&a);
    for (int i = 0; i < 100; i++)
        if (loop_call_soon_threadsafe(l, count_cb, &runs))
            failed++;
    assert_int_equal(failed, 0);
    watchdog_start("calls after an -ENOMEM", 60);
    assert_int_equal(loop_run(l), 0);
    watchdog_stop();
    assert_int_equal(runs, 100);
    assert_int_equal(loop_free(l), 0);
}

/*
 * Calls taken while other callbacks are queued join the ready queue
 * behind them, which may have to grow.  (strict_poll: the iteration polls
 * with a callback queued.)
 */
static void test_calls_not_taken_for_lack_of_memory_run_at_a_later_run(void **state)
{
    (void)state;
    struct counting_alloc a = {0};
    loop_t *l = new_loop_with(
        (loop_options){.realloc = counting_realloc, .alloc_ctx = &a, .strict_poll = true});
    int runs = 0, queued = 0;
    for (int i = 0; i < 100; i++)
        assert_int_equal(loop_call_soon_threadsafe(l, count_cb, &runs), 0);
    assert_int_equal(loop_call_soon(l, count_cb, &queued, NULL), 0);
    /* The loop cannot grow its ready queue to take them. */
    counting_alloc_fail_after(&a, 0);
    watchdog_start("calls kept after an -ENOMEM drain", 60);
    assert_int_equal(loop_run(l), -ENOMEM);
    assert_int_equal(runs, 0);
    assert_int_equal(queued, 1);
    counting_alloc_never_fail(&a);
    assert_int_equal(loop_run(l), 0);
    watchdog_stop();
    assert_int_equal(runs, 100);
    assert_int_equal(loop_free(l), 0);
}

/* Calls taken by a poll made with nothing queued run from where they were
 * posted: taking them needs no memory. */
static void test_calls_taken_when_nothing_is_queued_need_no_memory(void **state)
{
    (void)state;
    struct counting_alloc a = {0};
    loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
    int runs = 0;
    for (int i = 0; i < 100; i++)
        assert_int_equal(loop_call_soon_threadsafe(l, count_cb, &runs), 0);
    counting_alloc_fail_after(&a, 0);
    watchdog_start("calls taken without memory", 60);
    assert_int_equal(loop_run(l), 0);
    watchdog_stop();
    assert_int_equal(runs, 100);
    counting_alloc_never_fail(&a);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls_from_8_threads_each_run_once_in_per_thread_order),
        cmocka_unit_test(test_stop_posted_from_another_thread_wakes_a_blocked_loop),
        cmocka_unit_test(test_stop_posted_from_another_thread_ends_a_busy_loop),
        cmocka_unit_test(test_eventfd_is_written_once_when_the_queue_becomes_non_empty),
        cmocka_unit_test(test_full_eventfd_counter_neither_blocks_nor_fails_a_call),
        cmocka_unit_test(test_queued_calls_keep_loop_run_alive_but_the_channel_does_not),
        cmocka_unit_test(test_calls_posted_from_the_loop_thread_run_in_a_later_iteration),
        cmocka_unit_test(test_null_loop_or_fn_is_einval),
        cmocka_unit_test(test_enomem_queues_nothing_and_the_loop_stays_usable),
        cmocka_unit_test(test_calls_not_taken_for_lack_of_memory_run_at_a_later_run),
        cmocka_unit_test(test_calls_taken_when_nothing_is_queued_need_no_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
