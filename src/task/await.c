/*
 * From inside a task: await a future, sleep, gather, wait_for.  All
 * suspend through loop__task_suspend(); what wakes the task is the awaited
 * future's done callback (loop__task_wake) or, for sleep(0), a call_soon
 * step.  gather is the future layer's, awaited; wait_for is asyncio
 * 3.11's, run inside the task (hop rule 8), so its hops are asyncio's:
 * the inner future is cancelled one hop after the timeout, by the task.
 */
#include "task_internal.h"

#include <errno.h>

/* Can the running task wait for f?  0 and *out, or the error to return. */
static int awaitable(loop_future *f, loop_task **out)
{
    if (!f)
        return -EINVAL;
    loop_task *t = loop__task_running();
    if (!t)
        return -EPERM;
    if (loop_future_loop(f) != t->loop)
        return -EINVAL;
    if (f == t->future)
        return -EDEADLK;
    *out = t;
    return 0;
}

int loop_task_await(loop_future *f, void **result)
{
    loop_task *t;
    int aerr = awaitable(f, &t);
    if (aerr)
        return aerr;
    if (loop_future_done(f)) /* no hop, and a pending cancel stays pending */
        return loop_future_result(f, result);
    if (t->reg->closing)
        return -ECANCELED;
    int err = loop_future_add_done(f, loop__task_wake, t);
    if (err)
        return err;
    loop_future_ref(f);
    t->waiting = f;
    /* Cancelled while running: the future it now waits for takes the cancel. */
    if (t->must_cancel && loop_future_cancel(f) == 1)
        t->must_cancel = false;
    return loop__task_suspend(t, result);
}

/* asyncio's futures._set_result_unless_cancelled, holding a reference. */
static void sleep_timer(loop_t *loop, void *arg)
{
    loop_future *f = arg;
    if (!loop_future_done(f) && loop_future_set_result(f, NULL) < 0 &&
        loop_call_soon(loop, sleep_timer, f, NULL) == 0)
        return; /* the queue could not grow: try again from it */
    loop_future_unref(f);
}

static int sleep_on_timer(loop_task *t, uint64_t ns)
{
    loop_future *f;
    int err = loop_future_new(t->loop, &f);
    if (err)
        return err;
    loop_handle timer;
    err = loop_call_later(t->loop, ns, sleep_timer, f, &timer);
    if (err) {
        loop_future_unref(f);
        return err;
    }
    loop_future_ref(f); /* the timer's */
    t->sleeping = true;
    err = loop_task_await(f, NULL);
    t->sleeping = false;
    if (loop_cancel(t->loop, timer) == 0) /* a cancelled sleep cancels its timer */
        loop_future_unref(f);
    loop_future_unref(f);
    return err;
}

int loop_task_sleep(uint64_t ns)
{
    loop_task *t = loop__task_running();
    if (!t)
        return -EPERM;
    if (t->reg->closing)
        return -ECANCELED;
    if (ns > 0)
        return sleep_on_timer(t, ns);
    int err = loop_call_soon(t->loop, loop__task_soon_step, t, NULL);
    if (err)
        return err;
    return loop__task_suspend(t, NULL);
}

int loop_task_gather(loop_future *const *fs, size_t n)
{
    if (!fs && n)
        return -EINVAL;
    loop_task *t = loop__task_running();
    if (!t)
        return -EPERM;
    loop_future *g;
    int err = loop_gather(t->loop, fs, n, &g);
    if (err)
        return err;
    err = loop_task_await(g, NULL);
    loop_future_unref(g);
    return err;
}

/* ---- wait_for, in asyncio 3.11's shape ------------------------------------ */

/* asyncio's _release_waiter, as f's done callback and as a timer; each
 * holds a reference to the waiter. */
static void release_waiter(loop_future *f, void *arg)
{
    (void)f;
    loop_future *waiter = arg;
    if (!loop_future_done(waiter))
        loop_future_set_result(waiter, NULL); /* nothing to queue: no -ENOMEM */
    loop_future_unref(waiter);
}

static void release_waiter_timer(loop_t *loop, void *arg)
{
    (void)loop;
    release_waiter(NULL, arg);
}

/* A waiter that f's completion releases; NULL on -ENOMEM. */
static loop_future *waiter_for(loop_t *loop, loop_future *f)
{
    loop_future *waiter;
    if (loop_future_new(loop, &waiter))
        return NULL;
    if (loop_future_add_done(f, release_waiter, waiter)) {
        loop_future_unref(waiter);
        return NULL;
    }
    loop_future_ref(waiter); /* the callback's */
    return waiter;
}

/* Take back f's callback for waiter, if it has not been queued. */
static void unhook(loop_future *f, loop_future *waiter)
{
    if (loop_future_remove_done(f, release_waiter, waiter) > 0)
        loop_future_unref(waiter);
}

/* asyncio's _cancel_and_wait: cancel f and wait until it is done, through a
 * waiter of its own, so that this wait can itself be cancelled. */
static int cancel_and_wait(loop_task *t, loop_future *f)
{
    loop_future *waiter = waiter_for(t->loop, f);
    loop_future_cancel(f);
    if (!waiter)
        return -ENOMEM; /* f is cancelled, but may not be done */
    int err = loop_task_await(waiter, NULL);
    unhook(f, waiter);
    loop_future_unref(waiter);
    return err;
}

/* The outcome of a wait_for that timed out once f is done. */
static int timed_out(loop_future *f, void **result)
{
    if (loop_future_state(f) == LOOP_FUTURE_CANCELLED)
        return -ETIMEDOUT;
    return loop_future_result(f, result);
}

int loop_task_wait_for(loop_future *f, uint64_t timeout_ns, void **result)
{
    loop_task *t;
    int err = awaitable(f, &t);
    if (err)
        return err;
    if (timeout_ns == 0) {
        if (loop_future_done(f))
            return loop_future_result(f, result);
        err = cancel_and_wait(t, f);
        return err ? err : timed_out(f, result);
    }
    loop_future *waiter = waiter_for(t->loop, f);
    if (!waiter)
        return -ENOMEM;
    loop_handle timer;
    err = loop_call_later(t->loop, timeout_ns, release_waiter_timer, waiter, &timer);
    if (err) {
        unhook(f, waiter);
        loop_future_unref(waiter);
        return err;
    }
    loop_future_ref(waiter); /* the timer's */
    err = loop_task_await(waiter, NULL);
    if (err == -ECANCELED) { /* this task was cancelled: never swallowed */
        if (!loop_future_done(f)) {
            unhook(f, waiter);
            cancel_and_wait(t, f);
        }
    } else if (!err && loop_future_done(f)) {
        err = loop_future_result(f, result);
    } else if (!err) { /* timed out */
        unhook(f, waiter);
        err = cancel_and_wait(t, f);
        if (!err)
            err = timed_out(f, result);
    } else {
        unhook(f, waiter); /* -ENOMEM: nothing waited */
    }
    if (loop_cancel(t->loop, timer) == 0)
        loop_future_unref(waiter);
    loop_future_unref(waiter);
    return err;
}
