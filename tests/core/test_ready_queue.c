/*
 * The ready ring: FIFO across wrap-around and growth (growth while the
 * ring is wrapped must keep the order), snapshot runs, and no allocation
 * once it has grown.
 */
#include <stdlib.h>

#include "counting_alloc.h"
#include "internals.h"

static long next_expected, seen;

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
        assert_loop_valid(loop);
        test_ready_run(loop, (uint32_t)(rand() % (test_ready_count(loop) + 1)));
        assert_loop_valid(loop);
    }
    test_ready_run(loop, test_ready_count(loop));
    assert_int_equal(seen, pushed);
    assert_int_equal(loop_free(loop), 0);
}

/* The allocator of the steady-state tests: they count its calls. */
static struct counting_alloc alloc;

static void test_steady_call_soon_chain_allocates_nothing(void **state)
{
    (void)state;
    loop_t *loop;
    alloc = (struct counting_alloc){0};
    assert_int_equal(
        loop_new_with(&loop, &(loop_options){.realloc = counting_realloc, .alloc_ctx = &alloc}), 0);
    struct chain c = {.left = 1000};
    assert_int_equal(loop_call_soon(loop, chain_cb, &c, NULL), 0);
    assert_int_equal(loop_run(loop), 0); /* warm: the ring has grown */
    long warm = alloc.calls;
    c = (struct chain){.left = 100000};
    assert_int_equal(loop_call_soon(loop, chain_cb, &c, NULL), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(alloc.calls, warm);
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
    alloc = (struct counting_alloc){0};
    assert_int_equal(loop_new_with(&loop, &(loop_options){.realloc = counting_realloc,
                                                          .alloc_ctx = &alloc,
                                                          .clock = LOOP_CLOCK_VIRTUAL}),
                     0);
    soon_with_handle_runs = 49000;
    assert_int_equal(loop_call_soon(loop, with_handle, NULL, NULL), 0);
    assert_int_equal(loop_run(loop), 0);
    long warm = alloc.calls;
    soon_with_handle_runs = 0;
    assert_int_equal(loop_call_soon(loop, with_handle, NULL, NULL), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(soon_with_handle_runs, 50000);
    assert_int_equal(alloc.calls, warm);
    assert_int_equal(loop_free(loop), 0);
}

static void test_a_drained_burst_gives_its_ring_back(void **state)
{
    (void)state;
    loop_t *loop;
    assert_int_equal(loop_new(&loop), 0);
    for (uint32_t i = 0; i < 4 * test_ring_keep(); i++)
        assert_int_equal(loop_call_soon(loop, nop_cb, NULL, NULL), 0);
    assert_true(test_ring_capacity(loop) > test_ring_keep());
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(test_ring_capacity(loop), 0);
    assert_loop_valid(loop);
    assert_int_equal(loop_free(loop), 0);
}

static void test_a_ring_within_the_keep_size_is_kept(void **state)
{
    (void)state;
    loop_t *loop;
    assert_int_equal(loop_new(&loop), 0);
    for (uint32_t i = 0; i < test_ring_keep(); i++)
        assert_int_equal(loop_call_soon(loop, nop_cb, NULL, NULL), 0);
    uint32_t cap = test_ring_capacity(loop);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(test_ring_capacity(loop), cap);
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
