/*
 * bench_pool.c's two measurements with libuv's thread pool: uv_queue_work
 * with a no-op work callback, the completion callback being its
 * after_work_cb.  The pool's size is UV_THREADPOOL_SIZE (run.sh sets it
 * to bench_pool's THREADS); libuv starts its threads at the first
 * uv_queue_work, so a warm-up job runs before anything is measured.
 *
 *   bench_pool_uv latency N           N samples, each started by a 1 ms timer
 *   bench_pool_uv throughput N W      N no-op jobs, W outstanding at once
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <uv.h>

static uv_loop_t loop_storage, *loop = &loop_storage;
static uv_timer_t timer;
static long n, submitted, completed;
static uint64_t *samples, t_submit;
static uv_work_t *reqs;

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

static void nop_work(uv_work_t *req)
{
    (void)req;
}

static void check(int err, const char *what)
{
    if (err) {
        fprintf(stderr, "bench_pool_uv: %s: %s\n", what, uv_strerror(err));
        exit(1);
    }
}

static void latency_after(uv_work_t *req, int status);

static void start_sample(uv_timer_t *t)
{
    (void)t;
    t_submit = now_ns();
    check(uv_queue_work(loop, &reqs[0], nop_work, latency_after), "uv_queue_work");
}

static void latency_after(uv_work_t *req, int status)
{
    (void)req;
    check(status, "after_work");
    samples[completed++] = now_ns() - t_submit;
    if (completed < n)
        check(uv_timer_start(&timer, start_sample, 1, 0), "uv_timer_start");
}

static void throughput_after(uv_work_t *req, int status)
{
    check(status, "after_work");
    completed++;
    if (submitted < n) {
        submitted++;
        check(uv_queue_work(loop, req, nop_work, throughput_after), "uv_queue_work");
    }
}

static void warm_after(uv_work_t *req, int status)
{
    (void)req;
    check(status, "after_work");
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_pool_uv latency N | throughput N WINDOW\n");
        return 2;
    }
    const char *mode = argv[1];
    n = atol(argv[2]);
    long window = argc > 3 ? atol(argv[3]) : 1;
    if (n < 1 || window < 1)
        return 2;
    check(uv_loop_init(loop), "uv_loop_init");
    reqs = calloc((size_t)window, sizeof(*reqs));
    check(uv_queue_work(loop, &reqs[0], nop_work, warm_after), "warm-up");
    uv_run(loop, UV_RUN_DEFAULT);
    double c0 = cpu_s();
    if (strcmp(mode, "latency") == 0) {
        samples = calloc((size_t)n, sizeof(*samples));
        check(uv_timer_init(loop, &timer), "uv_timer_init");
        check(uv_timer_start(&timer, start_sample, 1, 0), "uv_timer_start");
        uv_run(loop, UV_RUN_DEFAULT);
        qsort(samples, (size_t)n, sizeof(*samples), cmp_u64);
        printf("RESULT latency ns_median=%llu ns_min=%llu ns_p99=%llu ns_max=%llu n=%ld "
               "cpu_s=%.3f\n",
               (unsigned long long)samples[n / 2], (unsigned long long)samples[0],
               (unsigned long long)samples[n * 99 / 100], (unsigned long long)samples[n - 1], n,
               cpu_s() - c0);
        uv_close((uv_handle_t *)&timer, NULL);
        uv_run(loop, UV_RUN_DEFAULT);
        free(samples);
    } else if (strcmp(mode, "throughput") == 0) {
        uint64_t t0 = now_ns();
        for (long i = 0; i < window && submitted < n; i++) {
            submitted++;
            check(uv_queue_work(loop, &reqs[i], nop_work, throughput_after), "uv_queue_work");
        }
        uv_run(loop, UV_RUN_DEFAULT);
        uint64_t t1 = now_ns();
        if (completed != n)
            return 1;
        printf("RESULT throughput jobs_per_s=%.0f n=%ld cpu_s=%.3f\n",
               (double)n * 1e9 / (double)(t1 - t0), n, cpu_s() - c0);
    } else {
        return 2;
    }
    free(reqs);
    check(uv_loop_close(loop), "uv_loop_close");
    return 0;
}
