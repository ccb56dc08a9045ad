/*
 * Randomised: many coroutines resumed in random orders, some from inside
 * others (nested up to a depth), each running a random number of steps.
 * Every value passed in and every value yielded or returned must arrive
 * exactly once, in order, at the right coroutine.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>

#include "loop_coro.h"

#define V(n) ((void *)(uintptr_t)(n))
#define N 64
#define MAX_DEPTH 6
#define DONE_MARK 0xffffffu

struct co {
    loop_coro *c;
    uintptr_t k;
    uint32_t len;      /* how many resumes it takes: the last one returns */
    uint32_t sent;     /* values sent in so far (by whoever resumed it) */
    uint32_t received; /* values it received so far */
};

static struct co coros[N];
static uint64_t rng;
static int depth;
static int errors;
static char first_error[200];

static uint32_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* Checks inside coroutines only count (a cmocka failure would longjmp off
 * the coroutine's stack); the test asserts the count at the end. */
static void check(int ok, const char *what, uintptr_t got, uintptr_t want)
{
    if (!ok && errors++ == 0)
        snprintf(first_error, sizeof(first_error), "%s: got %#lx, want %#lx", what,
                 (unsigned long)got, (unsigned long)want);
}

static uintptr_t value(uintptr_t k, uint32_t seq)
{
    return k << 24 | seq;
}

/* Resume coroutine j with its next value and check what comes back. */
static void drive(struct co *j)
{
    void *out = NULL;
    uintptr_t in = value(j->k, j->sent++);
    int rc = loop_coro_resume(j->c, V(in), &out);

    if (j->sent == j->len) {
        check(rc == 0, "resume of its last step", (uintptr_t)rc, 0);
        check((uintptr_t)out == value(j->k, DONE_MARK), "return value", (uintptr_t)out,
              value(j->k, DONE_MARK));
    } else {
        check(rc == 1, "resume", (uintptr_t)rc, 1);
        check((uintptr_t)out == value(j->k, j->sent - 1), "yielded value", (uintptr_t)out,
              value(j->k, j->sent - 1));
    }
}

/* A random coroutine that may be resumed now (suspended), or NULL. */
static struct co *pick(void)
{
    uint32_t start = next_random() % N;

    for (uint32_t i = 0; i < N; i++) {
        struct co *j = &coros[(start + i) % N];
        if (loop_coro_status(j->c) == LOOP_CORO_SUSPENDED)
            return j;
    }
    return NULL;
}

static void *worker(void *arg, void *first)
{
    struct co *me = arg;
    void *in = first;

    for (;;) {
        check((uintptr_t)in == value(me->k, me->received), "value received", (uintptr_t)in,
              value(me->k, me->received));
        check(loop_coro_current() == me->c, "current", (uintptr_t)loop_coro_current(),
              (uintptr_t)me->c);
        uint32_t seq = me->received++;
        if (me->received == me->len)
            return V(value(me->k, DONE_MARK));
        /* Sometimes resume others from here, before yielding. */
        while (depth < MAX_DEPTH && next_random() % 3 == 0) {
            struct co *j = pick();
            if (j == NULL)
                break;
            depth++;
            drive(j);
            depth--;
        }
        loop_coro_yield(V(value(me->k, seq)), &in);
    }
}

static void run_seed(uint64_t seed)
{
    rng = seed;
    errors = 0;
    for (uintptr_t k = 0; k < N; k++) {
        coros[k] = (struct co){.k = k, .len = 1 + next_random() % 40};
        /* Small stacks and the default, mixed: the pool sees several sizes. */
        size_t size = k % 3 == 0 ? 0 : (size_t)(16 + 16 * (k % 3)) * 1024;
        assert_int_equal(loop_coro_new(&coros[k].c, worker, &coros[k], size), 0);
    }
    struct co *j;
    while ((j = pick()) != NULL)
        drive(j);
    if (errors != 0)
        fail_msg("seed %llu: %d errors; first: %s", (unsigned long long)seed, errors, first_error);
    for (int k = 0; k < N; k++) {
        assert_int_equal(coros[k].sent, coros[k].len);
        assert_int_equal(coros[k].received, coros[k].len);
        assert_int_equal(loop_coro_status(coros[k].c), LOOP_CORO_DONE);
        assert_int_equal(loop_coro_free(coros[k].c), 0);
    }
    assert_null(loop_coro_current());
}

static void every_value_arrives_once_in_order_under_random_nested_resumes(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 200; seed++)
        run_seed(seed * 0x9e3779b97f4a7c15u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_value_arrives_once_in_order_under_random_nested_resumes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
