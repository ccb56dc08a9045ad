/*
 * Waits on the real clock: how long an iteration sleeps for a timer or for
 * run_once's cap.
 */
#include "fixtures.h"

#include <unistd.h>

static void test_huge_delay_on_the_real_clock_waits_only_the_cap(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    int a = 0;
    loop_handle h;
    assert_int_equal(loop_call_later(l, UINT64_MAX, count_cb, &a, &h), 0);
    assert_int_equal(loop_call_at(l, UINT64_MAX, count_cb, &a, NULL), 0);
    /* Returns (a hang would trip the alarm) with no error. */
    assert_int_equal(loop_run_once(l, (int64_t)LOOP_MS(1)), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(a, 0);
    assert_int_equal(loop_cancel(l, h), 0);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_huge_delay_on_the_real_clock_waits_only_the_cap),
    };
    alarm(120);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
