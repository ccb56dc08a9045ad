/*
 * concurrent_pool: the seeds' concurrent.futures program (seed 001,
 * "线程池和进程池的异步使用"), in C.  Ten items, each put through a
 * count() loop of 10,000,000 steps, three ways: one after the other, on a
 * pool of 5 threads, and on a pool of 5 worker processes; each result is
 * printed as it completes, then the time each way took, as Python prints
 * them.
 *
 *     concurrent_pool [--count N]     (N steps per item; default 10000000)
 *
 * What a thread pool gains in C.  In CPython the threads of a
 * ThreadPoolExecutor take turns holding the global interpreter lock, so
 * CPU-bound Python code on 5 threads runs one bytecode at a time: the
 * seed's thread pool takes as long as its sequential run (4.39 s against
 * 4.84 s), and only the process pool, with one interpreter per process,
 * uses several cores.  C has no such lock: the same five threads run
 * count() on every core at once, so the thread pool is as fast as the
 * process pool, without starting processes or copying arguments and
 * results through pipes.  A process pool still earns its keep in C where
 * work must be isolated: a crash kills one worker (the pool replaces it
 * and fails that one job), not the program.
 *
 * Both pools are libloop's: the thread pool is loop_pool.h's, each result
 * a future completed on the loop; the process pool is loop_process.h's,
 * whose workers are this
 * program started again, which is why main() first asks
 * loop_process_worker_main() whether this process is one of them.
 */
#include "loop_pool.h"
#include "loop_process.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ITEMS 10
#define THREADS 5
#define WORKERS 5

static const long long number_list[ITEMS] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

/*
 * The seed's count(): `for i in range(0, steps): i = i + 1`, then
 * `return i * number`.  i is volatile so that the compiler keeps every
 * step, as CPython does, instead of folding the loop into one multiply.
 */
static long long count(long long number, long long steps)
{
    volatile long long i = 0;
    for (long long k = 0; k < steps; k++) {
        i = k;
        i = i + 1;
    }
    return i * number;
}

static long long evaluate_item(long long x, long long steps)
{
    return count(x, steps);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A float as Python's str() prints it: the shortest digits that read back
 * as the same value, with ".0" if they look like an integer. */
static void print_seconds(const char *what, double seconds)
{
    char buf[40];
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, sizeof(buf), "%.*g", digits, seconds);
        if (strtod(buf, NULL) == seconds)
            break;
    }
    if (!strpbrk(buf, ".en"))
        strcat(buf, ".0");
    printf("%s execution in %s seconds\n", what, buf);
}

/* ---- one after the other -------------------------------------------------- */

static void sequential(long long steps)
{
    double start = now();
    for (int i = 0; i < ITEMS; i++)
        printf("%lld\n", evaluate_item(number_list[i], steps));
    print_seconds("Sequential", now() - start);
}

/* ---- a pool of threads (loop_pool.h) ----------------------------------- */

static long long thread_steps;

/* What a pool thread runs: one item.  The result fits in the pointer. */
static int evaluate_on_thread(void *arg, void **result)
{
    *result = (void *)(intptr_t)evaluate_item(*(const long long *)arg, thread_steps);
    return 0;
}

/* Print results in the order they finish (loop_as_completed). */
static int print_as_completed(loop_t *loop, loop_future *const *fs, int (*print)(loop_future *))
{
    loop_as_completed *ac = NULL;
    int err = loop_as_completed_new(loop, fs, ITEMS, -1, &ac);
    for (int i = 0; !err && i < ITEMS; i++) {
        loop_future *next;
        void *child;
        err = loop_as_completed_next(ac, &next);
        if (!err) {
            err = loop_run_until_complete(loop, next, &child);
            loop_future_unref(next);
        }
        if (!err)
            err = print(child);
    }
    loop_as_completed_free(ac);
    return err;
}

static int print_thread_result(loop_future *f)
{
    void *r;
    int err = loop_future_result(f, &r);
    if (!err)
        printf("%lld\n", (long long)(intptr_t)r);
    return err;
}

static int thread_pool(long long steps)
{
    double start = now();
    thread_steps = steps;
    loop_t *loop;
    int err = loop_new(&loop);
    if (err)
        goto out;
    loop_pool *pool;
    err = loop_pool_new(loop, &(loop_pool_options){.threads = THREADS}, &pool);
    if (!err) {
        loop_future *fs[ITEMS] = {0};
        for (int n = 0; n < ITEMS && !err; n++)
            err = loop_pool_submit(pool, evaluate_on_thread, (void *)&number_list[n], &fs[n]);
        if (!err)
            err = print_as_completed(loop, fs, print_thread_result);
        for (int i = 0; i < ITEMS; i++)
            loop_future_unref(fs[i]);
        loop_future *done; /* the `with` block's end: wait for the threads */
        if (!err)
            err = loop_pool_shutdown(pool, LOOP_POOL_WAIT, &done);
        if (!err) {
            err = loop_run_until_complete(loop, done, NULL);
            loop_future_unref(done);
        }
        loop_pool_free(pool);
    }
    loop_free(loop);
out:
    if (err) {
        fprintf(stderr, "concurrent_pool: thread pool: %s\n", loop_strerror(err));
        return -1;
    }
    print_seconds("Thread pool", now() - start);
    return 0;
}

/* ---- a pool of processes (loop_process.h) ------------------------------- */

/* What a worker runs: {item, steps} in, the result out. */
static int evaluate_job(const void *in, size_t len, void **out, size_t *out_len)
{
    long long args[2];
    if (len != sizeof(args))
        return -EINVAL;
    memcpy(args, in, sizeof(args));
    long long *r = malloc(sizeof(*r));
    if (!r)
        return -ENOMEM;
    *r = evaluate_item(args[0], args[1]);
    *out = r;
    *out_len = sizeof(*r);
    return 0;
}

static const loop_process_work jobs[] = {{"evaluate_item", evaluate_job}};

static int print_reply(loop_future *f)
{
    void *result;
    int err = loop_future_result(f, &result);
    if (err)
        return err;
    loop_process_bytes *b = result;
    long long r;
    err = b->len == sizeof(r) ? 0 : -EPROTO;
    if (!err) {
        memcpy(&r, b->data, sizeof(r));
        printf("%lld\n", r);
    }
    loop_process_bytes_free(b);
    return err;
}

/* Submit every item, then print the results in the order they finish
 * (loop_as_completed), as concurrent.futures.as_completed does. */
static int submit_and_print(loop_t *loop, loop_process_pool *pool, long long steps)
{
    loop_future *fs[ITEMS] = {0};
    int err = 0;
    for (int n = 0; n < ITEMS && !err; n++) {
        long long args[2] = {number_list[n], steps};
        err = loop_process_pool_submit(pool, 0, args, sizeof(args), &fs[n]);
    }
    if (!err)
        err = print_as_completed(loop, fs, print_reply);
    for (int i = 0; i < ITEMS; i++)
        loop_future_unref(fs[i]);
    return err;
}

static int process_pool(long long steps)
{
    double start = now();
    loop_t *loop;
    int err = loop_new(&loop);
    if (err)
        goto out;
    loop_process_pool *pool;
    loop_process_pool_options o = {.table = jobs, .n = 1, .workers = WORKERS};
    err = loop_process_pool_new(loop, &o, &pool);
    if (!err) {
        err = submit_and_print(loop, pool, steps);
        loop_future *done; /* the `with` block's end: wait for the workers */
        if (!err)
            err = loop_process_pool_shutdown(pool, false, &done);
        if (!err) {
            err = loop_run_until_complete(loop, done, NULL);
            loop_future_unref(done);
        }
        loop_process_pool_free(pool);
    }
    loop_free(loop);
out:
    if (err) {
        fprintf(stderr, "concurrent_pool: process pool: %s\n", loop_strerror(err));
        return -1;
    }
    print_seconds("Process pool", now() - start);
    return 0;
}

int main(int argc, char **argv)
{
    int status;
    if (loop_process_worker_main(argc, argv, jobs, 1, &status))
        return status;
    long long steps = 10000000;
    if (argc == 3 && strcmp(argv[1], "--count") == 0)
        steps = atoll(argv[2]);
    else if (argc != 1)
        steps = 0;
    if (steps < 1) {
        fprintf(stderr, "usage: %s [--count N]   (N >= 1 steps per item)\n", argv[0]);
        return 2;
    }
    sequential(steps);
    if (thread_pool(steps) != 0)
        return 1;
    if (process_pool(steps) != 0)
        return 1;
    return 0;
}
