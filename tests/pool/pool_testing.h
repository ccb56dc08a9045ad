/*
 * Helpers for the pool suites: a gate that jobs wait at (so a test knows
 * which jobs run, and lets them go when it says), jobs that record what
 * they saw, waits with a generous deadline (a hang becomes a failure, and
 * no wait depends on timing), the process's thread count, and an
 * allocator that counts under a lock, for when a pool thread frees.
 */
#ifndef TESTS_POOL_TESTING_H
#define TESTS_POOL_TESTING_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "counting_alloc.h"
#include "fixtures.h"
#include "loop_pool.h"

/* Long enough for any run under valgrind; a passing run waits far less. */
#define POOL_TEST_DEADLINE_S 60

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
    int started;  /* jobs that reached the gate */
    int finished; /* jobs that went through */
};

static inline void gate_init(struct gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->open = false;
    g->started = g->finished = 0;
}

static inline void gate_destroy(struct gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

static inline void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static inline struct timespec deadline_in(int seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    return ts;
}

/* Wait until n jobs have reached the gate (a hang fails the test). */
static inline void gate_wait_started(struct gate *g, int n)
{
    struct timespec until = deadline_in(POOL_TEST_DEADLINE_S);
    pthread_mutex_lock(&g->mu);
    while (g->started < n)
        if (pthread_cond_timedwait(&g->cv, &g->mu, &until) == ETIMEDOUT) {
            pthread_mutex_unlock(&g->mu);
            fail_msg("only %d of %d jobs started", g->started, n);
        }
    pthread_mutex_unlock(&g->mu);
}

static inline int gate_count(struct gate *g, const int *field)
{
    pthread_mutex_lock(&g->mu);
    int n = *field;
    pthread_mutex_unlock(&g->mu);
    return n;
}

/* A job arg: which gate to wait at, and what to return. */
struct gated {
    struct gate *gate;
    void *result;
    int status;
    _Atomic int ran;
    _Atomic int dropped;
    void *dropped_result;
    pthread_t drop_thread;
    struct called *called; /* for called_done */
};

/* The job: reach the gate, wait until it opens, return what arg says. */
static inline int gated_job(void *arg, void **result)
{
    struct gated *x = arg;
    atomic_fetch_add(&x->ran, 1);
    struct gate *g = x->gate;
    if (g) {
        pthread_mutex_lock(&g->mu);
        g->started++;
        pthread_cond_broadcast(&g->cv);
        while (!g->open)
            pthread_cond_wait(&g->cv, &g->mu);
        g->finished++;
        pthread_mutex_unlock(&g->mu);
    }
    *result = x->result;
    return x->status;
}

static inline void gated_drop(void *arg, void *result)
{
    struct gated *x = arg;
    x->dropped_result = result;
    x->drop_thread = pthread_self();
    atomic_fetch_add(&x->dropped, 1);
}

/* loop_pool_call's done: records what it got, and where. */
struct called {
    _Atomic int calls;
    int status;
    void *result;
    pthread_t thread;
};

static inline void called_done(void *arg, int status, void *result)
{
    struct gated *x = arg;
    struct called *c = x->called;
    c->status = status;
    c->result = result;
    c->thread = pthread_self();
    atomic_fetch_add(&c->calls, 1);
}

static inline loop_pool *new_pool(loop_t *l, unsigned threads)
{
    loop_pool *p = NULL;
    loop_pool_options o = {.threads = threads};
    assert_int_equal(loop_pool_new(l, &o, &p), 0);
    assert_non_null(p);
    return p;
}

static inline loop_future *submit(loop_pool *p, struct gated *x)
{
    loop_future *f = NULL;
    assert_int_equal(loop_pool_submit_with(p, gated_job, x, 0, gated_drop, &f), 0);
    assert_non_null(f);
    return f;
}

static inline loop_pool_stats_t pool_stats(loop_pool *p)
{
    loop_pool_stats_t s;
    assert_int_equal(loop_pool_stats(p, &s), 0);
    return s;
}

/* Poll fn(arg) every millisecond until it holds (a hang fails the test). */
static inline void wait_until(bool (*fn)(void *), void *arg, const char *what)
{
    const struct timespec ms = {0, 1000000};
    for (long i = 0; !fn(arg); i++) {
        if (i > POOL_TEST_DEADLINE_S * 1000L)
            fail_msg("still waiting for %s", what);
        nanosleep(&ms, NULL);
    }
}

/* Nothing queued and no thread in a job: every job is finished (a thread
 * counts itself idle as it hands its job to the loop). */
static inline bool pool_all_idle(void *arg)
{
    loop_pool_stats_t s = pool_stats(arg);
    return s.queued == 0 && s.idle == s.threads;
}

/* Every idle thread asleep (none looking for work): the next submit must
 * wake one, or start one. */
static inline bool pool_idle_asleep(void *arg)
{
    loop_pool_stats_t s = pool_stats(arg);
    return s.queued == 0 && s.idle == s.threads && s.sleeping == s.idle;
}

/*
 * Wait until the loop has an event to take (its fd is readable): a thread
 * counts itself idle as it hands its job over, just before it writes the
 * eventfd, so "every thread idle" does not mean the loop was woken yet.
 */
static inline void wait_loop_readable(loop_t *l)
{
    struct pollfd p = {.fd = loop_fd(l), .events = POLLIN};
    assert_int_equal(poll(&p, 1, POOL_TEST_DEADLINE_S * 1000), 1);
}

/* The threads of this process (/proc/self/status). */
static inline int process_threads(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    assert_true(n > 0);
    return n;
}

static inline bool threads_back_to(void *arg)
{
    return process_threads() == *(int *)arg;
}

/* A counting allocator that pool threads may call too. */
struct locked_alloc {
    pthread_mutex_t mu;
    struct counting_alloc a;
};

static inline void *locked_realloc(void *ctx, void *ptr, size_t size)
{
    struct locked_alloc *la = ctx;
    pthread_mutex_lock(&la->mu);
    void *p = counting_realloc(&la->a, ptr, size);
    pthread_mutex_unlock(&la->mu);
    return p;
}

static inline long locked_live_blocks(struct locked_alloc *la)
{
    pthread_mutex_lock(&la->mu);
    long n = la->a.live_blocks;
    pthread_mutex_unlock(&la->mu);
    return n;
}

#endif /* TESTS_POOL_TESTING_H */
