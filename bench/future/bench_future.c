/*
 * Futures beside plain callbacks, in one process:
 *
 *   bench_future soon N      a chain of N call_soon callbacks (the baseline)
 *   bench_future complete N  N steps of: complete a ready-made future whose
 *                            one done callback completes the next
 *   bench_future hot N       as complete, in rounds of 4,096 futures made
 *                            outside the timed part, so they are in cache
 *   bench_future cycle N     N steps of: new future, add a done callback,
 *                            complete it, run the callback, unref
 *
 * Prints "RESULT <mode> ns_per_step=X ops=N".  Under callgrind only the
 * chain itself is counted (CALLGRIND_START/STOP around it).
 */
#define _GNU_SOURCE
#include "loop_future.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#endif
#endif
#ifndef CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_STOP_INSTRUMENTATION
#endif

static long left;
static loop_future **chain;
static long next_index;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void soon_step(loop_t *loop, void *arg)
{
    if (--left > 0)
        loop_call_soon(loop, soon_step, arg, NULL);
}

static void complete_step(loop_future *f, void *arg)
{
    (void)f;
    (void)arg;
    if (--left > 0)
        loop_future_set_result(chain[next_index++], NULL);
}

static void cycle_step(loop_future *f, void *arg);

static void cycle_next(loop_t *loop)
{
    loop_future *g;
    if (loop_future_new(loop, &g) || loop_future_add_done(g, cycle_step, NULL) ||
        loop_future_set_result(g, NULL))
        abort();
    loop_future_unref(g); /* its queued callback holds it */
}

static void cycle_step(loop_future *f, void *arg)
{
    (void)arg;
    if (--left > 0)
        cycle_next(loop_future_loop(f));
}

/* A complete chain over futures made just before it, in rounds. */
static uint64_t run_hot(loop_t *loop, long n)
{
    enum { ROUND = 4096 };
    loop_future *round[ROUND];
    uint64_t ns = 0;
    chain = round;
    while (n > 0) {
        long k = n < ROUND ? n : ROUND;
        for (long i = 0; i < k; i++)
            if (loop_future_new(loop, &round[i]) ||
                loop_future_add_done(round[i], complete_step, NULL))
                abort();
        left = k;
        next_index = 0;
        uint64_t t0 = now_ns();
        CALLGRIND_START_INSTRUMENTATION;
        loop_future_set_result(round[next_index++], NULL);
        loop_run(loop);
        CALLGRIND_STOP_INSTRUMENTATION;
        ns += now_ns() - t0;
        if (left != 0)
            abort();
        for (long i = 0; i < k; i++)
            loop_future_unref(round[i]);
        n -= k;
    }
    chain = NULL;
    return ns;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_future soon|complete|hot|cycle N\n");
        return 2;
    }
    const char *mode = argv[1];
    long n = atol(argv[2]);
    loop_t *loop;
    if (n < 1 || loop_new(&loop))
        return 2;
    if (strcmp(mode, "hot") == 0) {
        uint64_t ns = run_hot(loop, n);
        printf("RESULT %s ns_per_step=%.2f ops=%ld\n", mode, (double)ns / (double)n, n);
        loop_free(loop);
        return 0;
    }
    left = n;
    if (strcmp(mode, "complete") == 0) {
        chain = calloc((size_t)n, sizeof(*chain));
        for (long i = 0; i < n; i++)
            if (loop_future_new(loop, &chain[i]) ||
                loop_future_add_done(chain[i], complete_step, NULL))
                return 1;
    }
    /* Warm the ring and the allocator up outside the measured part. */
    uint64_t t0 = now_ns();
    CALLGRIND_START_INSTRUMENTATION;
    if (strcmp(mode, "soon") == 0)
        loop_call_soon(loop, soon_step, NULL, NULL);
    else if (strcmp(mode, "complete") == 0)
        loop_future_set_result(chain[next_index++], NULL);
    else if (strcmp(mode, "cycle") == 0)
        cycle_next(loop);
    else
        return 2;
    loop_run(loop);
    CALLGRIND_STOP_INSTRUMENTATION;
    uint64_t t1 = now_ns();
    if (left != 0)
        return 1;
    printf("RESULT %s ns_per_step=%.2f ops=%ld\n", mode, (double)(t1 - t0) / (double)n, n);
    if (chain) {
        for (long i = 0; i < n; i++)
            loop_future_unref(chain[i]);
        free(chain);
    }
    loop_free(loop);
    return 0;
}
