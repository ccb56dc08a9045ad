/*
 * The timer heap, attacked at random: schedule, cancel, reschedule and
 * expire in random order against a reference list, checking every internal
 * invariant (loop__verify) after every operation; also across the point
 * where the heap's 32-bit sequence numbers run out and are renumbered.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internals.h"

#define MAXT 4096

struct ref {
    uint64_t when, seq;
    loop_handle h;
    int live;
};

static struct ref refs[MAXT];
static int nrefs;
static uint64_t seq;
static int fired[MAXT], nfired;

static void record(loop_t *loop, void *arg)
{
    (void)loop;
    fired[nfired++] = (int)(intptr_t)arg;
}

static uint64_t rnd(uint64_t n)
{
    return ((uint64_t)rand() << 31 ^ (uint64_t)rand()) % n;
}

/* The reference: of the live timers due by now, the (when, seq) smallest. */
static int ref_next_due(uint64_t now)
{
    int best = -1;
    for (int i = 0; i < nrefs; i++) {
        if (!refs[i].live || refs[i].when > now)
            continue;
        if (best < 0 || refs[i].when < refs[best].when ||
            (refs[i].when == refs[best].when && refs[i].seq < refs[best].seq))
            best = i;
    }
    return best;
}

/* wrap_in: start the heap's sequence numbers that many short of running
 * out (0: from the start). */
static void run_random_heap(unsigned seed, int ops, uint32_t wrap_in)
{
    loop_t *loop;
    assert_int_equal(loop_new_with(&loop, &(loop_options){.clock = LOOP_CLOCK_VIRTUAL,
                                                          .strict_poll = true}),
                     0);
    srand(seed);
    if (wrap_in)
        test_set_timer_seq(loop, UINT32_MAX - wrap_in);
    nrefs = 0;
    nfired = 0;
    seq = 0;

    for (int op = 0; op < ops; op++) {
        int kind = (int)rnd(10);
        if (kind < 5 && nrefs < MAXT) {
            /* Few distinct deadlines, so that ties are common. */
            uint64_t when = loop_now(loop) + rnd(64);
            struct ref *r = &refs[nrefs];
            assert_int_equal(loop_call_at(loop, when, record, (void *)(intptr_t)nrefs, &r->h), 0);
            r->when = when;
            r->seq = seq++;
            r->live = 1;
            nrefs++;
        } else if (kind < 7 && nrefs > 0) {
            struct ref *r = &refs[rnd((uint64_t)nrefs)];
            assert_int_equal(loop_cancel(loop, r->h), r->live ? 0 : -ENOENT);
            r->live = 0;
        } else if (kind < 8 && nrefs > 0) {
            /* Later (pushed back lazily) or earlier: as if scheduled anew. */
            struct ref *r = &refs[rnd((uint64_t)nrefs)];
            uint64_t when = loop_now(loop) + rnd(64);
            assert_int_equal(loop_reschedule_at(loop, r->h, when), r->live ? 0 : -ENOENT);
            if (r->live) {
                r->when = when;
                r->seq = seq++;
            }
        } else {
            assert_int_equal(loop_advance(loop, rnd(16)), 0);
            int before = nfired;
            assert_int_equal(loop_run_once(loop, 0), 0);
            /* Everything due ran, in (deadline, schedule order). */
            for (int k = before; k < nfired; k++) {
                int want = ref_next_due(loop_now(loop));
                assert_int_equal(fired[k], want);
                refs[want].live = 0;
            }
            assert_int_equal(ref_next_due(loop_now(loop)), -1);
        }
        assert_loop_valid(loop);
    }
    assert_int_equal(loop_free(loop), 0);
}

static void test_heap_pops_in_deadline_then_schedule_order_under_random_ops(void **state)
{
    (void)state;
    for (unsigned seed = 1; seed <= 40; seed++)
        run_random_heap(seed, 3000, 0);
}

static void test_sequence_numbers_that_run_out_are_renumbered_in_order(void **state)
{
    (void)state;
    for (unsigned seed = 1; seed <= 40; seed++)
        run_random_heap(seed, 3000, 1 + (uint32_t)rnd(1500));
}

/* The renumbering applies a pushed-back deadline with the sequence number
 * of its push-back, and a repeating timer keeps its place. */
static void test_renumbering_keeps_pushed_back_and_repeating_timers_in_order(void **state)
{
    (void)state;
    loop_t *loop;
    assert_int_equal(loop_new_with(&loop, &(loop_options){.clock = LOOP_CLOCK_VIRTUAL}), 0);
    test_set_timer_seq(loop, UINT32_MAX - 4);
    loop_handle a, every;
    nfired = 0;
    assert_int_equal(loop_call_at(loop, 10, record, (void *)0, &a), 0);
    assert_int_equal(loop_call_every(loop, 20, record, (void *)3, &every), 0); /* at 20, 40 */
    assert_int_equal(loop_call_at(loop, 20, record, (void *)1, NULL), 0);
    assert_int_equal(loop_reschedule_at(loop, a, 20), 0); /* lazily: after 1 */
    assert_int_equal(loop_call_at(loop, 20, record, (void *)2, NULL), 0); /* renumbers */
    assert_loop_valid(loop);
    assert_int_equal(loop_call_at(loop, 40, record, (void *)4, NULL), 0);
    assert_int_equal(loop_advance(loop, 40), 0);
    assert_int_equal(loop_run_once(loop, 0), 0);
    /* Due by 40, in (deadline, schedule order); the repeating one re-arms
     * for 60 (40 has passed). */
    int want[] = {3, 1, 0, 2, 4};
    assert_int_equal(nfired, 5);
    for (int k = 0; k < 5; k++)
        assert_int_equal(fired[k], want[k]);
    assert_int_equal(loop_cancel(loop, every), 0);
    assert_int_equal(loop_free(loop), 0);
}

static void test_cancelled_timer_never_fires_and_leaves_heap_valid(void **state)
{
    (void)state;
    loop_t *loop;
    assert_int_equal(loop_new_with(&loop, &(loop_options){.clock = LOOP_CLOCK_VIRTUAL}), 0);
    loop_handle h[100];
    nfired = 0;
    for (int i = 0; i < 100; i++)
        assert_int_equal(loop_call_later(loop, (uint64_t)(100 - i), record, (void *)(intptr_t)i,
                                         &h[i]),
                         0);
    /* Cancel every other one, from the middle of the heap outwards. */
    for (int i = 0; i < 100; i += 2) {
        assert_int_equal(loop_cancel(loop, h[(i + 50) % 100]), 0);
        assert_loop_valid(loop);
    }
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(nfired, 50);
    for (int k = 0; k < 50; k++)
        assert_int_equal(fired[k] % 2, 1); /* (i + 50) % 100 with i even is even */
    assert_int_equal(fired[0], 99);        /* deadlines run 1..100 as i runs 99..0 */
    assert_int_equal(loop_free(loop), 0);
}

static int every_runs;
static loop_handle every_h;

static void every_cb(loop_t *loop, void *arg)
{
    (void)arg;
    every_runs++;
    assert_loop_valid(loop);
    if (every_runs == 5)
        assert_int_equal(loop_cancel(loop, every_h), 0);
}

static void test_repeating_timer_rearms_in_heap_and_stays_valid(void **state)
{
    (void)state;
    loop_t *loop;
    assert_int_equal(loop_new_with(&loop, &(loop_options){.clock = LOOP_CLOCK_VIRTUAL}), 0);
    every_runs = 0;
    for (int i = 0; i < 50; i++)
        assert_int_equal(loop_call_later(loop, LOOP_MS(i), record, NULL, NULL), 0);
    assert_int_equal(loop_call_every(loop, LOOP_MS(7), every_cb, NULL, &every_h), 0);
    nfired = 0;
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(every_runs, 5);
    assert_int_equal(nfired, 50);
    assert_int_equal(loop_now(loop), LOOP_MS(49));
    assert_loop_valid(loop);
    assert_int_equal(loop_free(loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heap_pops_in_deadline_then_schedule_order_under_random_ops),
        cmocka_unit_test(test_sequence_numbers_that_run_out_are_renumbered_in_order),
        cmocka_unit_test(test_renumbering_keeps_pushed_back_and_repeating_timers_in_order),
        cmocka_unit_test(test_cancelled_timer_never_fires_and_leaves_heap_valid),
        cmocka_unit_test(test_repeating_timer_rearms_in_heap_and_stays_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
