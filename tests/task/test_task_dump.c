/*
 * The task dump: one line per unfinished task, in spawn order, with its
 * state and what it waits for; snprintf's contract for the buffer.
 */
#include "task_testing.h"

static int sleep_long(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)arg;
    (void)result;
    return loop_task_sleep(LOOP_SEC(10));
}

static int await_arg(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    return loop_task_await(arg, result);
}

static int sleep_zero(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)arg;
    (void)result;
    return loop_task_sleep(0);
}

static int dump_self(loop_t *loop, void *arg, void **result)
{
    (void)result;
    char *buf = arg;
    assert_true(loop_task_dump(loop, buf, 256) > 0);
    return 0;
}

static void test_the_dump_names_each_unfinished_task_and_what_it_waits_for(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    loop_future *f = new_future(l);
    loop_task *a = spawn(l, sleep_long, NULL);
    loop_task *b = spawn(l, await_arg, loop_task_future(a));
    loop_task *c = spawn(l, await_arg, f);
    loop_task *d = spawn(l, sleep_zero, NULL);
    loop_task *done = spawn(l, sleep_zero, NULL);
    assert_int_equal(loop_task_set_name(b, "fetcher"), 0);
    assert_int_equal(loop_run_once(l, 0), 0); /* a, b, c, d suspended */
    assert_int_equal(loop_run_once(l, 0), 0); /* d and done ran their sleep(0): finished */
    loop_task *e = spawn(l, sleep_zero, NULL);
    assert_int_equal(loop_task_cancel(c), 1); /* c's future is cancelled: its wake-up is queued */
    assert_int_equal(loop_task_cancel(e), 1);

    char buf[512];
    const char *want = "Task-1 suspended: sleeping\n"
                       "fetcher suspended: awaiting Task-1\n"
                       "Task-3 suspended: ready\n"
                       "Task-6 not started, cancel pending\n";
    int n = loop_task_dump(l, buf, sizeof buf);
    assert_string_equal(buf, want);
    assert_int_equal(n, (int)strlen(want));

    /* Too small: cut and terminated, the whole length returned. */
    char small[10];
    assert_int_equal(loop_task_dump(l, small, sizeof small), n);
    assert_string_equal(small, "Task-1 su");
    assert_int_equal(loop_task_dump(l, NULL, 0), n);
    assert_int_equal(loop_task_dump(NULL, buf, sizeof buf), -EINVAL);

    assert_int_equal(loop_task_cancel(a), 1);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_task_dump(l, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    loop_task *all[] = {a, b, c, d, done, e};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        loop_task_unref(all[i]);
    loop_future_unref(f);
    assert_int_equal(loop_free(l), 0);
}

static void test_the_dump_shows_a_running_task_and_a_pending_future(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    loop_future *f = new_future(l);
    char inside[256] = "";
    loop_task *w = spawn(l, await_arg, f);
    assert_int_equal(loop_run_once(l, 0), 0);
    loop_task *t = spawn(l, dump_self, inside);
    assert_int_equal(run_task(l, t, NULL), 0);
    assert_string_equal(inside, "Task-1 suspended: awaiting a future\nTask-2 running\n");
    loop_task_unref(t);
    loop_task_unref(w);
    loop_future_unref(f);
    assert_int_equal(loop_free(l), 0);
}

static void test_a_loop_without_tasks_dumps_nothing(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    char buf[4] = "xyz";
    assert_int_equal(loop_task_dump(l, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_dump_names_each_unfinished_task_and_what_it_waits_for),
        cmocka_unit_test(test_the_dump_shows_a_running_task_and_a_pending_future),
        cmocka_unit_test(test_a_loop_without_tasks_dumps_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
