/*
 * The slab behind loop_handle: random allocation and release through the
 * public calls, with the free list, live count and generations checked
 * after every operation, and stale handles proven harmless.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internals.h"

#define N 2000

static int runs[N];

static void count(loop_t *loop, void *arg)
{
    (void)loop;
    runs[(intptr_t)arg]++;
}

static void test_slab_free_list_and_generations_hold_under_random_ops(void **state)
{
    (void)state;
    static loop_handle live[N], stale[N * 4];
    static int is_live[N];
    int nstale = 0;
    loop_t *loop;
    assert_int_equal(loop_new_with(&loop, &(loop_options){.clock = LOOP_CLOCK_VIRTUAL}), 0);
    srand(7);
    for (int op = 0; op < 20000; op++) {
        int i = rand() % N;
        if (!is_live[i]) {
            int r = rand() % 2 ? loop_call_soon(loop, count, (void *)(intptr_t)i, &live[i])
                               : loop_call_later(loop, 1000, count, (void *)(intptr_t)i, &live[i]);
            assert_int_equal(r, 0);
            assert_true(live[i].id != 0);
            is_live[i] = 1;
        } else {
            assert_int_equal(loop_cancel(loop, live[i]), 0);
            if (nstale < N * 4)
                stale[nstale++] = live[i];
            is_live[i] = 0;
        }
        assert_loop_valid(loop);
        /* A stale handle never cancels what now lives in its slot. */
        if (nstale)
            assert_int_equal(loop_cancel(loop, stale[rand() % nstale]), -ENOENT);
    }
    uint32_t live_count = 0;
    for (int i = 0; i < N; i++)
        live_count += (uint32_t)is_live[i];
    assert_int_equal(test_live_slots(loop), live_count);
    assert_true(test_slots_made(loop) <= N); /* freed slots were reused, not leaked */
    assert_int_equal(loop_run(loop), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(runs[i], is_live[i]);
    assert_int_equal(test_live_slots(loop), 0);
    assert_loop_valid(loop);
    assert_int_equal(loop_free(loop), 0);
}

static void test_handle_from_a_freed_slot_is_stale_after_reuse(void **state)
{
    (void)state;
    loop_t *loop;
    loop_handle a, b;
    assert_int_equal(loop_new(&loop), 0);
    assert_int_equal(loop_call_soon(loop, count, (void *)0, &a), 0);
    assert_int_equal(loop_cancel(loop, a), 0);
    assert_int_equal(loop_call_soon(loop, count, (void *)1, &b), 0);
    assert_int_equal((uint32_t)a.id, (uint32_t)b.id); /* same slot... */
    assert_true(a.id != b.id);                         /* ...another generation */
    assert_int_equal(loop_cancel(loop, a), -ENOENT);
    runs[1] = 0;
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(runs[1], 1);
    assert_int_equal(loop_free(loop), 0);
}

static void test_forged_handles_are_rejected(void **state)
{
    (void)state;
    loop_t *loop;
    loop_handle h;
    assert_int_equal(loop_new(&loop), 0);
    assert_int_equal(loop_call_soon(loop, count, (void *)0, &h), 0);
    assert_int_equal(loop_cancel(loop, (loop_handle){0}), -ENOENT);
    assert_int_equal(loop_cancel(loop, (loop_handle){h.id + 1}), -ENOENT);         /* next slot */
    assert_int_equal(loop_cancel(loop, (loop_handle){h.id ^ (1ull << 32)}), -ENOENT); /* even gen */
    assert_int_equal(loop_cancel(loop, (loop_handle){UINT64_MAX}), -ENOENT);
    assert_int_equal(loop_cancel(NULL, h), -EINVAL);
    assert_int_equal(loop_cancel(loop, h), 0);
    assert_loop_valid(loop);
    assert_int_equal(loop_free(loop), 0);
}

/* One timer at 1 ms intervals per slot, all with handles. */
#define SOME 16

static loop_t *virtual_loop_with_timers(loop_handle *h)
{
    loop_t *loop;
    assert_int_equal(loop_new_with(&loop, &(loop_options){.clock = LOOP_CLOCK_VIRTUAL}), 0);
    for (int i = 0; i < SOME; i++)
        assert_int_equal(loop_call_later(loop, LOOP_MS(i + 1), count, (void *)(intptr_t)i, &h[i]), 0);
    return loop;
}

static void test_a_handle_of_another_loop_neither_cancels_nor_moves_a_callback(void **state)
{
    (void)state;
    loop_handle ha[SOME], hb[SOME];
    loop_t *a = virtual_loop_with_timers(ha);
    loop_t *b = virtual_loop_with_timers(hb); /* the same slots, the same generations */
    for (int i = 0; i < SOME; i++) {
        assert_int_equal(loop_cancel(b, ha[i]), -ENOENT);
        assert_int_equal(loop_reschedule(b, ha[i], LOOP_SEC(100)), -ENOENT);
        assert_int_equal(loop_reschedule_at(b, ha[i], 0), -ENOENT);
    }
    assert_loop_valid(b);
    memset(runs, 0, sizeof(runs));
    assert_int_equal(loop_run(b), 0);
    for (int i = 0; i < SOME; i++)
        assert_int_equal(runs[i], 1);
    assert_true(loop_now(b) == LOOP_MS(SOME)); /* none was moved later */
    assert_int_equal(loop_free(a), 0);
    assert_int_equal(loop_free(b), 0);
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_made_up_handles_are_enoent_and_touch_no_callback(void **state)
{
    (void)state;
    loop_handle h[SOME];
    loop_t *loop = virtual_loop_with_timers(h);
    int tried = 0;
    /* The ids a loop without a key gives out first, (gen << 32 | slot) ... */
    for (uint64_t gen = 0; gen < 8; gen++)
        for (uint64_t slot = 0; slot < 2 * SOME; slot++, tried++)
            assert_int_equal(loop_cancel(loop, (loop_handle){gen << 32 | slot}), -ENOENT);
    /* ... and any 64-bit value. */
    uint64_t seed = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 100000; i++, tried++) {
        loop_handle forged = {xorshift(&seed)};
        assert_int_equal(loop_reschedule(loop, forged, 0), -ENOENT);
        assert_int_equal(loop_cancel(loop, forged), -ENOENT);
    }
    assert_true(tried > 100000);
    memset(runs, 0, sizeof(runs));
    assert_int_equal(loop_run(loop), 0);
    for (int i = 0; i < SOME; i++)
        assert_int_equal(runs[i], 1);
    assert_int_equal(loop_free(loop), 0);
}

/*
 * A free slot's generation is even.  A handle that names a free slot with
 * exactly that generation (as a forged or corrupted id can, since handle
 * ids are only xored with the loop's key) must not be taken for a live
 * one: cancelling it would free the slot a second time.  A fresh loop's
 * first slot is live at generation 1 and free at 2, so the id of its first
 * handle with generation bits 1 ^ 2 flipped names the free slot.
 */
static void test_a_handle_naming_a_free_slot_at_its_even_generation_is_enoent(void **state)
{
    (void)state;
    loop_t *loop = new_virtual_loop(false);
    loop_handle h;
    assert_int_equal(loop_call_later(loop, LOOP_MS(1), count, (void *)0, &h), 0);
    assert_int_equal(loop_cancel(loop, h), 0);
    loop_handle free_slot = {h.id ^ ((uint64_t)(1 ^ 2) << 32)};
    assert_int_equal(loop_cancel(loop, free_slot), -ENOENT);
    assert_int_equal(loop_reschedule(loop, free_slot, LOOP_MS(1)), -ENOENT);
    assert_int_equal(test_live_slots(loop), 0);
    assert_loop_valid(loop);
    assert_int_equal(loop_free(loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slab_free_list_and_generations_hold_under_random_ops),
        cmocka_unit_test(test_handle_from_a_freed_slot_is_stale_after_reuse),
        cmocka_unit_test(test_forged_handles_are_rejected),
        cmocka_unit_test(test_a_handle_of_another_loop_neither_cancels_nor_moves_a_callback),
        cmocka_unit_test(test_made_up_handles_are_enoent_and_touch_no_callback),
        cmocka_unit_test(test_a_handle_naming_a_free_slot_at_its_even_generation_is_enoent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
