/*
 * Coroutine benchmarks: the switch beside ucontext (swapcontext) and
 * Boost.Context (jump_fcontext), create + run + destroy, and the memory a
 * suspended coroutine costs.  Driven by bench/coro/run.sh, which also
 * counts instructions under callgrind.
 *
 *   bench_coro switch N ROUNDS      ns per switch, the three interleaved
 *   bench_coro create N ROUNDS      ns per create + run to end + free
 *   bench_coro only IMPL N          N round trips of one column (callgrind)
 *                                   IMPL: loop_coro, ucontext, fcontext, create
 *   bench_coro depth N ROUNDS       ns per round trip when both sides are
 *                                   0, 2 or 4 calls deep: after a switch,
 *                                   each return into a frame of before it
 *                                   is mispredicted (the return-address
 *                                   predictor holds the other side's calls)
 *   bench_coro rss COUNT            RSS per suspended coroutine
 */
#include "loop_coro.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

/* Boost.Context's C ABI (boost/context/detail/fcontext.hpp, extern "C"). */
typedef void *fcontext_t;
typedef struct {
    fcontext_t fctx;
    void *data;
} transfer_t;
transfer_t jump_fcontext(fcontext_t const to, void *vp);
fcontext_t make_fcontext(void *sp, size_t size, void (*fn)(transfer_t));

#define STACK (64 * 1024)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_coro: %s failed\n", what);
    exit(1);
}

/* ---- loop_coro --------------------------------------------------------- */

static void *echo(void *arg, void *first)
{
    void *v = first;
    (void)arg;
    for (;;)
        loop_coro_yield(v, &v);
    return NULL;
}

static double run_loop_coro(long n)
{
    loop_coro *c;
    void *out;

    if (loop_coro_new(&c, echo, NULL, STACK) != 0)
        die("loop_coro_new");
    loop_coro_resume(c, NULL, &out);
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++)
        loop_coro_resume(c, (void *)i, &out);
    uint64_t t1 = now_ns();
    if (out != (void *)(n - 1))
        die("loop_coro values");
    loop_coro_free(c);
    return (double)(t1 - t0) / (2.0 * (double)n);
}

/* ---- ucontext ---------------------------------------------------------- */

static ucontext_t uc_main, uc_coro;
static volatile long uc_value;

static void uc_entry(void)
{
    for (;;)
        swapcontext(&uc_coro, &uc_main);
}

static double run_ucontext(long n)
{
    char *stack = malloc(STACK);

    if (stack == NULL || getcontext(&uc_coro) != 0)
        die("getcontext");
    uc_coro.uc_stack.ss_sp = stack;
    uc_coro.uc_stack.ss_size = STACK;
    uc_coro.uc_link = NULL;
    makecontext(&uc_coro, uc_entry, 0);
    swapcontext(&uc_main, &uc_coro);
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        uc_value = i;
        swapcontext(&uc_main, &uc_coro);
    }
    uint64_t t1 = now_ns();
    free(stack);
    return (double)(t1 - t0) / (2.0 * (double)n);
}

/* ---- Boost.Context fcontext -------------------------------------------- */

static void fc_entry(transfer_t t)
{
    for (;;)
        t = jump_fcontext(t.fctx, t.data);
}

static double run_fcontext(long n)
{
    char *stack = malloc(STACK);

    if (stack == NULL)
        die("malloc");
    transfer_t t = {make_fcontext(stack + STACK, STACK, fc_entry), NULL};
    t = jump_fcontext(t.fctx, NULL);
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++)
        t = jump_fcontext(t.fctx, (void *)i);
    uint64_t t1 = now_ns();
    if (t.data != (void *)(n - 1))
        die("fcontext values");
    free(stack);
    return (double)(t1 - t0) / (2.0 * (double)n);
}

/* ---- call depth around the switch --------------------------------------- */

static int depth;
static loop_coro *deep_coro;
static fcontext_t deep_fctx;

static __attribute__((noinline)) void coro_side(int d)
{
    if (d > 0) {
        coro_side(d - 1);
        __asm__ volatile(""); /* a real return, not a tail call */
    } else {
        loop_coro_yield(NULL, NULL);
    }
}

static void *deep_echo(void *arg, void *first)
{
    (void)arg;
    (void)first;
    for (;;)
        coro_side(depth);
    return NULL;
}

static __attribute__((noinline)) void resumer_side(int d)
{
    if (d > 0) {
        resumer_side(d - 1);
        __asm__ volatile("");
    } else {
        void *out;
        loop_coro_resume(deep_coro, NULL, &out);
    }
}

static fcontext_t fc_back;

static __attribute__((noinline)) void fc_coro_side(int d)
{
    if (d > 0) {
        fc_coro_side(d - 1);
        __asm__ volatile("");
    } else {
        fc_back = jump_fcontext(fc_back, NULL).fctx;
    }
}

static void fc_deep_entry(transfer_t t)
{
    fc_back = t.fctx;
    for (;;)
        fc_coro_side(depth);
}

static __attribute__((noinline)) void fc_resumer_side(int d)
{
    if (d > 0) {
        fc_resumer_side(d - 1);
        __asm__ volatile("");
    } else {
        deep_fctx = jump_fcontext(deep_fctx, NULL).fctx;
    }
}

/* ns per round trip, both sides d calls deep; fc: Boost.Context. */
static double run_depth(long n, int d, int fc)
{
    char *stack = malloc(STACK);
    if (stack == NULL || loop_coro_new(&deep_coro, deep_echo, NULL, STACK) != 0)
        die("depth setup");
    depth = d;
    deep_fctx = make_fcontext(stack + STACK, STACK, fc_deep_entry);
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        if (fc)
            fc_resumer_side(d);
        else
            resumer_side(d);
    }
    uint64_t t1 = now_ns();
    loop_coro_free(deep_coro);
    free(stack);
    return (double)(t1 - t0) / (double)n;
}

/* ---- create + run to the end + free, pooled stack ---------------------- */

static void *returns(void *arg, void *first)
{
    (void)arg;
    return first;
}

static double run_create(long n)
{
    loop_coro *c;
    void *out;

    /* One round first, so that the pool holds a stack. */
    if (loop_coro_new(&c, returns, NULL, STACK) != 0)
        die("loop_coro_new");
    loop_coro_resume(c, NULL, &out);
    loop_coro_free(c);
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        loop_coro_new(&c, returns, NULL, STACK);
        loop_coro_resume(c, (void *)i, &out);
        loop_coro_free(c);
    }
    uint64_t t1 = now_ns();
    if (out != (void *)(n - 1))
        die("create values");
    return (double)(t1 - t0) / (double)n;
}

/* ---- statistics -------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *name, double *v, int rounds)
{
    qsort(v, (size_t)rounds, sizeof(*v), cmp_double);
    printf("%-20s median %6.2f ns  min %6.2f  max %6.2f  (%d runs)\n", name, v[rounds / 2], v[0],
           v[rounds - 1], rounds);
}

/* ---- RSS --------------------------------------------------------------- */

static long status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t len = strlen(field);

    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, field, len) == 0 && line[len] == ':')
            v = strtol(line + len + 1, NULL, 10);
    if (f != NULL)
        fclose(f);
    return v;
}

static void *small_frame(void *arg, void *first)
{
    (void)arg;
    loop_coro_yield(first, NULL);
    return NULL;
}

static int rss(long count)
{
    loop_coro **cs = calloc((size_t)count, sizeof(*cs));
    if (cs == NULL)
        die("calloc");
    long rss0 = status_kib("VmRSS"), pte0 = status_kib("VmPTE");
    uint64_t t0 = now_ns();
    long made = 0;
    int err = 0;
    for (; made < count; made++) {
        if ((err = loop_coro_new(&cs[made], small_frame, NULL, 0)) != 0)
            break;
        loop_coro_resume(cs[made], NULL, NULL);
    }
    uint64_t t1 = now_ns();
    long rss1 = status_kib("VmRSS"), pte1 = status_kib("VmPTE");
    printf("coroutines alive: %ld of %ld%s%s\n", made, count, err ? ", then: " : "",
           err ? strerror(-err) : "");
    printf("created and resumed in %.2f s (%.0f ns each)\n", (double)(t1 - t0) / 1e9,
           (double)(t1 - t0) / (double)(made ? made : 1));
    printf("RSS: +%ld KiB, %.2f KiB per suspended coroutine (the array of pointers "
           "included: %.3f KiB each)\n",
           rss1 - rss0, (double)(rss1 - rss0) / (double)(made ? made : 1),
           (double)sizeof(*cs) / 1024.0);
    printf("page tables (VmPTE, not in RSS): +%ld KiB, %.2f KiB per coroutine\n", pte1 - pte0,
           (double)(pte1 - pte0) / (double)(made ? made : 1));
    while (made > 0)
        loop_coro_free(cs[--made]);
    free(cs);
    return err ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "switch") == 0) {
        long n = atol(argv[2]);
        int rounds = atoi(argv[3]);
        double *v[3];
        for (int k = 0; k < 3; k++)
            v[k] = calloc((size_t)rounds, sizeof(double));
        run_loop_coro(n / 10); /* warm up */
        run_ucontext(n / 10);
        run_fcontext(n / 10);
        for (int r = 0; r < rounds; r++) {
            v[0][r] = run_loop_coro(n);
            v[1][r] = run_ucontext(n);
            v[2][r] = run_fcontext(n);
        }
        report("loop_coro", v[0], rounds);
        report("ucontext", v[1], rounds);
        report("fcontext", v[2], rounds);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "create") == 0) {
        long n = atol(argv[2]);
        int rounds = atoi(argv[3]);
        double *v = calloc((size_t)rounds, sizeof(double));
        run_create(n / 10);
        for (int r = 0; r < rounds; r++)
            v[r] = run_create(n);
        report("create", v, rounds);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "only") == 0) {
        long n = atol(argv[3]);
        if (strcmp(argv[2], "loop_coro") == 0)
            run_loop_coro(n);
        else if (strcmp(argv[2], "ucontext") == 0)
            run_ucontext(n);
        else if (strcmp(argv[2], "fcontext") == 0)
            run_fcontext(n);
        else if (strcmp(argv[2], "create") == 0)
            run_create(n);
        else
            die("column name");
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "depth") == 0) {
        long n = atol(argv[2]);
        int rounds = atoi(argv[3]);
        for (int d = 0; d <= 4; d += 2) {
            double *v[2];
            for (int k = 0; k < 2; k++)
                v[k] = calloc((size_t)rounds, sizeof(double));
            for (int r = 0; r < rounds; r++)
                for (int k = 0; k < 2; k++)
                    v[k][r] = run_depth(n, d, k);
            char name[2][32];
            snprintf(name[0], sizeof name[0], "depth %d loop_coro", d);
            snprintf(name[1], sizeof name[1], "depth %d fcontext", d);
            report(name[0], v[0], rounds);
            report(name[1], v[1], rounds);
        }
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "rss") == 0)
        return rss(atol(argv[2]));
    fprintf(stderr, "usage: see the comment at the top of bench_coro.c\n");
    return 2;
}
