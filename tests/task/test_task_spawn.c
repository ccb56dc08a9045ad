/*
 * Spawning a task (asyncio's create_task): the first step is a call_soon,
 * the outcome is a future, a finished task gives its stack back at once,
 * names, and the current task.
 */
#include "task_testing.h"

#include "loop_coro.h"

static int mark_t(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    mark(*(const char *)arg);
    *result = arg;
    return 0;
}

static void spawn_from_callback(loop_t *loop, void *arg)
{
    (void)arg;
    static const char a = 'A', b = 'B', t = 'T';
    assert_int_equal(loop_call_soon(loop, mark_cb, (void *)&a, NULL), 0);
    assert_int_equal(loop_task_spawn(loop, mark_t, (void *)&t, NULL), 0);
    assert_string_equal(trace, ""); /* not started inside the spawn */
    assert_int_equal(loop_call_soon(loop, mark_cb, (void *)&b, NULL), 0);
}

static void test_spawn_schedules_the_first_step_with_call_soon(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    reset_trace();
    assert_int_equal(loop_call_soon(l, spawn_from_callback, NULL, NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_string_equal(trace, "");
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_string_equal(trace, "ATB"); /* queued between A and B, run in that order */
    assert_int_equal(loop_free(l), 0);
}

static int return_arg_code(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    int code = *(int *)arg;
    *result = arg;
    return code;
}

static void test_the_outcome_is_the_future_result_error_or_cancel(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int ok = 0, pipe = -EPIPE, cancelled = -ECANCELED, positive = 3;
    loop_task *a = spawn(l, return_arg_code, &ok);
    loop_task *b = spawn(l, return_arg_code, &pipe);
    loop_task *c = spawn(l, return_arg_code, &cancelled);
    loop_task *d = spawn(l, return_arg_code, &positive);
    void *r = NULL;
    assert_int_equal(run_task(l, a, &r), 0);
    assert_ptr_equal(r, &ok);
    assert_int_equal(run_task(l, b, NULL), -EPIPE);
    assert_int_equal(loop_future_state(loop_task_future(b)), LOOP_FUTURE_FAILED);
    assert_int_equal(run_task(l, c, NULL), -ECANCELED);
    assert_int_equal(loop_future_state(loop_task_future(c)), LOOP_FUTURE_CANCELLED);
    assert_int_equal(run_task(l, d, &r), 0); /* a positive return counts as 0 */
    assert_ptr_equal(r, &positive);
    loop_task_unref(a);
    loop_task_unref(b);
    loop_task_unref(c);
    loop_task_unref(d);
    assert_int_equal(loop_free(l), 0);
}

static void test_the_future_lives_on_while_referenced(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int ok = 0;
    loop_task *t = spawn(l, return_arg_code, &ok);
    loop_future *f = loop_task_future(t);
    loop_future_ref(f);
    assert_int_equal(run_task(l, t, NULL), 0);
    loop_task_unref(t);
    void *r = NULL;
    assert_int_equal(loop_future_result(f, &r), 0);
    assert_ptr_equal(r, &ok);
    loop_future_unref(f);
    assert_int_equal(loop_free(l), 0);
}

static void test_a_task_nobody_references_runs_to_its_end(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    static const char t = 't';
    reset_trace();
    assert_int_equal(loop_task_spawn(l, mark_t, (void *)&t, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_string_equal(trace, "t");
    assert_int_equal(loop_free(l), 0);
}

static int sleep_once(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)arg;
    (void)result;
    return loop_task_sleep(LOOP_MS(1));
}

static void test_a_finished_task_releases_its_stack_at_once(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    loop_coro_pool_trim();
    loop_task *t = spawn(l, sleep_once, NULL);
    assert_int_equal(loop_run_once(l, 0), 0);   /* started, now asleep */
    assert_int_equal(loop_coro_pool_trim(), 0); /* its stack is in use */
    assert_int_equal(run_task(l, t, NULL), 0);
    /* Still referenced, yet its stack went back to the pool when it ended. */
    assert_int_equal(loop_coro_pool_trim(), 1);
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
}

static void test_a_task_is_named_task_n_until_named(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int ok = 0;
    loop_task *a = spawn(l, return_arg_code, &ok);
    loop_task *b = spawn(l, return_arg_code, &ok);
    assert_string_equal(loop_task_name(a), "Task-1");
    assert_string_equal(loop_task_name(b), "Task-2");
    char name[] = "fetcher";
    assert_int_equal(loop_task_set_name(a, name), 0);
    name[0] = 'X'; /* copied */
    assert_string_equal(loop_task_name(a), "fetcher");
    assert_int_equal(loop_task_set_name(a, "again"), 0);
    assert_string_equal(loop_task_name(a), "again");
    assert_int_equal(loop_task_set_name(a, NULL), 0);
    assert_string_equal(loop_task_name(a), "Task-1");
    assert_int_equal(loop_task_set_name(NULL, "x"), -EINVAL);
    assert_null(loop_task_name(NULL));
    assert_int_equal(loop_task_set_name(b, "kept past its end"), 0);
    assert_int_equal(run_task(l, b, NULL), 0);
    assert_string_equal(loop_task_name(b), "kept past its end");
    loop_task_unref(a);
    loop_task_unref(b);
    assert_int_equal(loop_free(l), 0);
}

struct seen {
    loop_t *other;
    loop_task *inside, *inside_other;
};

static int record_current(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct seen *s = arg;
    s->inside = loop_task_current(loop);
    s->inside_other = loop_task_current(s->other);
    return 0;
}

static void current_in_callback(loop_t *loop, void *arg)
{
    *(loop_task **)arg = loop_task_current(loop);
}

static void test_the_current_task_is_the_one_running_on_that_loop(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct seen s = {.other = new_virtual_loop(false)};
    loop_task *t = spawn(l, record_current, &s);
    loop_task *in_cb = (loop_task *)&s; /* anything but NULL */
    assert_int_equal(loop_call_soon(l, current_in_callback, &in_cb, NULL), 0);
    assert_null(loop_task_current(l));
    assert_int_equal(run_task(l, t, NULL), 0);
    assert_ptr_equal(s.inside, t);
    assert_null(s.inside_other);
    assert_null(in_cb); /* a plain callback is no task */
    assert_null(loop_task_current(l));
    assert_null(loop_task_current(NULL));
    loop_task_unref(t);
    assert_int_equal(loop_free(s.other), 0);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spawn_schedules_the_first_step_with_call_soon),
        cmocka_unit_test(test_the_outcome_is_the_future_result_error_or_cancel),
        cmocka_unit_test(test_the_future_lives_on_while_referenced),
        cmocka_unit_test(test_a_task_nobody_references_runs_to_its_end),
        cmocka_unit_test(test_a_finished_task_releases_its_stack_at_once),
        cmocka_unit_test(test_a_task_is_named_task_n_until_named),
        cmocka_unit_test(test_the_current_task_is_the_one_running_on_that_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
