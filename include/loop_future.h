/*
 * libloop futures: asyncio's Future, in C, on the core's public API.
 *
 * A future is pending, then exactly one of: done with a result (a void *),
 * failed with an error (a negative errno), or cancelled.  It belongs to one
 * loop, and is reference-counted: its creator holds one reference, and
 * producers and consumers that keep it take their own.
 *
 * Done callbacks run on the loop, never inside the call that completes the
 * future: completing it schedules them with loop_call_soon(), in the order
 * they were added, and a callback added to a future that is already done is
 * scheduled at once.  (They are scheduled as one ready-queue entry, which
 * runs them in that order; nothing can run between them that could not run
 * between separate entries queued at the same moment.)
 *
 * Link with libloop_future (pkg-config libloop-future; CMake
 * libloop::future).  Everything here is for the loop's thread only.
 *
 * Errors: every call returns 0 (or a documented count) or a negative errno:
 * -EINVAL for NULL arguments and completing a done future, -ENOMEM (then
 * nothing changed), and the ones named below.
 */
#ifndef LOOP_FUTURE_H
#define LOOP_FUTURE_H

#include "loop.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loop_future loop_future;

/* A done callback: the future (alive for the call) and the argument given. */
typedef void loop_future_fn(loop_future *f, void *arg);

enum loop_future_state {
    LOOP_FUTURE_PENDING = 0,
    LOOP_FUTURE_DONE = 1,      /* with a result */
    LOOP_FUTURE_FAILED = 2,    /* with an error */
    LOOP_FUTURE_CANCELLED = 3, /* loop_future_cancel() */
};

/* ---- Lifetime ---------------------------------------------------------- */

/*
 * A new pending future of loop, with one reference, stored in *out.
 * Memory comes from the loop's allocator (loop_realloc).  Returns 0,
 * -EINVAL, or -ENOMEM.
 */
LOOP_API int loop_future_new(loop_t *loop, loop_future **out);

/* Take and drop a reference.  The last unref frees the future; scheduled
 * done callbacks hold a reference of their own until they have run.
 * Futures do not outlive their loop: loop_free() frees every future of the
 * loop, referenced or not (its queued callbacks never run), so a pointer to
 * one must not be used after it, not even to unref.  (A task's future is
 * the task layer's: see loop_task.h.)  NULL is ignored. */
LOOP_API void loop_future_ref(loop_future *f);
LOOP_API void loop_future_unref(loop_future *f);

/* The loop the future belongs to (NULL for NULL). */
LOOP_API loop_t *loop_future_loop(const loop_future *f);

/* ---- Completing -------------------------------------------------------- */

/*
 * Complete a pending future with a result, or with an error err < 0 (any
 * negative errno, -ECANCELED included: that is a failure which reads as a
 * cancellation, not a cancel).  Returns 0; -EINVAL if f is NULL, already
 * done (asyncio's InvalidStateError: nothing changes), or err >= 0; or
 * -ENOMEM if its done callbacks could not be scheduled (then f is still
 * pending: the call may be made again).
 */
LOOP_API int loop_future_set_result(loop_future *f, void *result);
LOOP_API int loop_future_set_error(loop_future *f, int err);

/*
 * Cancel: returns 1 if f was pending and is now cancelled (or, for a
 * future with a canceller, the cancel was passed on: see below), 0 if f
 * was done already (nothing changes), -EINVAL for NULL, or -ENOMEM as
 * above.
 */
LOOP_API int loop_future_cancel(loop_future *f);

/*
 * For those who build on futures (gather, wait_for, tasks): make
 * loop_future_cancel(f) call cancel(f, arg) while f is pending, instead of
 * cancelling f; it returns what loop_future_cancel() returns, and f ends
 * as its maker decides (usually cancelled, once what it waits for has
 * been).  loop_future_cancel_now() cancels f itself, canceller or not.
 * NULL removes the canceller.  Returns 0 or -EINVAL.
 */
typedef int loop_future_cancel_fn(loop_future *f, void *arg);
LOOP_API int loop_future_set_canceller(loop_future *f, loop_future_cancel_fn *cancel, void *arg);
LOOP_API int loop_future_cancel_now(loop_future *f);

/* ---- Reading ----------------------------------------------------------- */

/* The state (LOOP_FUTURE_PENDING for NULL), and whether it is not pending. */
LOOP_API enum loop_future_state loop_future_state(const loop_future *f);
LOOP_API bool loop_future_done(const loop_future *f);

/*
 * The outcome: 0 with *result set (result may be NULL) if done; the error
 * if failed; -ECANCELED if cancelled; -EAGAIN if still pending (asyncio's
 * InvalidStateError); -EINVAL for a NULL f.  Reading a failed future marks
 * its error as retrieved (see loop_future_on_unretrieved()).
 */
LOOP_API int loop_future_result(const loop_future *f, void **result);

/*
 * Errors nobody read, asyncio's "exception was never retrieved": fn(f,
 * err, arg) is called when a future of loop that failed with err is freed
 * and its error was never read by loop_future_result() (which awaiting it
 * from a task, gather, wait_for and task groups all call).  Cancelled
 * futures are not reported.  So a task that failed and that nobody
 * awaited is reported when it is released.  f may be read during the call
 * and is freed after it; fn must not take a reference to it.  A future
 * still alive when the loop is freed is reported from inside loop_free(),
 * where fn must not use the loop.  The library never prints: with no
 * handler (the default, or fn NULL), nothing is reported.  Returns 0, or
 * -EINVAL for a NULL loop, -ENOMEM.
 */
typedef void loop_future_report_fn(loop_future *f, int err, void *arg);
LOOP_API int loop_future_on_unretrieved(loop_t *loop, loop_future_report_fn *fn, void *arg);

/* ---- Done callbacks ---------------------------------------------------- */

/*
 * Call fn(f, arg) once f is done, from a callback of the loop (see the top
 * of this file).  The same fn and arg may be added more than once; each is
 * called.  Returns 0, -EINVAL, or -ENOMEM (fn will not be called).
 */
LOOP_API int loop_future_add_done(loop_future *f, loop_future_fn *fn, void *arg);

/* Remove every not yet scheduled (fn, arg) pair; returns how many, or
 * -EINVAL.  Callbacks already scheduled still run. */
LOOP_API int loop_future_remove_done(loop_future *f, loop_future_fn *fn, void *arg);

/* ---- Running a loop for a future --------------------------------------- */

/*
 * Run loop until f is done, then return its outcome as
 * loop_future_result() does (result through *result if not NULL).  As
 * asyncio's run_until_complete, the loop runs at least one iteration even
 * when f is done already.  Returns -EDEADLK if the loop stopped before f
 * was done (loop_stop(), or nothing left that could complete it),
 * -EINVAL if f is NULL or of another loop, or what loop_run() returns on
 * failure (-EBUSY from a callback of this loop).
 */
LOOP_API int loop_run_until_complete(loop_t *loop, loop_future *f, void **result);

/* ---- Combinators ------------------------------------------------------- */

/*
 * gather: *out completes once every one of the n futures is done (with
 * result NULL: read each child), or as soon as one fails or is cancelled,
 * with that error (-ECANCELED for a cancelled child); the others keep
 * running.  Cancelling *out cancels every child, in order; *out then ends
 * cancelled (or with the first child error that comes first).  n == 0 is
 * done at once.  The children must be of loop.  Returns 0, -EINVAL, or
 * -ENOMEM (nothing was started).
 */
LOOP_API int loop_gather(loop_t *loop, loop_future *const *fs, size_t n, loop_future **out);

enum loop_wait_until {
    LOOP_FIRST_COMPLETED = 1,
    LOOP_FIRST_EXCEPTION = 2, /* a failure or a cancel; or all completed */
    LOOP_ALL_COMPLETED = 3,
};

/*
 * wait: *out is done (result: the number of children done, as a uintptr_t)
 * when the condition holds, or when timeout_ns passes (negative: no
 * timeout); asyncio's wait, which never cancels a child and never fails on
 * timeout.  Cancelling *out cancels only *out.  Returns 0, -EINVAL (n == 0
 * or a bad `until`, as asyncio), or -ENOMEM.
 */
LOOP_API int loop_wait(loop_t *loop, loop_future *const *fs, size_t n, enum loop_wait_until until,
                       int64_t timeout_ns, loop_future **out);

/*
 * as_completed: loop_as_completed_next() returns a new future that is done
 * with the next child to finish as its result (a loop_future *, borrowed
 * from the set), in the order they finish; or that fails with -ETIMEDOUT
 * once timeout_ns (negative: none) has passed since loop_as_completed_new().
 * Call it n times; more calls return -ENOENT.  loop_as_completed_free()
 * releases the set (futures it returned stay valid).
 */
typedef struct loop_as_completed loop_as_completed;
LOOP_API int loop_as_completed_new(loop_t *loop, loop_future *const *fs, size_t n,
                                   int64_t timeout_ns, loop_as_completed **out);
LOOP_API int loop_as_completed_next(loop_as_completed *ac, loop_future **next);
LOOP_API void loop_as_completed_free(loop_as_completed *ac);

/*
 * wait_for: *out completes with inner's outcome, if inner is done within
 * timeout_ns.  If not, inner is cancelled and *out waits for it to finish:
 * then *out fails with -ETIMEDOUT if inner ended cancelled, or takes
 * inner's outcome if inner refused the cancel.  Cancelling *out cancels
 * inner, waits for it, and *out ends cancelled even if inner refused (a
 * cancel is never swallowed).  Returns 0, -EINVAL, or -ENOMEM.
 */
LOOP_API int loop_wait_for(loop_t *loop, loop_future *inner, uint64_t timeout_ns,
                           loop_future **out);

#ifdef __cplusplus
}
#endif

#endif /* LOOP_FUTURE_H */
