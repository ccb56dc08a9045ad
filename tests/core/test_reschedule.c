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

/* The random test's timers: where each must run, and where it did. */
enum { RANDOM_N = 500 };

struct random_timer {
    uint64_t when; /* the last deadline given */
    uint64_t seq;  /* when that was given, among all (re)schedules */
    loop_handle h;
    int runs;
    uint64_t ran_at;
};

static struct random_timer rt[RANDOM_N];
static int rt_ran[RANDOM_N], rt_nran;

static void random_timer_cb(loop_t *loop, void *arg)
{
    int i = (int)(intptr_t)arg;
    rt[i].runs++;
    rt[i].ran_at = loop_now(loop);
    if (rt_nran < RANDOM_N)
        rt_ran[rt_nran] = i;
    rt_nran++;
}

/* (deadline, last (re)schedule): the order the timers must run in. */
static int by_deadline_then_seq(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    if (rt[x].when != rt[y].when)
        return rt[x].when < rt[y].when ? -1 : 1;
    return rt[x].seq < rt[y].seq ? -1 : rt[x].seq > rt[y].seq;
}

static void test_random_reschedules_keep_the_heap_valid(void **state)
{
    (void)state;
    loop_t *loop = virtual_loop();
    uint64_t seq = 0;
    srand(11);
    /* Few distinct deadlines, so that ties are common. */
    for (int i = 0; i < RANDOM_N; i++) {
        rt[i] = (struct random_timer){.when = (uint64_t)(rand() % 1000), .seq = seq++};
        assert_int_equal(
            loop_call_at(loop, rt[i].when, random_timer_cb, (void *)(intptr_t)i, &rt[i].h), 0);
    }
    for (int k = 0; k < 20000; k++) {
        int i = rand() % RANDOM_N;
        rt[i].when = (uint64_t)(rand() % 1000);
        rt[i].seq = seq++;
        assert_int_equal(loop_reschedule_at(loop, rt[i].h, rt[i].when), 0);
        if (k % 97 == 0)
            assert_loop_valid(loop);
    }
    assert_loop_valid(loop);

    /* Each runs once, at its last deadline, in (deadline, last reschedule)
     * order: a rescheduled timer counts as scheduled when it was moved. */
    rt_nran = 0;
    assert_int_equal(loop_run(loop), 0);
    assert_loop_valid(loop);
    assert_int_equal(rt_nran, RANDOM_N);
    int want[RANDOM_N];
    for (int i = 0; i < RANDOM_N; i++) {
        assert_int_equal(rt[i].runs, 1);
        assert_int_equal(rt[i].ran_at, rt[i].when);
        want[i] = i;
    }
    qsort(want, RANDOM_N, sizeof(want[0]), by_deadline_then_seq);
    for (int k = 0; k < RANDOM_N; k++)
        if (rt_ran[k] != want[k])
            fail_msg("run %d was timer %d (due %" PRIu64 "), want timer %d (due %" PRIu64 ")", k,
                     rt_ran[k], rt[rt_ran[k]].when, want[k], rt[want[k]].when);
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
