/*
 * Errors nobody read (loop_future_on_unretrieved, asyncio's "Task
 * exception was never retrieved"): a task that failed and that nobody
 * awaited is reported once, when its future is freed; a task whose error
 * was read (awaited, gathered, in a group) is not, nor one that succeeded
 * or was cancelled.
 */
#include "task_testing.h"

struct reports {
    int n;
    int err;
    const loop_future *f;
};

static void report(loop_future *f, int err, void *arg)
{
    struct reports *r = arg;
    assert_int_equal(loop_future_state(f), LOOP_FUTURE_FAILED); /* readable */
    r->n++;
    r->err = err;
    r->f = f;
}

static loop_t *reporting_loop(struct reports *r)
{
    loop_t *l = new_virtual_loop(false);
    assert_int_equal(loop_future_on_unretrieved(l, report, r), 0);
    return l;
}

static int fail_task(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    return arg ? (int)(intptr_t)arg : -EIO;
}

static void test_a_failed_task_nobody_awaited_is_reported_once_when_released(void **state)
{
    (void)state;
    struct reports r = {0};
    loop_t *l = reporting_loop(&r);
    loop_task *t = spawn(l, fail_task, NULL);
    const loop_future *f = loop_task_future(t);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(r.n, 0); /* still held: it may yet be read */
    loop_task_unref(t);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.err, -EIO);
    assert_ptr_equal(r.f, f);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(r.n, 1);
}

static void test_a_fire_and_forget_task_that_fails_is_reported_when_it_ends(void **state)
{
    (void)state;
    struct reports r = {0};
    loop_t *l = reporting_loop(&r);
    assert_int_equal(loop_task_spawn(l, fail_task, (void *)(intptr_t)-EPIPE, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.err, -EPIPE);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(r.n, 1);
}

static int ok_task(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)arg;
    (void)result;
    return loop_task_sleep(LOOP_SEC(1));
}

/* Reads its children's errors every way a task can. */
static int reader(loop_t *loop, void *arg, void **result)
{
    (void)arg;
    (void)result;
    loop_task *a = spawn(loop, fail_task, NULL);
    assert_int_equal(loop_task_await(loop_task_future(a), NULL), -EIO);
    loop_task *b = spawn(loop, fail_task, NULL);
    loop_future *fs[] = {loop_task_future(b)};
    assert_int_equal(loop_task_gather(fs, 1), -EIO);
    loop_task *c = spawn(loop, fail_task, NULL);
    assert_int_equal(loop_task_wait_for(loop_task_future(c), LOOP_SEC(5), NULL), -EIO);
    loop_task_group *g;
    assert_int_equal(loop_task_group_new(&g), 0);
    assert_int_equal(loop_task_group_spawn(g, fail_task, NULL, NULL), 0);
    assert_int_equal(loop_task_group_end(g, 0), -EIO);
    loop_task *d = spawn(loop, ok_task, NULL);
    loop_task *e = spawn(loop, ok_task, NULL);
    assert_int_equal(loop_task_sleep(0), 0);
    assert_int_equal(loop_task_cancel(e), 1);
    assert_int_equal(loop_task_await(loop_task_future(d), NULL), 0);
    loop_task_unref(a);
    loop_task_unref(b);
    loop_task_unref(c);
    loop_task_unref(d);
    loop_task_unref(e);
    return 0;
}

static void
test_errors_read_and_tasks_that_succeeded_or_were_cancelled_are_not_reported(void **state)
{
    (void)state;
    struct reports r = {0};
    loop_t *l = reporting_loop(&r);
    loop_task *t = spawn(l, reader, NULL);
    assert_int_equal(run_task(l, t, NULL), 0);
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(r.n, 0);
}

static void test_a_failed_task_still_held_at_loop_free_is_reported_then(void **state)
{
    (void)state;
    struct reports r = {0};
    loop_t *l = reporting_loop(&r);
    loop_task *t = spawn(l, fail_task, NULL);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.err, -EIO);
    loop_task_unref(t); /* after the loop: allowed, reports nothing more */
    assert_int_equal(r.n, 1);
}

static void test_with_no_handler_nothing_is_reported_and_bad_input_is_einval(void **state)
{
    (void)state;
    struct reports r = {0};
    loop_t *l = reporting_loop(&r);
    assert_int_equal(loop_future_on_unretrieved(l, NULL, NULL), 0);
    assert_int_equal(loop_task_spawn(l, fail_task, NULL, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(loop_future_on_unretrieved(NULL, report, &r), -EINVAL);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_failed_task_nobody_awaited_is_reported_once_when_released),
        cmocka_unit_test(test_a_fire_and_forget_task_that_fails_is_reported_when_it_ends),
        cmocka_unit_test(
            test_errors_read_and_tasks_that_succeeded_or_were_cancelled_are_not_reported),
        cmocka_unit_test(test_a_failed_task_still_held_at_loop_free_is_reported_then),
        cmocka_unit_test(test_with_no_handler_nothing_is_reported_and_bad_input_is_einval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
