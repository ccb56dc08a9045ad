/*
 * gather and wait_for from a task (hop rules 7 and 8): gather suspends
 * and resumes two hops after the last child completes, reports the first
 * error, and a cancel of the task cancels every child; wait_for times out
 * with -ETIMEDOUT once the inner is cancelled, and never swallows a
 * cancel of the waiting task.
 */
#include "task_testing.h"

struct gatherer {
    loop_future *fs[3];
    size_t n;
    int err;
    uint64_t hop_resumed;
};

static int gather_them(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct gatherer *g = arg;
    g->err = loop_task_gather(g->fs, g->n);
    g->hop_resumed = hops(loop);
    return g->err;
}

struct completer {
    loop_future *a, *b;
    int err_b;
    uint64_t hop;
};

static void complete_both(loop_t *loop, void *arg)
{
    struct completer *c = arg;
    c->hop = hops(loop);
    assert_int_equal(loop_future_set_result(c->a, NULL), 0);
    if (c->err_b)
        assert_int_equal(loop_future_set_error(c->b, c->err_b), 0);
    else
        assert_int_equal(loop_future_set_result(c->b, NULL), 0);
}

static void test_gather_resumes_the_task_two_hops_after_the_last_child_completes(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    struct gatherer g = {.fs = {new_future(l), new_future(l)}, .n = 2};
    struct completer c = {.a = g.fs[0], .b = g.fs[1]};
    loop_task *t = spawn(l, gather_them, &g);
    assert_int_equal(loop_call_later(l, LOOP_MS(3), complete_both, &c, NULL), 0);
    assert_int_equal(run_task(l, t, NULL), 0);
    assert_int_equal(g.err, 0);
    assert_u64_eq(g.hop_resumed, c.hop + 2);
    loop_task_unref(t);
    loop_future_unref(g.fs[0]);
    loop_future_unref(g.fs[1]);
    assert_int_equal(loop_free(l), 0);
}

static void test_gather_of_done_children_still_suspends(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    struct gatherer g = {.fs = {new_future(l)}, .n = 1};
    assert_int_equal(loop_future_set_result(g.fs[0], NULL), 0);
    loop_task *t = spawn(l, gather_them, &g);
    uint64_t start = hops(l);
    assert_int_equal(run_task(l, t, NULL), 0);
    /* Its first step at start+1, the child's callback at +2, the task at +3. */
    assert_u64_eq(g.hop_resumed, start + 3);
    loop_task_unref(t);
    loop_future_unref(g.fs[0]);
    assert_int_equal(loop_free(l), 0);
}

static void test_gather_reports_the_first_error_and_the_others_keep_running(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct gatherer g = {.fs = {new_future(l), new_future(l), new_future(l)}, .n = 3};
    struct completer c = {.a = g.fs[0], .b = g.fs[1], .err_b = -EPIPE};
    loop_task *t = spawn(l, gather_them, &g);
    assert_int_equal(loop_call_later(l, LOOP_MS(3), complete_both, &c, NULL), 0);
    assert_int_equal(run_task(l, t, NULL), -EPIPE);
    assert_int_equal(g.err, -EPIPE);
    assert_false(loop_future_done(g.fs[2])); /* not cancelled */
    loop_task_unref(t);
    for (int i = 0; i < 3; i++)
        loop_future_unref(g.fs[i]);
    assert_int_equal(loop_free(l), 0);
}

static void cancel_cb(loop_t *loop, void *arg)
{
    (void)loop;
    assert_int_equal(loop_task_cancel(arg), 1);
}

static void test_cancelling_a_task_in_gather_cancels_every_child(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct gatherer g = {.fs = {new_future(l), new_future(l)}, .n = 2};
    loop_task *t = spawn(l, gather_them, &g);
    assert_int_equal(loop_call_later(l, LOOP_MS(3), cancel_cb, t, NULL), 0);
    assert_int_equal(run_task(l, t, NULL), -ECANCELED);
    assert_int_equal(loop_future_state(g.fs[0]), LOOP_FUTURE_CANCELLED);
    assert_int_equal(loop_future_state(g.fs[1]), LOOP_FUTURE_CANCELLED);
    loop_task_unref(t);
    loop_future_unref(g.fs[0]);
    loop_future_unref(g.fs[1]);
    assert_int_equal(loop_free(l), 0);
}

/* ---- wait_for ---------------------------------------------------------------- */

struct sleeper {
    uint64_t ns;
    bool refuse;
    int err;
};

static int sleep_task(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    struct sleeper *s = arg;
    s->err = loop_task_sleep(s->ns);
    *result = s;
    return s->refuse ? 0 : s->err;
}

struct waiter {
    struct sleeper inner;
    uint64_t timeout;
    loop_task *inner_task;
    int err;
    void *result;
    uint64_t now;
};

static int wait_for_inner(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct waiter *w = arg;
    w->inner_task = spawn(loop, sleep_task, &w->inner);
    w->err = loop_task_wait_for(loop_task_future(w->inner_task), w->timeout, &w->result);
    w->now = loop_now(loop);
    return w->err;
}

static void test_wait_for_from_a_task_returns_the_inner_outcome_in_time(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct waiter w = {.inner = {.ns = LOOP_SEC(1)}, .timeout = LOOP_SEC(5)};
    loop_task *t = spawn(l, wait_for_inner, &w);
    assert_int_equal(run_task(l, t, NULL), 0);
    assert_ptr_equal(w.result, &w.inner);
    assert_u64_eq(w.now, LOOP_SEC(1));
    loop_task_unref(w.inner_task);
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
}

static void test_wait_for_times_out_with_etimedout_once_the_inner_is_cancelled(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct waiter w = {.inner = {.ns = LOOP_SEC(10)}, .timeout = LOOP_SEC(1)};
    loop_task *t = spawn(l, wait_for_inner, &w);
    assert_int_equal(run_task(l, t, NULL), -ETIMEDOUT);
    assert_int_equal(w.inner.err, -ECANCELED);                     /* the inner was cancelled... */
    assert_true(loop_future_done(loop_task_future(w.inner_task))); /* ...and waited for */
    assert_u64_eq(w.now, LOOP_SEC(1));
    loop_task_unref(w.inner_task);
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
}

static void test_a_cancel_of_a_task_in_wait_for_is_never_swallowed(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    /* The inner refuses the cancel and returns a value. */
    struct waiter w = {.inner = {.ns = LOOP_SEC(10), .refuse = true}, .timeout = LOOP_SEC(5)};
    loop_task *t = spawn(l, wait_for_inner, &w);
    assert_int_equal(loop_call_later(l, LOOP_SEC(1), cancel_cb, t, NULL), 0);
    assert_int_equal(run_task(l, t, NULL), -ECANCELED);
    assert_int_equal(w.err, -ECANCELED);
    assert_int_equal(w.inner.err, -ECANCELED);
    void *r = NULL;
    assert_int_equal(loop_future_result(loop_task_future(w.inner_task), &r), 0); /* refused */
    loop_task_unref(w.inner_task);
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
}

/* bpo-86296: the inner completes, and the waiting task is cancelled before
 * its wake-up has run.  asyncio 3.11 returns the inner's result there and
 * loses the cancel; here the cancel wins. */
struct race {
    loop_future *inner;
    loop_task *task;
    int err;
};

static int wait_for_future(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    struct race *r = arg;
    r->err = loop_task_wait_for(r->inner, LOOP_SEC(5), NULL);
    return 0;
}

static void complete_then_cancel(loop_t *loop, void *arg)
{
    (void)loop;
    struct race *r = arg;
    assert_int_equal(loop_future_set_result(r->inner, r), 0);
    assert_int_equal(loop_task_cancel(r->task), 1);
}

static void test_a_cancel_racing_the_inner_completion_is_not_swallowed(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct race r = {.inner = new_future(l)};
    r.task = spawn(l, wait_for_future, &r);
    assert_int_equal(loop_call_later(l, LOOP_SEC(1), complete_then_cancel, &r, NULL), 0);
    assert_int_equal(run_task(l, r.task, NULL), 0);
    assert_int_equal(r.err, -ECANCELED);
    loop_future_unref(r.inner);
    loop_task_unref(r.task);
    assert_int_equal(loop_free(l), 0);
}

static int combine_outside(void)
{
    return loop_task_gather(NULL, 0) == -EPERM && loop_task_gather(NULL, 1) == -EINVAL;
}

static void test_gather_and_wait_for_check_their_input(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    loop_future *f = new_future(l);
    assert_true(combine_outside());
    assert_int_equal(loop_task_wait_for(f, 1, NULL), -EPERM);
    assert_int_equal(loop_task_wait_for(NULL, 1, NULL), -EINVAL);
    loop_future_unref(f);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gather_resumes_the_task_two_hops_after_the_last_child_completes),
        cmocka_unit_test(test_gather_of_done_children_still_suspends),
        cmocka_unit_test(test_gather_reports_the_first_error_and_the_others_keep_running),
        cmocka_unit_test(test_cancelling_a_task_in_gather_cancels_every_child),
        cmocka_unit_test(test_wait_for_from_a_task_returns_the_inner_outcome_in_time),
        cmocka_unit_test(test_wait_for_times_out_with_etimedout_once_the_inner_is_cancelled),
        cmocka_unit_test(test_a_cancel_of_a_task_in_wait_for_is_never_swallowed),
        cmocka_unit_test(test_a_cancel_racing_the_inner_completion_is_not_swallowed),
        cmocka_unit_test(test_gather_and_wait_for_check_their_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
