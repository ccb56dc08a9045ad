/*
 * libloop thread pools: blocking work off the loop thread, as Python's
 * ThreadPoolExecutor behind asyncio's run_in_executor.
 *
 * A pool belongs to one loop.  loop_pool_submit() queues a job and hands
 * back a future of that loop; a pool thread runs the job, and the future
 * is completed ON THE LOOP THREAD, during an iteration, with what the job
 * returned.  Threads are started lazily: a submit wakes an idle thread, or
 * starts one if none is idle and fewer than `threads` run, so a pool never
 * has more threads than jobs it was ever given at once.  Threads stay until
 * the pool is shut down.  They block every signal except those raised by
 * faults, so the loop's signal handling is not disturbed.
 *
 * Completions are batched: a thread that finishes a job puts it on a list
 * and writes the pool's eventfd only when that list was empty; the loop
 * watches the eventfd and one wake-up completes every job finished by
 * then.  A thread that runs out of work looks for more for up to 10 us,
 * yielding the CPU, before it sleeps (one thread at a time), so a stream
 * of short jobs costs no wake-ups.  The eventfd is watched only while jobs
 * are outstanding (and for two iterations after the last one is done, so
 * a program that submits from a done callback does not pay an epoll_ctl
 * per job): an idle pool does not keep loop_run() alive.  Outstanding
 * jobs do.
 *
 * Memory comes from the loop's allocator (loop_realloc), on the loop
 * thread only -- with one exception, named at loop_pool_free().  Queues are
 * bounded (`capacity`), never unbounded memory; job records are reused, so
 * a steady stream of jobs allocates nothing but its futures.
 *
 * Every function here is for the loop's thread only, and none may be
 * called from a job.  Link with libloop_pool (pkg-config libloop-pool;
 * CMake libloop::pool).
 *
 * Errors: every call returns 0 or a negative errno: -EINVAL for NULL or
 * out-of-range arguments, -ENOMEM (then nothing changed), and the ones
 * named below, in particular -ESHUTDOWN after loop_pool_shutdown() and
 * -ECHILD in a child process (see "fork" at the end of this file).
 */
#ifndef LOOP_POOL_H
#define LOOP_POOL_H

#include "loop.h"
#include "loop_future.h"

#include <netdb.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loop_pool loop_pool;

/*
 * A job, run on a pool thread: fn(arg, &result).  It returns 0 with
 * *result set (it starts as NULL), and the future is done with that
 * result; or a negative errno, and the future fails with it (a value
 * above 0 counts as 0).  A job that fails frees what it made itself:
 * *result is not looked at.  A job must not call anything of its loop,
 * its futures or its pool: it runs on another thread.  It may block.
 */
typedef int loop_pool_fn(void *arg, void **result);

/*
 * Optional, given with loop_pool_submit_with(): drop(arg, result) is called
 * exactly once for each job whose outcome no future receives, so that
 * arg and result can be freed:
 *   - its future was cancelled before the job started, or the job was
 *     taken off the queue by loop_pool_shutdown(LOOP_POOL_CANCEL) or
 *     loop_pool_free(): it never ran, result is NULL;
 *   - its future was cancelled (or completed by someone else) while the
 *     job ran or before its outcome was delivered: result is what the job
 *     made (NULL if it failed);
 *   - it was submitted without a future (out NULL);
 *   - the pool was freed before the outcome could be delivered.
 * It runs on the loop thread, except for a job still running when its
 * pool is freed: then it runs on that job's thread when the job returns
 * (see loop_pool_free()).  A job whose future receives its outcome never
 * sees drop: the future's reader owns the result.  drop must not free the
 * pool (it may be called from inside the pool's own calls).
 */
typedef void loop_pool_drop_fn(void *arg, void *result);

/* ---- Making pools ---------------------------------------------------------- */

/* The most threads a pool may have. */
#define LOOP_POOL_MAX_THREADS 1024u

/*
 * Options for loop_pool_new(); a zeroed struct (or NULL) gives defaults.
 */
typedef struct {
    /*
     * The most threads it runs at once: 0 means min(32, cores + 4), as
     * Python's executor, where cores is the number of CPUs this process
     * may run on (sched_getaffinity), else those online.  At most
     * LOOP_POOL_MAX_THREADS.
     */
    unsigned threads;
    /*
     * The most jobs outstanding at once -- submitted, and not yet done with
     * (queued, running, or finished and waiting for the loop to complete
     * their future) -- beyond which loop_pool_submit() says -EAGAIN.  0
     * means 65536.
     */
    uint32_t capacity;
    /*
     * The most threads that may run slow jobs (LOOP_POOL_SLOW) at once, so
     * that slow jobs, name resolution say, never take every thread: 0
     * means half the threads, rounded up.  At most `threads`.
     */
    unsigned slow_threads;
} loop_pool_options;

/*
 * A new pool of loop, stored in *out; no thread starts yet.  Returns 0,
 * -EINVAL (loop or out NULL, threads above LOOP_POOL_MAX_THREADS,
 * slow_threads above the number of threads), -ENOMEM, or the error of
 * eventfd() (-EMFILE, ...).  The pool's eventfd is close-on-exec.
 *
 * A pool still alive when its loop is freed is freed by loop_free(), as
 * loop_pool_free() frees it, except that its futures are left alone (the
 * loop's futures are freed with it) and every undelivered outcome goes to
 * its drop function; the pool must not be used after that.
 */
LOOP_API int loop_pool_new(loop_t *loop, const loop_pool_options *opts, loop_pool **out);

/*
 * The loop's default pool, made with default options on first use (as
 * asyncio's default executor), stored in *out.  loop_free() frees it.  If
 * it was shut down, this is still that pool (submits say -ESHUTDOWN, as
 * asyncio refuses run_in_executor after shutdown_default_executor); if it
 * was freed with loop_pool_free(), a new one is made.  In a child after
 * fork(), a default pool made by the parent is freed and a new one made
 * (call loop_fork() first).  Returns 0, -EINVAL, or as loop_pool_new().
 */
LOOP_API int loop_pool_default(loop_t *loop, loop_pool **out);

/* ---- Submitting ------------------------------------------------------------ */

/*
 * Queue fn(arg, &result) and store in *out a new future of the pool's
 * loop, with one reference for the caller (unref it when done with it).
 * The future completes on the loop thread: done with the job's result,
 * or failed with its error.  Jobs start in the order they were submitted
 * (a slow job may wait behind the slow cap while later jobs start).
 *
 * Cancelling the future (loop_future_cancel) of a job that has not
 * started takes it off the queue: it never runs.  A running job cannot be
 * stopped: its future is cancelled at once, and what the job returns goes
 * to its drop function (loop_pool_submit_with).  out may be NULL: the job
 * runs and its outcome goes to drop.
 *
 * Returns 0; -EINVAL if pool or fn is NULL; -ESHUTDOWN after
 * loop_pool_shutdown(); -EAGAIN if `capacity` jobs are outstanding, or if
 * the pool has no thread and none could be started (pthread_create
 * failed: the job is not queued); -ENOMEM; -ECHILD in a child process (see
 * below).  On any failure nothing was queued and *out is NULL.  When a
 * thread cannot be started but others run, the job stays queued for them
 * and 0 is returned.
 */
LOOP_API int loop_pool_submit(loop_pool *pool, loop_pool_fn *fn, void *arg, loop_future **out);

/*
 * The completion callback of loop_pool_call(): done(arg, status, result),
 * called exactly once per job: status 0 with the job's result, the job's
 * error, or -ECANCELED (result NULL) if the job never ran (shut down with
 * LOOP_POOL_CANCEL, freed, or inherited by a child after fork).  It runs
 * on the loop thread, from the pool's eventfd handler -- except for a job
 * still running when its pool is freed: then on that job's thread when
 * the job returns (see loop_pool_free()).  It must not free the pool.
 */
typedef void loop_pool_done_fn(void *arg, int status, void *result);

/* Flags of loop_pool_submit_with() and loop_pool_call(). */
#define LOOP_POOL_SLOW 0x1u /* a slow job: counts against slow_threads */

/*
 * As loop_pool_submit(), with flags (0 or LOOP_POOL_SLOW) and a drop
 * function (may be NULL).  -EINVAL for unknown flags.
 */
LOOP_API int loop_pool_submit_with(loop_pool *pool, loop_pool_fn *fn, void *arg, unsigned flags,
                                   loop_pool_drop_fn *drop, loop_future **out);

/*
 * libuv's uv_queue_work: queue fn(arg, &result) and have done(arg, status,
 * result) called with its outcome, with no future.  The same queue, order,
 * threads and flags as loop_pool_submit_with(); it costs the loop thread
 * about half as much per job (no future to make, complete and free, and
 * no extra iteration before the callback), but the job cannot be
 * cancelled on its own: only loop_pool_shutdown(LOOP_POOL_CANCEL) and
 * loop_pool_free() take it off the queue (done then says -ECANCELED).
 * Returns 0, or the errors of loop_pool_submit_with(), -EINVAL if done is
 * NULL; on failure done is never called.
 */
LOOP_API int loop_pool_call(loop_pool *pool, loop_pool_fn *fn, void *arg, unsigned flags,
                            loop_pool_done_fn *done);

/* ---- Resolving names ------------------------------------------------------- */

/*
 * asyncio's loop.getaddrinfo(): getaddrinfo(host, service, hints) run as a
 * slow job (LOOP_POOL_SLOW) of pool -- the loop's default pool
 * (loop_pool_default()) is the usual one -- and *out a new future of the
 * pool's loop (one reference for the caller) done with the struct addrinfo
 * list it found, in getaddrinfo's order:
 *
 *     struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
 *     loop_pool_getaddrinfo(pool, "example.com", "443", &hints, &f);
 *     ...                              // await f, or a done callback
 *     void *r;
 *     if (loop_future_result(f, &r) == 0) {
 *         for (struct addrinfo *ai = r; ai; ai = ai->ai_next)
 *             ...                      // ai->ai_addr, ai->ai_addrlen
 *         loop_pool_freeaddrinfo(loop, r);   // not freeaddrinfo()
 *     }
 *     loop_future_unref(f);
 *
 * host and service are copied; either may be NULL, not both.  Of hints
 * (NULL: getaddrinfo's defaults) only ai_flags, ai_family, ai_socktype
 * and ai_protocol are read.  Every name, numbers and "localhost"
 * included, goes to a thread: getaddrinfo() may read files and wait for
 * the network.  The thread's environment is the process's: RES_OPTIONS,
 * HOSTALIASES and /etc/nsswitch.conf apply as for any getaddrinfo().
 *
 * Who frees the list.  The list belongs to whoever reads the future's
 * result, who frees it with loop_pool_freeaddrinfo() on the loop thread,
 * once.  Nothing else leaks either: the result
 * of a future that is cancelled (before the job starts, the job is taken
 * off the queue; after, getaddrinfo's list is freed when it returns), of
 * a pool shut down or freed, or of a loop freed while the job runs (the
 * job's thread frees it when getaddrinfo returns, through the loop's
 * allocator: see loop_pool_free()), is freed by the library; a list
 * whose future was never read, or was read and never freed, is freed by
 * loop_free() -- so a list must not be used after its loop is freed.
 * (Futures have no hook that runs when they are freed, so a list held by
 * a future dropped unread lives until then.)  The list is a copy of
 * getaddrinfo's, made in one block of the loop's allocator as the future
 * is completed: so that the library can find it again at loop_free(),
 * and so that its memory comes from the loop's allocator, as all the
 * library's does; getaddrinfo's own is freed at once.
 *
 * The future fails with getaddrinfo's error as a negative errno (the
 * original EAI_* code: loop_pool_eai_code()):
 *   -ENXIO           EAI_NONAME: the name (or service) is not known;
 *   -ENODATA         EAI_NODATA: the name has no address;
 *   -EADDRNOTAVAIL   EAI_ADDRFAMILY: no address of the family asked for;
 *   -EAGAIN          EAI_AGAIN: a temporary failure (no answer from a name
 *                    server; RES_OPTIONS="timeout:1 attempts:1" bounds the
 *                    wait).  loop_future_result() says -EAGAIN for a
 *                    pending future too: loop_future_done() tells them
 *                    apart (see the end of this comment);
 *   -EREMOTEIO       EAI_FAIL: a name server failed for good;
 *   -EAFNOSUPPORT    EAI_FAMILY: hints->ai_family is not supported;
 *   -ESOCKTNOSUPPORT EAI_SOCKTYPE: hints->ai_socktype is not supported;
 *   -ENOENT          EAI_SERVICE: no such service for the socket type;
 *   -EINVAL          EAI_BADFLAGS: bad hints->ai_flags;
 *   -ENOMEM          EAI_MEMORY, or the copy of the list could not be made;
 *   -EOVERFLOW       EAI_OVERFLOW;  -EILSEQ  EAI_IDN_ENCODE (AI_IDN);
 *   -errno           EAI_SYSTEM, with the errno getaddrinfo left (-EIO if
 *                    none); -EIO for an EAI code not named here.
 * It is cancelled as any job's future is (loop_future_cancel(), a task
 * awaiting it cancelled, loop_pool_shutdown(LOOP_POOL_CANCEL), ...).
 *
 * Why -EAGAIN for EAI_AGAIN, though loop_future_result() also says
 * -EAGAIN for a pending future: it says what to do (try again later),
 * as asyncio's gaierror does; an await never returns a pending future's
 * -EAGAIN, and a done callback runs once the future is done.
 *
 * Returns 0; -EINVAL if pool or out is NULL or host and service both are;
 * -ENOMEM; or as loop_pool_submit() (-ESHUTDOWN, -EAGAIN, -ECHILD).  On
 * failure *out is NULL and nothing was queued.
 */
LOOP_API int loop_pool_getaddrinfo(loop_pool *pool, const char *host, const char *service,
                                   const struct addrinfo *hints, loop_future **out);

/*
 * Free a list that a future of loop_pool_getaddrinfo() on loop gave (the
 * first node, as given), on the loop's thread.  While loop_free(loop)
 * runs it does nothing, since loop_free() frees the lists itself: so a
 * task that loop_free() unwinds may free the lists it holds as it would
 * after any cancel.  Once loop_free() has returned, loop is gone and this
 * must not be called.  A list of another loop is left alone; any other
 * pointer is undefined behaviour, as free() of one would be.  A NULL
 * list is ignored.
 */
LOOP_API void loop_pool_freeaddrinfo(loop_t *loop, struct addrinfo *list);

/*
 * The EAI_* code (<netdb.h>; gai_strerror() names it) that an error of
 * loop_pool_getaddrinfo()'s future stands for, by the table above: 0 for
 * 0 or above, EAI_SYSTEM for a negative errno not in the table.  Since
 * EAI_SYSTEM passes errno through, an EAI_SYSTEM whose errno is one of
 * the table's reads back as that entry's code.
 */
LOOP_API int loop_pool_eai_code(int err);

/* ---- Shutting down --------------------------------------------------------- */

enum loop_pool_shutdown_how {
    LOOP_POOL_WAIT = 0,   /* queued jobs still run */
    LOOP_POOL_CANCEL = 1, /* queued jobs never run: their futures are cancelled */
};

/*
 * Stop taking jobs: later submits return -ESHUTDOWN.  With LOOP_POOL_WAIT
 * every job already submitted still runs and completes its future; with
 * LOOP_POOL_CANCEL the jobs that have not started are taken off the queue
 * now and their futures cancelled (their drop called), while running jobs
 * finish and complete theirs.  Threads end once nothing is left for them.
 * It never blocks.  If done is not NULL, *done is a future (one reference
 * for the caller) completed with NULL on the loop thread once no job is
 * outstanding -- asyncio's shutdown_default_executor() to await.  A second
 * call may turn a WAIT into a CANCEL; every call's *done is the same
 * future.  Returns 0, -EINVAL (NULL pool, bad how), -ENOMEM (nothing
 * changed), or -ECHILD in a child.
 */
LOOP_API int loop_pool_shutdown(loop_pool *pool, enum loop_pool_shutdown_how how,
                                loop_future **done);

/*
 * Free the pool, shutting it down with LOOP_POOL_CANCEL first if that was
 * not done.  Idle threads are joined.  A job still running is not waited
 * for (it may block forever): its future is cancelled now, its thread is
 * detached, and when the job returns that thread calls the job's drop
 * function with the result, frees its own record through the loop's
 * allocator (loop_get_allocator) and exits; it touches nothing
 * else of the pool or the loop, so the loop may be freed meanwhile.  (So
 * with a custom allocator that is not thread-safe, free a pool only once
 * its jobs are done: await the future of loop_pool_shutdown().)  Jobs that
 * finished but whose futures the loop has not completed yet are completed
 * now.  Waiting for a running job, if wanted, is the shutdown's future.
 * Returns 0 or -EINVAL for NULL.  Freeing the default pool makes the next
 * loop_pool_default() make a new one.
 */
LOOP_API int loop_pool_free(loop_pool *pool);

/* ---- Looking at it ---------------------------------------------------------- */

typedef struct {
    unsigned threads;      /* threads started and not ended */
    unsigned idle;         /* of those, not in a job */
    unsigned sleeping;     /* of the idle, asleep (the others look for work) */
    unsigned slow_running; /* slow jobs running */
    uint32_t queued;       /* jobs waiting for a thread */
    uint32_t outstanding;  /* submitted and not done with (see capacity) */
    unsigned max_threads;  /* the options in force */
    unsigned slow_threads;
    uint32_t capacity;
} loop_pool_stats_t;

/* Copy the pool's counts into *out.  Returns 0, -EINVAL, or -ECHILD. */
LOOP_API int loop_pool_stats(loop_pool *pool, loop_pool_stats_t *out);

/*
 * fork.  A child process has only the thread that called fork(): none of
 * the pool's.  So in a child, a pool made before the fork runs nothing
 * more: the first call on it (or its eventfd firing in the child's loop)
 * cancels the futures of all its outstanding jobs in the child (their
 * drop runs, with result NULL, on the child's copies), and from then on
 * loop_pool_submit(), loop_pool_shutdown() and loop_pool_stats() return
 * -ECHILD; loop_pool_free() frees it, joining nothing.  The parent's pool
 * is not affected: its jobs run once, in the parent.  loop_pool_default()
 * in the child gives a new pool.  Call loop_fork() in the child before
 * any of this, as for every use of the loop there.
 */

#ifdef __cplusplus
}
#endif

#endif /* LOOP_POOL_H */
