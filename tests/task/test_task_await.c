/*
 * Awaiting from a task (hop rules 3 and 4): a done future is read without
 * suspending; a pending one resumes the task from its done callback, one
 * hop after it completes; another task is awaited through its future.
 */
#include "task_testing.h"

struct awaiter {
    loop_future *f;
    int err;
    void *result;
    uint64_t hop_resumed;
};

static int await_marked(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct awaiter *a = arg;
    mark('1');
    a->err = loop_task_await(a->f, &a->result);
    a->hop_resumed = hops(loop);
    mark('2');
    return 0;
}

static void test_awaiting_a_done_future_does_not_suspend(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    int x;
    struct awaiter a = {.f = new_future(l)};
    assert_int_equal(loop_future_set_result(a.f, &x), 0);
    reset_trace();
    loop_task *t = spawn(l, await_marked, &a);
    static const char b = 'B';
    assert_int_equal(loop_call_soon(l, mark_cb, (void *)&b, NULL), 0);
    assert_int_equal(run_task(l, t, NULL), 0);
    assert_string_equal(trace, "12B"); /* no hop between 1 and 2 */
    assert_int_equal(a.err, 0);
    assert_ptr_equal(a.result, &x);
    loop_task_unref(t);
    loop_future_unref(a.f);
    assert_int_equal(loop_free(l), 0);
}

struct completer {
    loop_future *f;
    void *value;
    uint64_t hop;
};

/* set_result, then a call_soon queued after the completion's callbacks. */
static void complete_then_queue(loop_t *loop, void *arg)
{
    struct completer *c = arg;
    static const char x = 'X';
    c->hop = hops(loop);
    assert_int_equal(loop_future_set_result(c->f, c->value), 0);
    assert_int_equal(loop_call_soon(loop, mark_cb, (void *)&x, NULL), 0);
}

static void test_a_pending_future_resumes_the_task_one_hop_after_it_completes(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    int x;
    struct awaiter a = {.f = new_future(l)};
    struct completer c = {.f = a.f, .value = &x};
    reset_trace();
    loop_task *t = spawn(l, await_marked, &a);
    assert_int_equal(loop_call_later(l, LOOP_MS(5), complete_then_queue, &c, NULL), 0);
    assert_int_equal(run_task(l, t, NULL), 0);
    /* The done callback runs the step itself: the task runs before X,
     * which was queued right after the completion. */
    assert_string_equal(trace, "12X");
    assert_u64_eq(a.hop_resumed, c.hop + 1);
    assert_int_equal(a.err, 0);
    assert_ptr_equal(a.result, &x);
    loop_task_unref(t);
    loop_future_unref(a.f);
    assert_int_equal(loop_free(l), 0);
}

static void fail_it(loop_t *loop, void *arg)
{
    (void)loop;
    assert_int_equal(loop_future_set_error(arg, -EPIPE), 0);
}

static void test_await_returns_the_futures_error(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct awaiter a = {.f = new_future(l), .result = &a};
    reset_trace();
    loop_task *t = spawn(l, await_marked, &a);
    assert_int_equal(loop_call_soon(l, fail_it, a.f, NULL), 0);
    assert_int_equal(run_task(l, t, NULL), 0);
    assert_int_equal(a.err, -EPIPE);
    assert_ptr_equal(a.result, &a); /* untouched on error */
    loop_task_unref(t);
    loop_future_unref(a.f);
    assert_int_equal(loop_free(l), 0);
}

static int sleeper(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    int err = loop_task_sleep(LOOP_MS(10));
    *result = arg;
    return err;
}

static int await_task(loop_t *loop, void *arg, void **result)
{
    loop_task *inner = spawn(loop, sleeper, arg);
    int err = loop_task_await(loop_task_future(inner), result);
    assert_true(loop_future_done(loop_task_future(inner)));
    loop_task_unref(inner);
    return err;
}

static void test_a_task_awaits_another_task_through_its_future(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int x;
    loop_task *t = spawn(l, await_task, &x);
    void *r = NULL;
    assert_int_equal(run_task(l, t, &r), 0);
    assert_ptr_equal(r, &x);
    assert_u64_eq(loop_now(l), LOOP_MS(10));
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_awaiting_a_done_future_does_not_suspend),
        cmocka_unit_test(test_a_pending_future_resumes_the_task_one_hop_after_it_completes),
        cmocka_unit_test(test_await_returns_the_futures_error),
        cmocka_unit_test(test_a_task_awaits_another_task_through_its_future),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
