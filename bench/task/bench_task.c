/*
 * Tasks (loop_task.h) measured, driven by bench/task/run.sh:
 *
 *   bench_task await N       one task awaits a future that is done already,
 *                            N times (no suspension)
 *   bench_task spawn N [K]   N tasks whose body returns at once, in rounds
 *                            of K (default 32, under the stack pool's 64):
 *                            spawn K, run the loop until they are all
 *                            finished and released
 *   bench_task soon N        a chain of N call_soon callbacks (the baseline)
 *   bench_task hop N         one task doing N loop_task_sleep(0)
 *   bench_task rss COUNT [MS]  COUNT tasks suspended at once, each in
 *                            loop_task_sleep(MS ms) (default 1000), then
 *                            run to their end
 *
 * Each prints "RESULT <mode> ns_per_op=X ops=N" (rss prints its own
 * fields).  The seed program scaled is seed_tasks.c, beside
 * seed_tasks.py.  Under callgrind only the
 * measured part is counted (CALLGRIND_START/STOP around it).  Every mode
 * checks its own counts and exits 1 if the work was not all done.
 */
#define _GNU_SOURCE
#include "loop_task.h"

#include <errno.h>
#include <stdint.h>
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

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void check(int err, const char *what)
{
    if (err < 0) {
        fprintf(stderr, "bench_task: %s: %s\n", what, loop_strerror(err));
        exit(1);
    }
}

static void result(const char *mode, uint64_t ns, long n)
{
    printf("RESULT %s ns_per_op=%.2f ops=%ld\n", mode, (double)ns / (double)n, n);
}

/* Run the loop until f is done; its outcome must be success. */
static void run_task(loop_t *loop, loop_task *t)
{
    check(loop_run_until_complete(loop, loop_task_future(t), NULL), "the task");
    loop_task_unref(t);
}

/* ---- await of a done future -------------------------------------------- */

struct await_job {
    loop_future *done;
    long n;
    uint64_t ns;
};

static int await_body(loop_t *loop, void *arg, void **out)
{
    (void)loop;
    (void)out;
    struct await_job *j = arg;
    long got = 0;
    uint64_t t0 = now_ns();
    CALLGRIND_START_INSTRUMENTATION;
    for (long i = 0; i < j->n; i++) {
        void *r;
        if (loop_task_await(j->done, &r) == 0 && r == j)
            got++;
    }
    CALLGRIND_STOP_INSTRUMENTATION;
    j->ns = now_ns() - t0;
    return got == j->n ? 0 : -EIO;
}

static void bench_await(loop_t *loop, long n)
{
    struct await_job j = {.n = n};
    check(loop_future_new(loop, &j.done), "loop_future_new");
    check(loop_future_set_result(j.done, &j), "set_result");
    loop_task *t;
    check(loop_task_spawn(loop, await_body, &j, &t), "spawn");
    run_task(loop, t);
    loop_future_unref(j.done);
    result("await", j.ns, n);
}

/* ---- spawn + finish ----------------------------------------------------- */

static long finished;

static int empty_body(loop_t *loop, void *arg, void **out)
{
    (void)loop;
    (void)arg;
    (void)out;
    finished++;
    return 0;
}

/* One round: k tasks nobody references, run until each is released. */
static void spawn_round(loop_t *loop, long k)
{
    for (long i = 0; i < k; i++)
        check(loop_task_spawn(loop, empty_body, NULL, NULL), "spawn");
    check(loop_run(loop), "loop_run");
}

static void bench_spawn(loop_t *loop, long n, long k)
{
    spawn_round(loop, k); /* the stack pool and the ready ring warmed up */
    finished = 0;
    uint64_t t0 = now_ns();
    CALLGRIND_START_INSTRUMENTATION;
    for (long done = 0; done < n; done += k)
        spawn_round(loop, n - done < k ? n - done : k);
    CALLGRIND_STOP_INSTRUMENTATION;
    uint64_t ns = now_ns() - t0;
    if (finished != n) {
        fprintf(stderr, "bench_task: %ld of %ld tasks ran\n", finished, n);
        exit(1);
    }
    result("spawn", ns, n);
}

/* ---- a chain of hops: call_soon against sleep(0) ------------------------ */

static long left;

static void soon_step(loop_t *loop, void *arg)
{
    if (--left > 0)
        check(loop_call_soon(loop, soon_step, arg, NULL), "call_soon");
}

static int hop_body(loop_t *loop, void *arg, void **out)
{
    (void)loop;
    (void)arg;
    (void)out;
    while (left > 0) {
        check(loop_task_sleep(0), "sleep(0)");
        left--;
    }
    return 0;
}

static void bench_chain(loop_t *loop, const char *mode, long n)
{
    loop_task *t = NULL;
    left = 1; /* warm the ring up outside the measured part */
    check(loop_call_soon(loop, soon_step, NULL, NULL), "call_soon");
    check(loop_run(loop), "loop_run");
    left = n;
    if (strcmp(mode, "hop") == 0)
        check(loop_task_spawn(loop, hop_body, NULL, &t), "spawn");
    uint64_t t0 = now_ns();
    CALLGRIND_START_INSTRUMENTATION;
    if (!t)
        check(loop_call_soon(loop, soon_step, NULL, NULL), "call_soon");
    check(loop_run(loop), "loop_run");
    CALLGRIND_STOP_INSTRUMENTATION;
    uint64_t ns = now_ns() - t0;
    if (left != 0 || (t && !loop_future_done(loop_task_future(t)))) {
        fprintf(stderr, "bench_task: the %s chain stopped with %ld left\n", mode, left);
        exit(1);
    }
    loop_task_unref(t);
    result(mode, ns, n);
}

/* ---- memory: many tasks suspended at once ------------------------------- */

static long started, slept;

static int sleeper_body(loop_t *loop, void *arg, void **out)
{
    (void)loop;
    (void)out;
    started++;
    check(loop_task_sleep(*(const uint64_t *)arg), "sleep");
    slept++;
    return 0;
}

/* A field of /proc/self/status, in KiB. */
static long status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = atol(line + n + 1);
    fclose(f);
    return v;
}

static void bench_rss(loop_t *loop, long count, uint64_t ms)
{
    uint64_t ns = ms * 1000000u;
    long rss0 = status_kib("VmRSS"), pte0 = status_kib("VmPTE");
    uint64_t t0 = now_ns();
    for (long i = 0; i < count; i++)
        check(loop_task_spawn(loop, sleeper_body, &ns, NULL), "spawn");
    /* One iteration runs every first step: each task is then suspended in
     * its sleep, and no timer can fire before the next iteration. */
    check(loop_run_once(loop, 0), "loop_run_once");
    uint64_t t1 = now_ns();
    long rss1 = status_kib("VmRSS"), pte1 = status_kib("VmPTE");
    long suspended = started - slept;
    check(loop_run(loop), "loop_run");
    uint64_t t2 = now_ns();
    if (suspended != count || slept != count) {
        fprintf(stderr, "bench_task: %ld suspended at once, %ld of %ld finished\n", suspended,
                slept, count);
        exit(1);
    }
    printf("RESULT rss tasks=%ld suspended_at_once=%ld finished=%ld sleep_ms=%llu\n", count,
           suspended, slept, (unsigned long long)ms);
    printf("RESULT rss kib_per_task=%.2f rss_kib=%ld pte_kib_per_task=%.2f\n",
           (double)(rss1 - rss0) / (double)count, rss1 - rss0,
           (double)(pte1 - pte0) / (double)count);
    printf("RESULT rss spawn_and_suspend_s=%.2f total_s=%.2f peak_rss_kib=%ld\n",
           (double)(t1 - t0) / 1e9, (double)(t2 - t0) / 1e9, status_kib("VmHWM"));
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_task await|spawn|soon|hop|rss N [ARG]\n");
        return 2;
    }
    const char *mode = argv[1];
    long n = atol(argv[2]);
    long arg = argc > 3 ? atol(argv[3]) : 0;
    loop_t *loop;
    if (n < 1 || arg < 0 || loop_new(&loop))
        return 2;
    if (strcmp(mode, "await") == 0)
        bench_await(loop, n);
    else if (strcmp(mode, "spawn") == 0)
        bench_spawn(loop, n, arg > 0 ? arg : 32);
    else if (strcmp(mode, "soon") == 0 || strcmp(mode, "hop") == 0)
        bench_chain(loop, mode, n);
    else if (strcmp(mode, "rss") == 0)
        bench_rss(loop, n, arg > 0 ? (uint64_t)arg : 1000);
    else
        return 2;
    check(loop_free(loop), "loop_free");
    return 0;
}
