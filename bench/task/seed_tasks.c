/*
 * The seed program asyncio-task.py, scaled, on loop_task.h: the same
 * program as seed_tasks.py (and examples/tasks_task.c at the seed's size).
 *
 *   seed_tasks [TASKS [STEPS]] [--pool]     (default 100000 10)
 *
 * TASKS tasks, factorial / fibonacci / binomialCoeff in turn, each awaiting
 * loop_task_sleep(0) STEPS times where the seed awaits asyncio.sleep(1),
 * run under loop_wait(ALL_COMPLETED), the seed's asyncio.wait(tasks).  The
 * seed's prints are left out; each task leaves its result in its job, and
 * the OUTPUT line is seed_tasks.py's.  The RESULT line gives the time per
 * step: from spawning the first task to the end of run_until_complete,
 * over TASKS * STEPS.  Under callgrind only that part is counted.
 *
 * --pool is not the seed's: it fills the coroutine stack pool with TASKS
 * stacks before the clock starts, so that the measured part maps,
 * faults in and unmaps no stack, to show what the stacks cost.
 */
#define _GNU_SOURCE
#include "loop_coro.h"
#include "loop_task.h"

#include <stdbool.h>
#include <stdint.h>
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

struct job {
    int n, k;                 /* the arguments */
    unsigned long long whole; /* factorial's and fibonacci's result */
    double real;              /* binomialCoeff's: Python's / makes it a float */
};

static int factorial(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    struct job *j = arg;
    unsigned long long f = 1;
    for (int i = 2; i <= j->n; i++) {
        int err = loop_task_sleep(0);
        if (err)
            return err;
        f *= (unsigned)i;
    }
    j->whole = f;
    return 0;
}

static int fibonacci(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    struct job *j = arg;
    unsigned long long a = 0, b = 1;
    for (int i = 0; i < j->n; i++) {
        int err = loop_task_sleep(0);
        if (err)
            return err;
        unsigned long long next = a + b;
        a = b;
        b = next;
    }
    j->whole = a;
    return 0;
}

static int binomial_coeff(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    struct job *j = arg;
    double r = 1;
    for (int i = 1; i <= j->k; i++) {
        r = r * (j->n - i + 1) / i;
        int err = loop_task_sleep(0);
        if (err)
            return err;
    }
    j->real = r;
    return 0;
}

static void check(int err, const char *what)
{
    if (err < 0) {
        fprintf(stderr, "seed_tasks: %s: %s\n", what, loop_strerror(err));
        exit(1);
    }
}

static double seconds(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void *never_run(void *arg, void *first)
{
    (void)first;
    return arg;
}

/* n stacks of the tasks' size into this thread's pool, their top page in. */
static void fill_pool(long n)
{
    loop_coro **cs = calloc((size_t)n, sizeof(*cs));
    if (!cs)
        exit(1);
    loop_coro_pool_limit((size_t)n + LOOP_CORO_POOL_DEFAULT);
    for (long i = 0; i < n; i++)
        check(loop_coro_new(&cs[i], never_run, NULL, 0), "loop_coro_new");
    for (long i = 0; i < n; i++)
        loop_coro_free(cs[i]);
    free(cs);
}

int main(int argc, char **argv)
{
    bool pool = argc > 1 && strcmp(argv[argc - 1], "--pool") == 0;
    if (pool)
        argc--;
    long n = argc > 1 ? atol(argv[1]) : 100000;
    int s = argc > 2 ? atoi(argv[2]) : 10;
    if (argc > 3 || n < 1 || s < 1 || s > 19) {
        fprintf(stderr, "usage: seed_tasks [TASKS [STEPS]] [--pool]"
                        "  (TASKS >= 1, 1 <= STEPS <= 19)\n");
        return 2;
    }
    if (pool)
        fill_pool(n);
    static loop_task_fn *const kinds[3] = {factorial, fibonacci, binomial_coeff};
    struct job *jobs = calloc((size_t)n, sizeof(*jobs));
    loop_task **tasks = calloc((size_t)n, sizeof(*tasks));
    loop_future **fs = calloc((size_t)n, sizeof(*fs));
    loop_t *loop;
    if (!jobs || !tasks || !fs || loop_new(&loop))
        return 1;
    /* factorial(s + 1), fibonacci(s), binomialCoeff(2s, s): s steps each */
    for (long i = 0; i < n; i += 3) {
        jobs[i].n = s + 1;
        if (i + 1 < n)
            jobs[i + 1].n = s;
        if (i + 2 < n)
            jobs[i + 2] = (struct job){.n = 2 * s, .k = s};
    }

    struct rusage cpu0, cpu1;
    getrusage(RUSAGE_SELF, &cpu0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CALLGRIND_START_INSTRUMENTATION;
    for (long i = 0; i < n; i++) {
        check(loop_task_spawn(loop, kinds[i % 3], &jobs[i], &tasks[i]), "spawn");
        fs[i] = loop_task_future(tasks[i]);
    }
    loop_future *all;
    check(loop_wait(loop, fs, (size_t)n, LOOP_ALL_COMPLETED, -1, &all), "loop_wait");
    check(loop_run_until_complete(loop, all, NULL), "the tasks");
    CALLGRIND_STOP_INSTRUMENTATION;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    getrusage(RUSAGE_SELF, &cpu1);

    unsigned long long sums[2] = {0, 0};
    double real = 0;
    long counts[3] = {0, 0, 0};
    for (long i = 0; i < n; i++) {
        check(loop_future_result(fs[i], NULL), "a task");
        counts[i % 3]++;
        if (i % 3 < 2)
            sums[i % 3] += jobs[i].whole;
        else
            real += jobs[i].real;
    }
    printf("OUTPUT tasks=%ld steps=%d factorial(%d)=%llu x%ld sum=%llu", n, s, s + 1, jobs[0].whole,
           counts[0], sums[0]);
    if (n > 1)
        printf(" fibonacci(%d)=%llu x%ld sum=%llu", s, jobs[1].whole, counts[1], sums[1]);
    if (n > 2)
        printf(" binomialCoeff(%d,%d)=%.1f x%ld sum=%.1f", 2 * s, s, jobs[2].real, counts[2], real);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("\nRESULT seed-libloop%s ns_per_step=%.2f total_s=%.3f user_s=%.3f sys_s=%.3f\n",
           pool ? "-pooled" : "", ns / ((double)n * s), ns / 1e9,
           seconds(cpu1.ru_utime) - seconds(cpu0.ru_utime),
           seconds(cpu1.ru_stime) - seconds(cpu0.ru_stime));

    loop_future_unref(all);
    for (long i = 0; i < n; i++)
        loop_task_unref(tasks[i]);
    check(loop_free(loop), "loop_free");
    free(fs);
    free(tasks);
    free(jobs);
    return 0;
}
