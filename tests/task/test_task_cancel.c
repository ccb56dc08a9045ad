/*
 * Cancelling a task (hop rule 6): -ECANCELED from the await in progress,
 * or at the next step; the awaited future is cancelled for every awaiter;
 * cancels go down a chain of awaits; a task may refuse; a task cancelled
 * before it starts never runs its body; a task that returns with a
 * remembered cancel ends cancelled; a finished task is not cancelled.
 */
#include "task_testing.h"

struct waiter {
    loop_future *f;
    int err, err2;
    void *result;
    bool refuse; /* catch the cancel and return 0 */
    int body_runs;
};

static int wait_on(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    struct waiter *w = arg;
    w->body_runs++;
    w->err = loop_task_await(w->f, &w->result);
    if (w->refuse && w->err == -ECANCELED) {
        *result = w;
        return 0;
    }
    return w->err;
}

static void cancel_cb(loop_t *loop, void *arg)
{
    (void)loop;
    assert_int_equal(loop_task_cancel(arg), 1);
}

static void test_cancel_arrives_as_ecanceled_from_the_await_in_progress(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct waiter w = {.f = new_future(l)};
    loop_task *t = spawn(l, wait_on, &w);
    assert_int_equal(loop_call_later(l, LOOP_MS(1), cancel_cb, t, NULL), 0);
    assert_int_equal(run_task(l, t, NULL), -ECANCELED);
    assert_int_equal(w.err, -ECANCELED);
    assert_int_equal(loop_future_state(loop_task_future(t)), LOOP_FUTURE_CANCELLED);
    /* The future it awaited was cancelled, for every awaiter. */
    assert_int_equal(loop_future_state(w.f), LOOP_FUTURE_CANCELLED);
    loop_task_unref(t);
    loop_future_unref(w.f);
    assert_int_equal(loop_free(l), 0);
}

static void test_a_task_may_catch_the_cancel_and_return_a_value(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct waiter w = {.f = new_future(l), .refuse = true};
    loop_task *t = spawn(l, wait_on, &w);
    assert_int_equal(loop_call_later(l, LOOP_MS(1), cancel_cb, t, NULL), 0);
    void *r = NULL;
    assert_int_equal(run_task(l, t, &r), 0);
    assert_ptr_equal(r, &w);
    loop_task_unref(t);
    loop_future_unref(w.f);
    assert_int_equal(loop_free(l), 0);
}

static void test_a_task_cancelled_before_its_first_step_never_runs_its_body(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct waiter w = {.f = new_future(l)};
    loop_task *t = spawn(l, wait_on, &w);
    assert_int_equal(loop_task_cancel(t), 1);
    assert_int_equal(run_task(l, t, NULL), -ECANCELED);
    assert_int_equal(w.body_runs, 0);
    loop_task_unref(t);
    loop_future_unref(w.f);
    assert_int_equal(loop_free(l), 0);
}

static void test_cancelling_a_finished_task_returns_0_and_changes_nothing(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct waiter w = {.f = new_future(l)};
    int x;
    assert_int_equal(loop_future_set_result(w.f, &x), 0);
    loop_task *t = spawn(l, wait_on, &w);
    assert_int_equal(run_task(l, t, NULL), 0);
    assert_int_equal(loop_task_cancel(t), 0);
    assert_int_equal(loop_future_cancel(loop_task_future(t)), 0);
    assert_int_equal(loop_future_state(loop_task_future(t)), LOOP_FUTURE_DONE);
    loop_task_unref(t);
    loop_future_unref(w.f);
    assert_int_equal(loop_free(l), 0);
}

static void test_cancelling_the_tasks_future_cancels_the_task(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct waiter w = {.f = new_future(l)};
    loop_task *t = spawn(l, wait_on, &w);
    assert_int_equal(loop_run_once(l, 0), 0); /* suspended on w.f */
    assert_int_equal(loop_future_cancel(loop_task_future(t)), 1);
    assert_false(loop_future_done(loop_task_future(t))); /* it ends as the task decides */
    assert_int_equal(run_task(l, t, NULL), -ECANCELED);
    assert_int_equal(w.err, -ECANCELED);
    loop_task_unref(t);
    loop_future_unref(w.f);
    assert_int_equal(loop_free(l), 0);
}

/* Cancelling the outer task of a chain cancels the inner one, which
 * cancels what it awaits: both see -ECANCELED. */
struct chain_link {
    struct waiter *inner;
    loop_task *inner_task;
    int err;
};

static int await_inner(loop_t *loop, void *arg, void **result)
{
    struct chain_link *c = arg;
    c->inner_task = spawn(loop, wait_on, c->inner);
    c->err = loop_task_await(loop_task_future(c->inner_task), result);
    return c->err;
}

static void test_a_cancel_goes_down_a_chain_of_awaits(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct waiter w = {.f = new_future(l)};
    struct chain_link c = {.inner = &w};
    loop_task *t = spawn(l, await_inner, &c);
    assert_int_equal(loop_call_later(l, LOOP_MS(1), cancel_cb, t, NULL), 0);
    assert_int_equal(run_task(l, t, NULL), -ECANCELED);
    assert_int_equal(c.err, -ECANCELED);
    assert_int_equal(w.err, -ECANCELED);
    assert_int_equal(loop_future_state(w.f), LOOP_FUTURE_CANCELLED);
    assert_int_equal(loop_future_state(loop_task_future(c.inner_task)), LOOP_FUTURE_CANCELLED);
    loop_task_unref(c.inner_task);
    loop_task_unref(t);
    loop_future_unref(w.f);
    assert_int_equal(loop_free(l), 0);
}

static void test_an_awaiter_of_a_task_that_refuses_gets_its_value(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct waiter w = {.f = new_future(l), .refuse = true};
    struct chain_link c = {.inner = &w};
    loop_task *t = spawn(l, await_inner, &c);
    assert_int_equal(loop_call_later(l, LOOP_MS(1), cancel_cb, t, NULL), 0);
    void *r = NULL;
    assert_int_equal(run_task(l, t, &r), 0);
    assert_int_equal(c.err, 0);
    assert_ptr_equal(r, &w);
    loop_task_unref(c.inner_task);
    loop_task_unref(t);
    loop_future_unref(w.f);
    assert_int_equal(loop_free(l), 0);
}

/* The future completes and the task is cancelled in the same callback:
 * the wake-up has not run, so the cancel wins and the value is lost. */
struct race {
    struct waiter w;
    loop_task *t;
};

static void complete_then_cancel(loop_t *loop, void *arg)
{
    (void)loop;
    struct race *r = arg;
    assert_int_equal(loop_future_set_result(r->w.f, r), 0);
    assert_int_equal(loop_task_cancel(r->t), 1);
}

static void test_a_cancel_after_the_future_completed_but_before_the_wakeup_wins(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct race r = {.w = {.f = new_future(l)}};
    r.t = spawn(l, wait_on, &r.w);
    assert_int_equal(loop_call_later(l, LOOP_MS(1), complete_then_cancel, &r, NULL), 0);
    assert_int_equal(run_task(l, r.t, NULL), -ECANCELED);
    assert_int_equal(r.w.err, -ECANCELED);
    assert_null(r.w.result);
    assert_int_equal(loop_future_state(r.w.f), LOOP_FUTURE_DONE); /* not cancelled */
    loop_task_unref(r.t);
    loop_future_unref(r.w.f);
    assert_int_equal(loop_free(l), 0);
}

/* Cancelled while it runs: a done future still reads at once (the cancel
 * is not delivered there), and the next pending future it awaits is
 * cancelled on the spot. */
struct self_cancel {
    loop_future *done, *pending;
    int err_done, err_pending;
    void *read;
};

static int cancel_self_then_await(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct self_cancel *s = arg;
    assert_int_equal(loop_task_cancel(loop_task_current(loop)), 1);
    s->err_done = loop_task_await(s->done, &s->read);
    s->err_pending = loop_task_await(s->pending, NULL);
    return s->err_pending;
}

static void test_a_task_cancelled_while_running_cancels_the_next_future_it_awaits(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct self_cancel s = {.done = new_future(l), .pending = new_future(l)};
    assert_int_equal(loop_future_set_result(s.done, &s), 0);
    loop_task *t = spawn(l, cancel_self_then_await, &s);
    assert_int_equal(run_task(l, t, NULL), -ECANCELED);
    assert_int_equal(s.err_done, 0);
    assert_ptr_equal(s.read, &s);
    assert_int_equal(s.err_pending, -ECANCELED);
    assert_int_equal(loop_future_state(s.pending), LOOP_FUTURE_CANCELLED);
    loop_task_unref(t);
    loop_future_unref(s.done);
    loop_future_unref(s.pending);
    assert_int_equal(loop_free(l), 0);
}

static int cancel_self_then_sleep0(loop_t *loop, void *arg, void **result)
{
    (void)result;
    assert_int_equal(loop_task_cancel(loop_task_current(loop)), 1);
    *(int *)arg = loop_task_sleep(0);
    return 0; /* caught: but see the next test */
}

static void test_a_remembered_cancel_arrives_at_the_next_step(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int err = 0;
    loop_task *t = spawn(l, cancel_self_then_sleep0, &err);
    assert_int_equal(run_task(l, t, NULL), 0);
    assert_int_equal(err, -ECANCELED);
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
}

static int cancel_self_and_return(loop_t *loop, void *arg, void **result)
{
    assert_int_equal(loop_task_cancel(loop_task_current(loop)), 1);
    *result = arg;
    return 0;
}

static void test_a_task_returning_with_a_remembered_cancel_ends_cancelled(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    loop_task *t = spawn(l, cancel_self_and_return, l);
    assert_int_equal(run_task(l, t, NULL), -ECANCELED);
    assert_int_equal(loop_future_state(loop_task_future(t)), LOOP_FUTURE_CANCELLED);
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
}

/* Two tasks awaiting each other: a cancel must not chase the cycle forever. */
struct pair {
    loop_task *other;
    int err;
};

static int await_other(loop_t *loop, void *arg, void **result)
{
    struct pair *p = arg;
    assert_int_equal(loop_task_sleep(0), 0); /* let both be spawned */
    (void)loop;
    p->err = loop_task_await(loop_task_future(p->other), result);
    return p->err;
}

static void test_cancelling_a_cycle_of_awaits_ends(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct pair a = {0}, b = {0};
    loop_task *ta = spawn(l, await_other, &a), *tb = spawn(l, await_other, &b);
    a.other = tb;
    b.other = ta;
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(loop_run_once(l, 0), 0); /* both suspended on each other */
    assert_int_equal(loop_task_cancel(ta), 1);
    assert_int_equal(loop_run(l), 0);
    assert_true(loop_future_done(loop_task_future(ta)));
    assert_true(loop_future_done(loop_task_future(tb)));
    assert_int_equal(a.err, -ECANCELED);
    loop_task_unref(ta);
    loop_task_unref(tb);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_arrives_as_ecanceled_from_the_await_in_progress),
        cmocka_unit_test(test_a_task_may_catch_the_cancel_and_return_a_value),
        cmocka_unit_test(test_a_task_cancelled_before_its_first_step_never_runs_its_body),
        cmocka_unit_test(test_cancelling_a_finished_task_returns_0_and_changes_nothing),
        cmocka_unit_test(test_cancelling_the_tasks_future_cancels_the_task),
        cmocka_unit_test(test_a_cancel_goes_down_a_chain_of_awaits),
        cmocka_unit_test(test_an_awaiter_of_a_task_that_refuses_gets_its_value),
        cmocka_unit_test(test_a_cancel_after_the_future_completed_but_before_the_wakeup_wins),
        cmocka_unit_test(test_a_task_cancelled_while_running_cancels_the_next_future_it_awaits),
        cmocka_unit_test(test_a_remembered_cancel_arrives_at_the_next_step),
        cmocka_unit_test(test_a_task_returning_with_a_remembered_cancel_ends_cancelled),
        cmocka_unit_test(test_cancelling_a_cycle_of_awaits_ends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
