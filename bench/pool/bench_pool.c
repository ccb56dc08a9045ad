/*
 * The thread pool beside libuv's uv_queue_work (bench_pool_uv.c does the
 * same with libuv), one measurement per run:
 *
 *   bench_pool latency N THREADS [future|call]
 *       N samples, one at a time, each started by a 1 ms timer so the
 *       pool's threads are asleep: the time from submit to the completion
 *       callback running on the loop
 *   bench_pool throughput N THREADS W [future|call]
 *       N no-op jobs, W outstanding at once: each completion callback
 *       submits the next; jobs per second from the first submit to the
 *       last completion
 *
 * The completion callback is a done callback of the job's future
 * (loop_pool_submit, "future", the default), or loop_pool_call's done
 * ("call", uv_queue_work's shape).
 *
 * Prints "RESULT latency ns_median=X ns_min=Y ns_p99=Z ns_max=W" or
 * "RESULT throughput jobs_per_s=X".  Under callgrind only the measured
 * part is counted.
 */
#define _GNU_SOURCE
#include "loop_pool.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

static loop_pool *pool;
static bool use_call;
static long n, submitted, completed;
static uint64_t *samples, t_submit;

/* CPU seconds of every thread of the process so far (user + system). */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int nop_job(void *arg, void **result)
{
    *result = arg;
    return 0;
}

static void die(const char *what, int err)
{
    fprintf(stderr, "bench_pool: %s: %s\n", what, loop_strerror(err));
    exit(1);
}

/* ---- latency ------------------------------------------------------------- */

static void start_sample(loop_t *loop, void *arg);

static void latency_done(loop_future *f, void *arg)
{
    (void)arg;
    samples[completed++] = now_ns() - t_submit;
    loop_future_unref(f);
    if (completed < n) {
        int err = loop_call_later(loop_future_loop(f), LOOP_MS(1), start_sample, NULL, NULL);
        if (err)
            die("call_later", err);
    }
}

static void latency_called(void *arg, int status, void *result)
{
    loop_t *loop = arg;
    (void)result;
    samples[completed++] = now_ns() - t_submit;
    if (status)
        die("job", status);
    if (completed < n) {
        int err = loop_call_later(loop, LOOP_MS(1), start_sample, NULL, NULL);
        if (err)
            die("call_later", err);
    }
}

static void start_sample(loop_t *loop, void *arg)
{
    (void)arg;
    loop_future *f;
    int err;
    t_submit = now_ns();
    if (use_call) {
        err = loop_pool_call(pool, nop_job, loop, 0, latency_called);
    } else {
        err = loop_pool_submit(pool, nop_job, NULL, &f);
        if (!err)
            err = loop_future_add_done(f, latency_done, NULL);
    }
    if (err)
        die("submit", err);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- throughput ------------------------------------------------------------ */

static void throughput_done(loop_future *f, void *arg);
static void throughput_called(void *arg, int status, void *result);

static void submit_one(void)
{
    loop_future *f;
    int err;
    if (use_call) {
        err = loop_pool_call(pool, nop_job, NULL, 0, throughput_called);
    } else {
        err = loop_pool_submit(pool, nop_job, NULL, &f);
        if (!err)
            err = loop_future_add_done(f, throughput_done, NULL);
    }
    if (err)
        die("submit", err);
    submitted++;
}

static void throughput_called(void *arg, int status, void *result)
{
    (void)arg;
    (void)result;
    if (status)
        die("job", status);
    completed++;
    if (submitted < n)
        submit_one();
}

static void throughput_done(loop_future *f, void *arg)
{
    (void)arg;
    completed++;
    loop_future_unref(f);
    if (submitted < n)
        submit_one();
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_pool latency N THREADS [future|call] | "
                        "throughput N THREADS WINDOW [future|call]\n");
        return 2;
    }
    const char *mode = argv[1];
    n = atol(argv[2]);
    unsigned threads = (unsigned)atoi(argv[3]);
    bool latency = strcmp(mode, "latency") == 0;
    long window = !latency && argc > 4 ? atol(argv[4]) : 1;
    const char *how = argc > (latency ? 4 : 5) ? argv[latency ? 4 : 5] : "future";
    use_call = strcmp(how, "call") == 0;
    if (!use_call && strcmp(how, "future") != 0)
        return 2;
    loop_t *loop;
    loop_pool_options o = {.threads = threads};
    if (n < 1 || window < 1 || loop_new(&loop) || loop_pool_new(loop, &o, &pool))
        return 2;
    double c0 = cpu_s();
    if (strcmp(mode, "latency") == 0) {
        samples = calloc((size_t)n, sizeof(*samples));
        loop_call_later(loop, LOOP_MS(1), start_sample, NULL, NULL);
        CALLGRIND_START_INSTRUMENTATION;
        loop_run(loop);
        CALLGRIND_STOP_INSTRUMENTATION;
        qsort(samples, (size_t)n, sizeof(*samples), cmp_u64);
        printf("RESULT latency ns_median=%llu ns_min=%llu ns_p99=%llu ns_max=%llu n=%ld "
               "cpu_s=%.3f\n",
               (unsigned long long)samples[n / 2], (unsigned long long)samples[0],
               (unsigned long long)samples[n * 99 / 100], (unsigned long long)samples[n - 1], n,
               cpu_s() - c0);
        free(samples);
    } else if (strcmp(mode, "throughput") == 0) {
        uint64_t t0 = now_ns();
        CALLGRIND_START_INSTRUMENTATION;
        for (long i = 0; i < window && submitted < n; i++)
            submit_one();
        loop_run(loop);
        CALLGRIND_STOP_INSTRUMENTATION;
        uint64_t t1 = now_ns();
        if (completed != n)
            return 1;
        printf("RESULT throughput jobs_per_s=%.0f n=%ld cpu_s=%.3f\n",
               (double)n * 1e9 / (double)(t1 - t0), n, cpu_s() - c0);
    } else {
        return 2;
    }
    loop_pool_free(pool);
    loop_free(loop);
    return 0;
}
