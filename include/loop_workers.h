/*
 * libloop workers: one event loop per core (DESIGN 5.6).
 *
 * A server that must use every core runs N workers, each with a loop of
 * its own, in one of two shapes:
 *
 *  - threads (LOOP_WORKERS_THREADS): N threads of this process, one loop
 *    each.  Other threads may post work to a given worker's loop.
 *  - processes (LOOP_WORKERS_PROCESSES): nginx's model.  N forked worker
 *    processes, one loop each, supervised by the process that started
 *    them through pidfds (no SIGCHLD handler; a pipe per worker where
 *    pidfd_open() is missing): a worker that dies is started again (with
 *    a back-off, so that a worker that dies at once cannot turn into a
 *    fork bomb).
 *
 * Each worker runs the user's setup(loop, index, arg) on its own loop
 * first (on its thread, in its process), where it typically opens its
 * listener or registers one opened before the start; then its loop runs.
 * A stop (loop_workers_stop(), SIGTERM or SIGINT when asked for, or a
 * worker that ended) is graceful: each worker runs drain(loop, index, arg)
 * on its loop, which should stop accepting and let the work in flight
 * finish, and its loop then runs until nothing is left in it, or until
 * drain_timeout_ns has passed (then the worker is stopped: its loop in
 * threads mode, SIGKILL for a process).  Last, teardown(loop, index, arg)
 * runs on the worker's loop (not for a process killed at the deadline).
 *
 * Listeners.  Every worker should accept on a socket of its own, bound
 * with SO_REUSEPORT to the same address, so that the kernel spreads the
 * connections over the workers (no thundering herd, no accept lock):
 * loop_workers_listen_reuseport() makes one.  In threads mode, open it in
 * setup.  In processes mode, open one per worker in the parent before
 * loop_workers_start(), and register socket i in setup i (closing the
 * others there): bind errors then come out before any fork, and a worker
 * that is restarted finds its socket, with the connections waiting in its
 * backlog, where it left them.  This is how nginx runs with "reuseport".
 *
 * Signals.  A process has one disposition per signal, and libloop gives
 * each signal to one loop (loop_add_signal()).  With stop_on_signals, the
 * workers' supervisor takes SIGTERM and SIGINT: a small loop of its own,
 * run by the thread that calls loop_workers_start() and loop_workers_wait()
 * (the main thread, typically), waits for them and then stops the workers.
 * Worker threads are then started with both signals blocked, so that they
 * never see EINTR for them.  A program whose main loop already owns these
 * signals leaves stop_on_signals false and calls loop_workers_stop() from
 * its own handler.  Worker processes always stop gracefully on SIGTERM and
 * SIGINT (the supervisor sends SIGTERM; Ctrl-C in a terminal sends SIGINT
 * to the whole process group) and ignore a second one.
 *
 * Conventions as in loop.h: 0 or a negative errno; objects through out
 * pointers; memory from the allocator of loop_options (libc's if none).
 */
#ifndef LOOP_WORKERS_H
#define LOOP_WORKERS_H

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most workers one start may ask for. */
#define LOOP_WORKERS_MAX 1024

typedef struct loop_workers loop_workers;

typedef enum {
    LOOP_WORKERS_THREADS = 0,   /* one thread per worker */
    LOOP_WORKERS_PROCESSES = 1, /* one forked process per worker, supervised */
} loop_workers_mode;

/* What the supervisor tells on_event about. */
typedef enum {
    LOOP_WORKERS_READY = 1,  /* the worker's setup returned 0: its loop runs */
    LOOP_WORKERS_EXITED = 2, /* the worker ended */
} loop_workers_event_kind;

typedef struct {
    loop_workers_event_kind kind;
    unsigned index; /* which worker */
    int pid;        /* its process (threads mode: this process) */
    /*
     * EXITED, processes: how the process ended, as waitid() tells it:
     * code CLD_EXITED with status its exit status (0: it drained and
     * ended cleanly; 1: its setup or its loop failed), or CLD_KILLED /
     * CLD_DUMPED with status the signal (both 0 if some other waitpid()
     * of the program reaped it first).  Threads: code CLD_EXITED, status
     * 0, or 1 if its loop failed.
     */
    int code, status;
    /*
     * EXITED: how long until the worker is started again, in ns, or
     * UINT64_MAX when it will not be (the workers are stopping; threads
     * mode never restarts).
     */
    uint64_t restart_in_ns;
} loop_workers_event;

/*
 * A worker's setup: runs on the worker's loop (its thread, its process)
 * before the loop runs.  Returns 0, or a negative errno that fails the
 * start (see loop_workers_start()).  A setup that fails undoes what it did:
 * neither drain nor teardown runs for it.
 */
typedef int loop_workers_setup_fn(loop_t *loop, unsigned index, void *arg);

/* drain and teardown: run on the worker's loop, as described above. */
typedef void loop_workers_fn(loop_t *loop, unsigned index, void *arg);

typedef struct {
    loop_workers_mode mode;
    unsigned count;                   /* how many workers: 1 to LOOP_WORKERS_MAX */
    loop_workers_setup_fn *setup;     /* required */
    loop_workers_fn *drain;           /* NULL: a stop ends the worker's loop at once */
    loop_workers_fn *teardown;        /* NULL: nothing */
    void *arg;                        /* given to the three, and to on_event */
    uint64_t drain_timeout_ns;        /* 0: 10 s; UINT64_MAX: no deadline */
    bool stop_on_signals;             /* SIGTERM and SIGINT stop the workers */
    bool pin;                         /* worker i runs on the i-th allowed CPU (mod their number) */
    const loop_options *loop_options; /* each worker's loop (NULL: defaults); its allocator
                                         is the supervisor's too, and must be thread-safe in
                                         threads mode */
    /*
     * Called on the supervisor's thread (inside loop_workers_start() and
     * loop_workers_wait()) when a worker is ready or has ended; NULL for
     * none.  It may call loop_workers_stop(), not wait or free.
     */
    void (*on_event)(loop_workers *w, const loop_workers_event *e, void *arg);
    /*
     * Processes: a worker that ended while the workers are not stopping is
     * started again.  If it had run for restart_reset_ns or longer it is
     * started at once; otherwise (it died young, or before it was ready)
     * the delay doubles with each such death in a row, from
     * restart_delay_ns up to restart_delay_max_ns.  0 means the default:
     * 100 ms, 10 s and 1 s.
     */
    uint64_t restart_delay_ns;
    uint64_t restart_delay_max_ns;
    uint64_t restart_reset_ns;
} loop_workers_options;

/*
 * Start the workers and store the group in *out.  Returns once every
 * worker's setup has returned (in processes mode: has reported back
 * through a pipe).  Threads mode makes all the workers' loops first, so a
 * worker may post to another from its setup; processes mode flushes stdio
 * buffers before each fork (so nothing buffered is written twice) and
 * forks from the calling thread: call it before starting other threads.
 *
 * In a worker process the supervisor's loop is freed and its fds closed;
 * the loops the program made before the start must not be used there:
 * loop_free() them in setup (one that owns SIGTERM or SIGINT must be
 * freed, or the worker fails with -EBUSY).  After setup, the worker's
 * loop takes SIGTERM and SIGINT, which stay blocked until then (one that
 * came meanwhile is delivered then).  A worker process ends with _exit(),
 * after flushing stdio: status 0 when its loop ended cleanly, 1 if its
 * setup or loop failed.
 * The process that calls start must keep SIGCHLD's default disposition
 * (an ignored SIGCHLD reaps children behind the supervisor's back), and
 * should call loop_workers_wait() from the same thread (a worker process
 * gets SIGTERM when the thread that forked it ends).
 *
 * Returns 0; -EINVAL if out or opts or setup is NULL, count is 0 or above
 * LOOP_WORKERS_MAX, or mode or loop_options is invalid; -EBUSY if
 * stop_on_signals is set and another loop owns SIGTERM or SIGINT; -ENOMEM;
 * an error of making a thread, an eventfd, a pipe or a process (-EAGAIN,
 * -EMFILE, ...); the error a setup returned (the lowest index's, if
 * several failed; -EBUSY from a worker process whose SIGTERM or SIGINT is
 * still owned by a loop made before the start); or -ECHILD if a worker
 * process died before its setup reported.  On failure every worker already started has been stopped
 * (drained and torn down) and waited for, and *out is NULL.
 */
LOOP_API int loop_workers_start(loop_workers **out, const loop_workers_options *opts);

/*
 * Threads mode: run fn(loop, arg) on worker index's loop, from any thread
 * (loop_call_soon_threadsafe() on that loop).  A call accepted (0) runs
 * exactly once, even if the worker is stopping: calls that reach a worker
 * whose loop has ended run before its teardown.  Returns 0; -EINVAL if w
 * or fn is NULL or index >= count; -EOPNOTSUPP in processes mode; -EPERM
 * in a worker process; -ESHUTDOWN once that worker's loop has ended (its
 * teardown has run or is running); or -ENOMEM.
 */
LOOP_API int loop_workers_post(loop_workers *w, unsigned index, loop_fn *fn, void *arg);

/*
 * Inside a worker: its index (0 to count - 1) and the number of workers,
 * found from its loop; loop_workers_of() gives the group (NULL if the loop
 * is not a worker's).  From the worker's own thread (its setup, drain,
 * teardown and callbacks).  Returns -EINVAL for NULL, -ENOENT if the loop
 * is not a worker's.
 */
LOOP_API int loop_workers_index(const loop_t *loop);
LOOP_API int loop_workers_count(const loop_t *loop);
LOOP_API loop_workers *loop_workers_of(const loop_t *loop);

/*
 * Ask the workers to stop, gracefully (see the top of this file); returns
 * at once.  Any thread may call it, any number of times, also from a
 * worker's callback, an on_event callback, or before loop_workers_wait().
 * It makes no allocation and cannot fail but for: -EINVAL for NULL, -EPERM
 * in a worker process (there the group belongs to the supervisor; a worker
 * process that wants to end returns from its loop).
 */
LOOP_API int loop_workers_stop(loop_workers *w);

/*
 * Wait until the workers have been stopped and have all ended, on the
 * calling thread, whose supervisor loop meanwhile takes the signals (with
 * stop_on_signals), restarts worker processes that die, and enforces the
 * drain deadline.  Returns 0 when every worker ended cleanly; otherwise the
 * first error: a worker loop's error (threads), -ECHILD for a worker
 * process that ended with a status other than 0 during the stop or failed
 * its loop, a setup error of a restarted worker process (such an error
 * stops the workers: starting again cannot help), -ETIMEDOUT if the
 * deadline cut a drain short, or -ENOMEM if a restart could not be
 * scheduled.  Every worker thread has been joined and every worker
 * process reaped when it returns.  Calling it again returns the same
 * result.  -EINVAL for NULL; -EBUSY from a worker thread or from
 * on_event; -EPERM in a worker process.
 */
LOOP_API int loop_workers_wait(loop_workers *w);

/*
 * Stop the workers if they are running, wait for them as
 * loop_workers_wait() does, and free the group, with the supervisor's loop
 * and fds.  NULL does nothing.  Returns 0, or -EBUSY from a worker thread
 * or from on_event (nothing freed), or -EPERM in a worker process.
 */
LOOP_API int loop_workers_free(loop_workers *w);

/*
 * Open a TCP listener on host:port, with SO_REUSEADDR and SO_REUSEPORT,
 * non-blocking and close-on-exec: what each worker accepts on.  host is
 * a numeric IPv4 ("127.0.0.1", "0.0.0.0") or IPv6 ("::1", "::", with or
 * without brackets) address, or "localhost" (127.0.0.1); no name is looked
 * up.  port 0 lets the kernel choose (getsockname() tells which; bind the
 * other workers' listeners to that port).  backlog 0 means SOMAXCONN.
 * Returns the fd, or -EINVAL (host NULL or not an address, port outside
 * 0 to 65535, backlog negative), -EADDRINUSE (a socket without
 * SO_REUSEPORT, or another user's, holds the address), or another error of
 * socket(), bind() or listen() (-EADDRNOTAVAIL, -EACCES, -EMFILE, ...).
 */
LOOP_API int loop_workers_listen_reuseport(const char *host, int port, int backlog);

#ifdef __cplusplus
}
#endif

#endif /* LOOP_WORKERS_H */
