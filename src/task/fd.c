/*
 * Waiting for fd readiness from a task: a future that the fd's handler
 * (or a timeout timer) completes, awaited.  The handler completes the
 * future and removes itself, so a level-triggered fd does not call it
 * again before the task has run.
 */
#include "task_internal.h"

#include <errno.h>

static void on_ready(loop_t *loop, int fd, unsigned events, void *arg)
{
    loop_future *f = arg;
    if (loop_future_set_result(f, (void *)(uintptr_t)events) == 0)
        loop_watch_fd(loop, fd, 0, NULL, NULL);
}

static void on_timeout(loop_t *loop, void *arg)
{
    (void)loop;
    loop_future *f = arg;
    if (!loop_future_done(f))
        loop_future_set_error(f, -ETIMEDOUT);
    loop_future_unref(f);
}

int loop_task_wait_fd(int fd, unsigned events, int64_t timeout_ns)
{
    if (!events || (events & ~(LOOP_READABLE | LOOP_WRITABLE)))
        return -EINVAL;
    loop_task *t = loop__task_running();
    if (!t)
        return -EPERM;
    loop_future *f;
    int err = loop_future_new(t->loop, &f);
    if (err)
        return err;
    loop_handle timer = {0};
    if (timeout_ns >= 0) {
        err = loop_call_later(t->loop, (uint64_t)timeout_ns, on_timeout, f, &timer);
        if (!err)
            loop_future_ref(f); /* the timer's */
    }
    if (!err)
        err = loop_watch_fd(t->loop, fd, events, on_ready, f);
    void *ready = NULL;
    if (!err) {
        err = loop_task_await(f, &ready);
        loop_watch_fd(t->loop, fd, 0, NULL, NULL); /* after a timeout or a cancel */
    }
    if (timer.id && loop_cancel(t->loop, timer) == 0)
        loop_future_unref(f);
    loop_future_unref(f);
    return err ? err : (int)(uintptr_t)ready;
}
