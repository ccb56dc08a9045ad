/*
 * The loop's clock: loop_now() (set by loop_new, constant within an
 * iteration, refreshed by each), loop_update_time(), loop_advance() on a
 * virtual clock, and the LOOP_MS/LOOP_SEC units.
 */
#include "fixtures.h"
#include "realtime.h"

#include <errno.h>
#include <unistd.h>

/* ---- time -------------------------------------------------------------- */

static void test_now_is_set_by_new(void **state)
{
    (void)state;
    uint64_t before = mono_ns();
    loop_t *l = new_real_loop();
    uint64_t after = mono_ns();
    assert_u64_ge(loop_now(l), before);
    assert_u64_ge(after, loop_now(l));
    assert_int_equal(loop_free(l), 0);

    l = new_virtual_loop(false);
    assert_u64_eq(loop_now(l), 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_now_of_null_is_zero(void **state)
{
    (void)state;
    assert_u64_eq(loop_now(NULL), 0);
}

struct now_probe {
    uint64_t seen[3];
    int n;
};

static void now_probe_cb(loop_t *loop, void *arg)
{
    struct now_probe *p = arg;
    p->seen[p->n++] = loop_now(loop);
    /* Let the real clock move visibly before the next callback. */
    uint64_t t = mono_ns();
    while (mono_ns() <= t + LOOP_MS(1)) {
    }
    assert_u64_eq(loop_now(loop), p->seen[p->n - 1]);
}

static void test_now_is_constant_within_an_iteration(void **state)
{
    (void)state;
    loop_t *l = NULL;
    assert_int_equal(loop_new_with(&l, &(loop_options){.strict_poll = true}), 0);
    struct now_probe p = {0};
    assert_int_equal(loop_call_soon(l, now_probe_cb, &p, NULL), 0);
    assert_int_equal(loop_call_soon(l, now_probe_cb, &p, NULL), 0);
    assert_int_equal(loop_call_at(l, 0, now_probe_cb, &p, NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(p.n, 3);
    assert_u64_eq(p.seen[1], p.seen[0]);
    assert_u64_eq(p.seen[2], p.seen[0]);
    assert_int_equal(loop_free(l), 0);
}

static void test_now_is_refreshed_by_each_iteration(void **state)
{
    (void)state;
    loop_t *l = NULL;
    assert_int_equal(loop_new_with(&l, &(loop_options){.strict_poll = true}), 0);
    uint64_t t0 = loop_now(l);
    int ran = 0;
    assert_int_equal(loop_call_soon(l, count_cb, &ran, NULL), 0);
    spin_ns(LOOP_MS(1));
    uint64_t before = mono_ns();
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(ran, 1);
    assert_u64_ge(loop_now(l), before);
    assert_true(loop_now(l) > t0);
    assert_int_equal(loop_free(l), 0);
}

static void test_update_time_refreshes_now(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    uint64_t t0 = loop_now(l);
    spin_ns(LOOP_MS(1));
    uint64_t before = mono_ns();
    assert_u64_eq(loop_now(l), t0); /* cached */
    loop_update_time(l);
    assert_u64_ge(loop_now(l), before);
    assert_true(loop_now(l) > t0);
    assert_int_equal(loop_free(l), 0);
}

static void test_update_time_does_not_move_a_virtual_clock(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    spin_ns(LOOP_MS(1));
    loop_update_time(l);
    assert_u64_eq(loop_now(l), 0);
    assert_int_equal(loop_advance(l, 42), 0);
    loop_update_time(l);
    assert_u64_eq(loop_now(l), 42);
    assert_int_equal(loop_free(l), 0);
}

static void test_advance_only_on_a_virtual_clock(void **state)
{
    (void)state;
    assert_int_equal(loop_advance(NULL, 1), -EINVAL);

    loop_t *l = new_real_loop();
    uint64_t t0 = loop_now(l);
    assert_int_equal(loop_advance(l, LOOP_SEC(1000)), -EINVAL);
    assert_true(loop_now(l) < t0 + LOOP_SEC(1000));
    assert_int_equal(loop_free(l), 0);

    l = new_virtual_loop(false);
    assert_int_equal(loop_advance(l, 0), 0);
    assert_u64_eq(loop_now(l), 0);
    assert_int_equal(loop_advance(l, 5), 0);
    assert_u64_eq(loop_now(l), 5);
    assert_int_equal(loop_advance(l, LOOP_SEC(2)), 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(2) + 5);
    assert_int_equal(loop_free(l), 0);
}

static void test_advance_saturates_rather_than_wraps(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    assert_int_equal(loop_advance(l, LOOP_SEC(1)), 0);
    assert_int_equal(loop_advance(l, UINT64_MAX), 0);
    assert_u64_eq(loop_now(l), UINT64_MAX);
    assert_int_equal(loop_advance(l, 1), 0);
    assert_u64_eq(loop_now(l), UINT64_MAX);
    assert_int_equal(loop_free(l), 0);
}

struct advance_probe {
    uint64_t before, after;
    int rc;
};

static void advance_in_cb(loop_t *loop, void *arg)
{
    struct advance_probe *p = arg;
    p->before = loop_now(loop);
    p->rc = loop_advance(loop, LOOP_SEC(3));
    p->after = loop_now(loop);
}

static void test_advance_from_a_callback_is_seen_at_once(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct advance_probe p = {0};
    assert_int_equal(loop_call_soon(l, advance_in_cb, &p, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(p.rc, 0);
    assert_u64_eq(p.before, 0);
    assert_u64_eq(p.after, LOOP_SEC(3));
    assert_u64_eq(loop_now(l), LOOP_SEC(3));
    assert_int_equal(loop_free(l), 0);
}

static void test_duration_macros_convert_to_nanoseconds(void **state)
{
    (void)state;
    assert_u64_eq(LOOP_MS(0), 0);
    assert_u64_eq(LOOP_MS(1), 1000000u);
    assert_u64_eq(LOOP_MS(1 + 1), 2000000u);
    assert_u64_eq(LOOP_SEC(1), 1000000000u);
    assert_u64_eq(LOOP_SEC(5), UINT64_C(5000000000)); /* past 32 bits */
    assert_u64_eq(LOOP_MS(4321), UINT64_C(4321000000));
    assert_u64_eq(LOOP_SEC(1000000), UINT64_C(1000000000000000));
    assert_u64_eq(LOOP_SEC(2), LOOP_MS(2000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_now_is_set_by_new),
        cmocka_unit_test(test_now_of_null_is_zero),
        cmocka_unit_test(test_now_is_constant_within_an_iteration),
        cmocka_unit_test(test_now_is_refreshed_by_each_iteration),
        cmocka_unit_test(test_update_time_refreshes_now),
        cmocka_unit_test(test_update_time_does_not_move_a_virtual_clock),
        cmocka_unit_test(test_advance_only_on_a_virtual_clock),
        cmocka_unit_test(test_advance_saturates_rather_than_wraps),
        cmocka_unit_test(test_advance_from_a_callback_is_seen_at_once),
        cmocka_unit_test(test_duration_macros_convert_to_nanoseconds),
    };
    /* A hang is a failure, not a wait for the harness's time limit. */
    alarm(120);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
