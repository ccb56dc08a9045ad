/*
 * The ready ring: FIFO across wrap-around and growth (growth while the
 * ring is wrapped must keep the order), snapshot runs, and no allocation
 * once it has grown.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>

#include "ready_queue.h"

static void assert_valid(const loop_t *loop)
{
    const char *why = NULL;
    if (loop__verify(loop, &why) != 0)
        fail_msg("invariant broken: %s", why);
}

static long next_expected, seen;

/* Run the n oldest entries straight from the ring (all plain call_soon). */
static void run_oldest(loop_t *loop, uint32_t n)
{
    while (n--) {
        const struct loop__ready *e = loop__ready_pop(loop);
        e->fn(loop, e->arg);
    }
}

static void in_order(loop_t *loop, void *arg)
{
    (void)loop;
    assert_int_equal((long)(intptr_t)arg, next_expected);
    next_expected++;
    seen++;
}

static void test_ring_keeps_fifo_order_when_growing_while_wrapped(void **state)
{
    (void)state;
    loop_t *loop;
    assert_int_equal(loop_new(&loop), 0);
    next_expected = seen = 0;
    long pushed = 0;
    srand(3);
    /* Run part of the queue, push more, repeatedly: head moves, the ring
     * wraps, and it grows in that state. */
    for (int round = 0; round < 200; round++) {
        int more = rand() % 300;
        for (int i = 0; i < more; i++)
            assert_int_equal(loop_call_soon(loop, in_order, (void *)(intptr_t)pushed++, NULL), 0);
        assert_valid(loop);
        run_oldest(loop, (uint32_t)(rand() % (loop__ready_count(loop) + 1)));
        assert_valid(loop);
    }
    run_oldest(loop, loop__ready_count(loop));
    assert_int_equal(seen, pushed);
    assert_int_equal(loop_free(loop), 0);
}

static size_t allocations;

static void *counting_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (size)
        allocations++;
    if (!size) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, size);
}

static long chain_left;

static void chain(loop_t *loop, void *arg)
{
    (void)arg;
    if (--chain_left > 0)
        assert_int_equal(loop_call_soon(loop, chain, NULL, NULL), 0);
}

static void test_steady_call_soon_chain_allocates_nothing(void **state)
{
    (void)state;
    loop_t *loop;
    assert_int_equal(loop_new_with(&loop, &(loop_options){.realloc = counting_realloc}), 0);
    chain_left = 1000;
    assert_int_equal(loop_call_soon(loop, chain, NULL, NULL), 0);
    assert_int_equal(loop_run(loop), 0); /* warm: the ring has grown */
    size_t warm = allocations;
    chain_left = 100000;
    assert_int_equal(loop_call_soon(loop, chain, NULL, NULL), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(allocations, warm);
    assert_int_equal(loop_free(loop), 0);
}

static int soon_with_handle_runs;

static void with_handle(loop_t *loop, void *arg)
{
    loop_handle h;
    (void)arg;
    if (++soon_with_handle_runs < 50000)
        assert_int_equal(loop_call_later(loop, 0, with_handle, NULL, &h), 0);
}

static void test_steady_timer_chain_with_handles_allocates_nothing(void **state)
{
    (void)state;
    loop_t *loop;
    assert_int_equal(loop_new_with(&loop, &(loop_options){.realloc = counting_realloc,
                                                          .clock = LOOP_CLOCK_VIRTUAL}),
                     0);
    soon_with_handle_runs = 49000;
    assert_int_equal(loop_call_soon(loop, with_handle, NULL, NULL), 0);
    assert_int_equal(loop_run(loop), 0);
    size_t warm = allocations;
    soon_with_handle_runs = 0;
    assert_int_equal(loop_call_soon(loop, with_handle, NULL, NULL), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(soon_with_handle_runs, 50000);
    assert_int_equal(allocations, warm);
    assert_int_equal(loop_free(loop), 0);
}

static void nop(loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
}

static void test_a_drained_burst_gives_its_ring_back(void **state)
{
    (void)state;
    loop_t *loop;
    assert_int_equal(loop_new(&loop), 0);
    for (uint32_t i = 0; i < 4 * LOOP__RING_KEEP; i++)
        assert_int_equal(loop_call_soon(loop, nop, NULL, NULL), 0);
    assert_true(loop->ready.cap > LOOP__RING_KEEP);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(loop->ready.cap, 0);
    assert_valid(loop);
    assert_int_equal(loop_free(loop), 0);
}

static void test_a_ring_within_the_keep_size_is_kept(void **state)
{
    (void)state;
    loop_t *loop;
    assert_int_equal(loop_new(&loop), 0);
    for (uint32_t i = 0; i < LOOP__RING_KEEP; i++)
        assert_int_equal(loop_call_soon(loop, nop, NULL, NULL), 0);
    uint32_t cap = loop->ready.cap;
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(loop->ready.cap, cap);
    assert_int_equal(loop_free(loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_keeps_fifo_order_when_growing_while_wrapped),
        cmocka_unit_test(test_steady_call_soon_chain_allocates_nothing),
        cmocka_unit_test(test_steady_timer_chain_with_handles_allocates_nothing),
        cmocka_unit_test(test_a_drained_burst_gives_its_ring_back),
        cmocka_unit_test(test_a_ring_within_the_keep_size_is_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
