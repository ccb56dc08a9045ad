/*
 * libloop tasks: asyncio's Task, in C.  A task is a stackful coroutine
 * (loop_coro.h) driven by a loop, with a future (loop_future.h) for its
 * outcome.
 *
 *     static int fetch(loop_t *loop, void *arg, void **result)
 *     {
 *         int err = loop_task_sleep(LOOP_MS(100));   // await asyncio.sleep(0.1)
 *         if (err)
 *             return err;                            // -ECANCELED: cancelled
 *         *result = arg;
 *         return 0;
 *     }
 *
 *     loop_task *t;
 *     loop_task_spawn(loop, fetch, "x", &t);         // starts at the next iteration
 *     void *r;
 *     loop_run_until_complete(loop, loop_task_future(t), &r);   // 0, r == "x"
 *     loop_task_unref(t);
 *
 * Scheduling follows asyncio 3.11 hop for hop (a hop is one pass through
 * the loop's ready queue); every step of a task is a callback of the
 * ready queue, so tasks and plain callbacks interleave as asyncio's do:
 *
 *  - spawning schedules the first step with loop_call_soon(): the task
 *    does not start inside loop_task_spawn();
 *  - awaiting a pending future suspends the task; the future's done
 *    callback runs the next step directly (one hop from its completion);
 *  - awaiting a future that is done already does not suspend (no hop) and
 *    does not deliver a pending cancel;
 *  - loop_task_sleep(0) is one loop_call_soon() hop, no timer;
 *    loop_task_sleep(d > 0) awaits a future that a loop_call_later(d)
 *    timer completes, so the task runs one hop after its timer fires.
 *
 * Cancellation (loop_task_cancel()) arrives as -ECANCELED, returned by the
 * await in progress, or by the next await that suspends if the task is
 * not suspended (see loop_task_cancel() for the whole rule).  A task may
 * ignore it and go on.  Its function's return value decides its outcome.
 *
 * A task that finishes releases its coroutine stack at once; its future
 * lives on while referenced.  Freeing the loop cancels and unwinds every
 * live task (see loop_task_spawn()).
 *
 * Link with libloop_task (pkg-config libloop-task; CMake libloop::task),
 * which needs libloop_future and libloop_coro.  Everything here is for the
 * loop's thread only.  The task running on a thread is known to that
 * thread alone (the one piece of per-thread state, as loop_coro_current()
 * has), which is how loop_task_sleep() and loop_task_await() find it.
 *
 * Errors: every call returns 0 (or a documented count) or a negative
 * errno: -EINVAL for NULL arguments, -EPERM for the calls below made
 * outside a task, -ENOMEM (then nothing changed), and the ones named below.
 * Completing a future can fail only when the loop's ready queue cannot
 * grow; a task's future, and a sleep's, are then completed again from the
 * queue (if even that cannot be queued, that future stays pending).
 */
#ifndef LOOP_TASK_H
#define LOOP_TASK_H

#include "loop.h"
#include "loop_future.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loop_task loop_task;

/*
 * A task's function, run on the task's own stack.  It returns 0 with its
 * result in *result (NULL unless it sets it), which completes the task's
 * future with that result; or a negative errno, which fails the future
 * with it, except -ECANCELED, which leaves the future cancelled.  A
 * positive return counts as 0.
 */
typedef int loop_task_fn(loop_t *loop, void *arg, void **result);

/* ---- Lifetime -------------------------------------------------------- */

/*
 * Create a task that will run fn(loop, arg, &result), and schedule its
 * first step with loop_call_soon(): it starts at the next iteration, after
 * whatever the caller is running.  If out is not NULL, *out receives a
 * reference to the task, which the caller releases with loop_task_unref();
 * the task holds one of its own until it finishes, so a task nobody
 * references still runs to its end.  The task's stack is
 * LOOP_CORO_STACK_DEFAULT bytes (virtual: only the pages touched cost).
 * Its name is "Task-N", N counting the tasks spawned on the loop from 1.
 *
 * Returns 0; -EINVAL if loop or fn is NULL; -ENOMEM (memory from the
 * loop's allocator, or a stack) with nothing scheduled and *out set to
 * NULL; or -ECANCELED while the loop is being freed.
 *
 * loop_free() cancels and unwinds every task not yet finished, in the
 * order they were spawned: a task that never ran is finished without
 * running its body; a suspended one returns -ECANCELED from its await,
 * and from every await or sleep after it without suspending, until its
 * function returns.  Then every task is released: a task (or its future)
 * the program still references must be used for nothing after
 * loop_free() but loop_task_unref() (which frees it).
 */
LOOP_API int loop_task_spawn(loop_t *loop, loop_task_fn *fn, void *arg, loop_task **out);

/* Take and drop a reference; the last unref frees the task (its future
 * lives on while referenced).  NULL is ignored. */
LOOP_API void loop_task_ref(loop_task *t);
LOOP_API void loop_task_unref(loop_task *t);

/*
 * The task's future: pending until the task finishes, then done with its
 * result, failed with its error, or cancelled.  The pointer is borrowed:
 * it stays valid while the task does; take a reference (loop_future_ref())
 * to keep it longer.  Cancelling it (loop_future_cancel()) cancels the
 * task, as loop_task_cancel() does, and returns what that returns.  NULL
 * for NULL.  A task that failed and whose error nobody read (by awaiting
 * it, gathering it, or loop_future_result()) is reported when its future
 * is freed, to the handler set with loop_future_on_unretrieved(): asyncio's
 * "Task exception was never retrieved".
 */
LOOP_API loop_future *loop_task_future(const loop_task *t);

/*
 * The task that is running on the calling thread if it belongs to loop
 * (it is the caller, or called it), else NULL.  Borrowed: no reference
 * is taken.
 */
LOOP_API loop_task *loop_task_current(const loop_t *loop);

/*
 * Name the task (copied; NULL gives back its default "Task-N"), for
 * debugging.  Returns 0, -EINVAL for a NULL task, or -ENOMEM (the name
 * is unchanged).  loop_task_name() returns the name (valid until the next
 * loop_task_set_name() or the task's end), or NULL for NULL.
 */
LOOP_API int loop_task_set_name(loop_task *t, const char *name);
LOOP_API const char *loop_task_name(const loop_task *t);

/* ---- From inside a task ---------------------------------------------- */

/*
 * Wait for f to be done, and return its outcome as loop_future_result()
 * does: 0 with *result set (result may be NULL), its error, or -ECANCELED
 * if it was cancelled.  A future that is done already is read at once: the
 * task does not suspend, and a cancel requested meanwhile stays pending.
 * Otherwise the task suspends; f's done callback runs its next step.  To
 * await another task, await loop_task_future(other).
 *
 * If the task is cancelled while it waits, f is cancelled (so every other
 * awaiter of f sees it cancelled) and this returns -ECANCELED, or, if f
 * refused the cancel (a task that went on), f's outcome.  If the task was
 * cancelled before this call (by itself, or while it was not suspended),
 * f is cancelled on the spot as the task suspends.
 *
 * Returns -EINVAL if f is NULL or of another loop, -EPERM outside a task,
 * -EDEADLK if f is the calling task's own future, -ENOMEM if the task
 * could not wait (nothing changed), -ECANCELED without waiting while the
 * loop is being freed.
 */
LOOP_API int loop_task_await(loop_future *f, void **result);

/*
 * Suspend the calling task for ns nanoseconds of the loop's clock.  0 lets
 * every callback already ready run first (one loop_call_soon() hop, no
 * timer: asyncio's sleep(0)).  Returns 0 once the time has passed,
 * -ECANCELED if the task was cancelled (the timer is then cancelled too),
 * -EPERM outside a task, or -ENOMEM (nothing changed).
 */
LOOP_API int loop_task_sleep(uint64_t ns);

/*
 * Await loop_gather(fs, n) (hop rule 7): returns 0 once every future in fs
 * is done (read each for its outcome), or the first error, -ECANCELED for
 * a child that was cancelled; the others keep running.  It suspends even
 * when the children are done already (n > 0): the gather completes from
 * their done callbacks, and the task runs one hop after that.  Cancelling
 * the task cancels every child, in order.  Returns -EINVAL if fs is NULL
 * (with n > 0) or holds a NULL or a future of another loop, -EPERM outside
 * a task, -ENOMEM.
 */
LOOP_API int loop_task_gather(loop_future *const *fs, size_t n);

/*
 * Wait for f at most timeout_ns (hop rule 8): f's outcome if it is done
 * within timeout_ns; if not, f is cancelled and waited for, and the call
 * returns -ETIMEDOUT if it ended cancelled, or its outcome if it refused.
 * If the task is cancelled meanwhile, f is cancelled (unless done) and
 * waited for, and the call returns -ECANCELED whatever f did: a cancel is
 * never swallowed, even when f completed just before it (asyncio 3.11
 * loses it there, bpo-86296).  The hops are asyncio 3.11's: the task waits
 * on an internal future that f's done callback or a timer releases, so it
 * suspends even if f is done (unless timeout_ns is 0, which reads a done f
 * at once and otherwise cancels it and waits), and on a timeout the task
 * itself cancels f, one hop after the timer.  loop_wait_for() in
 * loop_future.h gives the same outcomes to plain callbacks.  Returns
 * -EINVAL, -EPERM and -ENOMEM as loop_task_await(); on -ENOMEM while
 * timing out, f has been cancelled but may still be finishing.
 */
LOOP_API int loop_task_wait_for(loop_future *f, uint64_t timeout_ns, void **result);

/*
 * Wait until fd is ready for `events` (LOOP_READABLE and/or LOOP_WRITABLE),
 * or timeout_ns has passed (negative: no timeout).  Returns the bits the
 * loop reported (> 0: the asked-for ones, LOOP_HUP, LOOP_ERROR), or
 * -ETIMEDOUT, or -ECANCELED if the task was cancelled.  The task runs one
 * hop after the fd handler (or the timer) fired, as for any future.  While
 * it waits, the task owns fd's handlers in this loop (loop_watch_fd()):
 * whatever handlers fd had are replaced, and none are left afterwards.
 * Returns -EINVAL for no events or other bits, -EPERM outside a task, the
 * errors of loop_watch_fd() (-EBADF, -EPERM for a regular file), -ENOMEM.
 */
LOOP_API int loop_task_wait_fd(int fd, unsigned events, int64_t timeout_ns);

/* ---- Cancelling -------------------------------------------------------- */

/*
 * Ask the task to stop, as asyncio's Task.cancel() does.  Returns 0 if it
 * has finished (nothing changes), 1 otherwise, -EINVAL for NULL.
 *
 * If the task is suspended on a future W and cancelling W succeeds
 * (loop_future_cancel() returns 1; for a task's future that is the other
 * task's cancel, so cancels propagate down a chain of awaits), W's done
 * callback resumes the task one hop later, and its await returns
 * -ECANCELED (or W's outcome, if W refused).  Otherwise the cancel is
 * remembered, and the task's next step gets -ECANCELED where it resumes:
 * from a sleep, from an await whose future completed but whose wake-up has
 * not run yet (that outcome is then lost), or, for a task that has not
 * started, by never running its body.  A task cancelled while it runs
 * cancels the next pending future it awaits on the spot.  A task that
 * returns 0 with a cancel still remembered ends cancelled.
 */
LOOP_API int loop_task_cancel(loop_task *t);

/* ---- Task groups ------------------------------------------------------ */

/*
 * A task group is asyncio 3.11's TaskGroup (hop rule 9): a task opens
 * one, spawns children into it, and ends it, which waits for them all:
 *
 *     loop_task_group *g;                           // async with TaskGroup() as g:
 *     loop_task_group_new(&g);
 *     loop_task_group_spawn(g, fetch, a, NULL);     //     g.create_task(fetch(a))
 *     loop_task_group_spawn(g, fetch, b, NULL);
 *     int err = loop_task_sleep(LOOP_SEC(1));       //     await ...
 *     err = loop_task_group_end(g, err);            // the end of the block
 *
 * The first child that fails (a cancelled child is not a failure) cancels
 * the children not yet done, in the order they were spawned, and the
 * task that opened the group, so that its await in progress returns
 * -ECANCELED; loop_task_group_end() then does not report that cancel.
 */
typedef struct loop_task_group loop_task_group;

/* Open a group in the calling task.  Returns 0, -EINVAL for NULL, -EPERM
 * outside a task, or -ENOMEM. */
LOOP_API int loop_task_group_new(loop_task_group **out);

/*
 * Spawn a child into g, as loop_task_spawn() does (its first step is a
 * call_soon).  Returns 0; -EINVAL for NULL arguments; -EBUSY once a child
 * has failed (the group is shutting down) or the group is ending;
 * -ENOMEM (no child was started).
 */
LOOP_API int loop_task_group_spawn(loop_task_group *g, loop_task_fn *fn, void *arg,
                                   loop_task **out);

/*
 * End the block, from the task that opened g: body_err is what the block
 * ended with (0, or the error it ends with: -ECANCELED for a cancel).  A
 * nonzero body_err cancels the children not yet done.  Waits until every
 * child is done (without suspending if all are), then frees g and
 * returns the first error: the first failed child's, else body_err's.
 * A cancel of the calling task is passed on (-ECANCELED) if no child
 * failed, except the one the group itself made.  -EINVAL for NULL,
 * -EPERM if not called from the task that opened g (nothing is freed).
 */
LOOP_API int loop_task_group_end(loop_task_group *g, int body_err);

/* ---- Debugging -------------------------------------------------------- */

/*
 * A dump of the loop's unfinished tasks, for finding what hangs: one line
 * per task, in spawn order, as
 *
 *     Task-1 suspended: sleeping
 *     fetcher suspended: awaiting Task-1
 *     Task-3 suspended: awaiting a future, cancel pending
 *     Task-4 not started
 *
 * (the state is "not started", "running", or "suspended" with what it
 * waits for: "sleeping", "awaiting <task>", "awaiting a future", or
 * "ready" for a sleep(0) or a wake-up already queued).  Written into buf
 * as snprintf() writes (always terminated if size > 0; buf may be NULL if
 * size is 0).  Returns the length of the whole dump, which may be more
 * than fit, or -EINVAL for a NULL loop.
 */
LOOP_API int loop_task_dump(const loop_t *loop, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* LOOP_TASK_H */
