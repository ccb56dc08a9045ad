/*
 * loop_reschedule / loop_reschedule_at: a pending callback moves to a new
 * deadline and keeps its handle.
 */
#include <errno.h>
#include <stdlib.h>

#include "internals.h"

static char order[64];
static int norder;
static uint64_t ran_at[64];

static void mark(loop_t *loop, void *arg)
{
    ran_at[norder] = loop_now(loop);
    order[norder++] = *(const char *)arg;
    order[norder] = 0;
}

static loop_t *virtual_loop(void)
{
    loop_t *loop;
    assert_int_equal(loop_new_with(&loop, &(loop_options){.clock = LOOP_CLOCK_VIRTUAL}), 0);
    norder = 0;
    order[0] = 0;
    return loop;
}

static void test_rescheduled_timer_runs_once_at_its_new_deadline(void **state)
{
    (void)state;
    loop_t *loop = virtual_loop();
    loop_handle a, b;
    assert_int_equal(loop_call_later(loop, 100, mark, "a", &a), 0);
    assert_int_equal(loop_call_later(loop, 50, mark, "b", &b), 0);
    assert_int_equal(loop_reschedule(loop, a, 10), 0);   /* earlier */
    assert_int_equal(loop_reschedule_at(loop, b, 70), 0); /* later */
    assert_int_equal(loop_run(loop), 0);
    assert_string_equal(order, "ab");
    assert_int_equal(ran_at[0], 10);
    assert_int_equal(ran_at[1], 70);
    assert_int_equal(loop_cancel(loop, a), -ENOENT); /* it ran: the handle is spent */
    assert_int_equal(loop_free(loop), 0);
}

static void test_rescheduled_timer_keeps_its_handle_for_cancel(void **state)
{
    (void)state;
    loop_t *loop = virtual_loop();
    loop_handle a;
    assert_int_equal(loop_call_later(loop, 100, mark, "a", &a), 0);
    assert_int_equal(loop_reschedule(loop, a, 200), 0);
    assert_int_equal(loop_cancel(loop, a), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(norder, 0);
    assert_int_equal(loop_free(loop), 0);
}

static void test_rescheduled_timer_goes_after_equal_deadlines(void **state)
{
    (void)state;
    loop_t *loop = virtual_loop();
    loop_handle a;
    assert_int_equal(loop_call_at(loop, 5, mark, "a", &a), 0);
    assert_int_equal(loop_call_at(loop, 10, mark, "b", NULL), 0);
    assert_int_equal(loop_call_at(loop, 10, mark, "c", NULL), 0);
    assert_int_equal(loop_reschedule_at(loop, a, 10), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_string_equal(order, "bca");
    assert_int_equal(loop_free(loop), 0);
}

static loop_handle victim;

static void push_back_victim(loop_t *loop, void *arg)
{
    (void)arg;
    assert_int_equal(loop_reschedule(loop, victim, 40), 0);
    assert_loop_valid(loop);
}

static void test_rescheduling_a_queued_timer_drops_its_queued_run(void **state)
{
    (void)state;
    loop_t *loop = virtual_loop();
    /* Both fall due in the same iteration; the first pushes the second back. */
    assert_int_equal(loop_call_at(loop, 10, push_back_victim, NULL, NULL), 0);
    assert_int_equal(loop_call_at(loop, 10, mark, "v", &victim), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_string_equal(order, "v"); /* once, not twice */
    assert_int_equal(ran_at[0], 50);
    assert_int_equal(loop_free(loop), 0);
}

static void test_rescheduled_call_soon_becomes_a_timer(void **state)
{
    (void)state;
    loop_t *loop = virtual_loop();
    loop_handle a;
    assert_int_equal(loop_call_soon(loop, mark, "a", &a), 0);
    assert_int_equal(loop_reschedule_at(loop, a, 30), 0);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(norder, 0);
    assert_int_equal(loop_run(loop), 0);
    assert_string_equal(order, "a");
    assert_int_equal(ran_at[0], 30);
    assert_int_equal(loop_free(loop), 0);
}

static loop_handle every;

static void every_mark(loop_t *loop, void *arg)
{
    mark(loop, arg);
    if (norder == 3)
        assert_int_equal(loop_cancel(loop, every), 0);
}

static void test_rescheduled_repeating_timer_keeps_its_period_from_there(void **state)
{
    (void)state;
    loop_t *loop = virtual_loop();
    assert_int_equal(loop_call_every(loop, 10, every_mark, "e", &every), 0);
    assert_int_equal(loop_reschedule_at(loop, every, 25), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_string_equal(order, "eee");
    assert_int_equal(ran_at[0], 25);
    assert_int_equal(ran_at[1], 35);
    assert_int_equal(ran_at[2], 45);
    assert_int_equal(loop_free(loop), 0);
}

static void test_reschedule_rejects_stale_and_bad_arguments(void **state)
{
    (void)state;
    loop_t *loop = virtual_loop();
    loop_handle a;
    assert_int_equal(loop_call_later(loop, 10, mark, "a", &a), 0);
    assert_int_equal(loop_reschedule(NULL, a, 1), -EINVAL);
    assert_int_equal(loop_reschedule_at(NULL, a, 1), -EINVAL);
    assert_int_equal(loop_reschedule(loop, (loop_handle){0}, 1), -ENOENT);
    assert_int_equal(loop_cancel(loop, a), 0);
    assert_int_equal(loop_reschedule(loop, a, 1), -ENOENT);
    assert_int_equal(loop_reschedule_at(loop, a, 1), -ENOENT);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(norder, 0);
    assert_int_equal(loop_free(loop), 0);
}

static void test_random_reschedules_keep_the_heap_valid(void **state)
{
    (void)state;
    enum { N = 500 };
    loop_handle h[N];
    loop_t *loop = virtual_loop();
    srand(11);
    for (int i = 0; i < N; i++)
        assert_int_equal(loop_call_at(loop, (uint64_t)(rand() % 1000), mark, "x", &h[i]), 0);
    for (int k = 0; k < 20000; k++) {
        assert_int_equal(loop_reschedule_at(loop, h[rand() % N], (uint64_t)(rand() % 1000)), 0);
        if (k % 97 == 0)
            assert_loop_valid(loop);
    }
    assert_loop_valid(loop);
    assert_int_equal(loop_free(loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rescheduled_timer_runs_once_at_its_new_deadline),
        cmocka_unit_test(test_rescheduled_timer_keeps_its_handle_for_cancel),
        cmocka_unit_test(test_rescheduled_timer_goes_after_equal_deadlines),
        cmocka_unit_test(test_rescheduling_a_queued_timer_drops_its_queued_run),
        cmocka_unit_test(test_rescheduled_call_soon_becomes_a_timer),
        cmocka_unit_test(test_rescheduled_repeating_timer_keeps_its_period_from_there),
        cmocka_unit_test(test_reschedule_rejects_stale_and_bad_arguments),
        cmocka_unit_test(test_random_reschedules_keep_the_heap_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
