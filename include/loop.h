/*
 * libloop: asyncio's event loop, in C, for Linux.
 *
 * One loop is a single-threaded reactor: an epoll set, a timer heap and a
 * ready queue.  User code registers callbacks (call_soon, call_later, ...)
 * and fd readiness handlers; loop_run() runs them until it is stopped or
 * nothing is left that could ever run a callback.
 *
 * Conventions that hold for every function below unless its own comment
 * says otherwise:
 *
 *  - Errors.  Every fallible call returns 0 on success or a negative errno
 *    code (-EINVAL, -EBADF, -EPERM, -ENOENT, -EBUSY, -ENOMEM).  A call that
 *    takes a callback and fails has scheduled nothing: that callback never
 *    runs.  The library never aborts, prints or exits, and every failure,
 *    -ENOMEM included, leaves the loop consistent and usable.
 *  - Threads.  A loop belongs to the thread that runs it.  No function here
 *    may be called on one loop from two threads at once, except
 *    loop_call_soon_threadsafe(), which any thread may call at any time.
 *    Different loops are independent; the only state they share is which
 *    loop owns each signal, because signal dispositions are the process's.
 *  - Callbacks.  Every function may be called from inside a callback running
 *    on the same loop, except loop_run(), loop_run_once() and loop_free(),
 *    which return -EBUSY there.
 *  - Time.  Nanoseconds of CLOCK_MONOTONIC (or of the virtual clock, see
 *    loop_options), as uint64_t.  LOOP_MS() and LOOP_SEC() convert.
 *
 * One iteration (loop_run_once) runs these phases, as asyncio's _run_once:
 *
 *   1. timeout: 0 if callbacks are ready or a stop was asked for; else the
 *      time to the earliest timer (never shorter); else block.
 *   2. poll: one epoll wait.  EINTR is an iteration with no events.
 *   3. I/O: each ready fd queues its reader, then its writer.
 *   4. timers: every timer due by loop_now() is queued, in deadline order;
 *      equal deadlines keep the order they were scheduled in.
 *   5. run: exactly the callbacks queued at this point run, in FIFO order
 *      (those queued during the previous iteration, then I/O, then timers).
 *      Callbacks queued while they run wait for the next iteration.
 */
#ifndef LOOP_H
#define LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(LOOP_BUILDING) && defined(__GNUC__)
#define LOOP_API __attribute__((visibility("default")))
#else
#define LOOP_API
#endif

#define LOOP_VERSION_MAJOR 0
#define LOOP_VERSION_MINOR 1
#define LOOP_VERSION_PATCH 0

/* Durations in nanoseconds. */
#define LOOP_MS(n) (1000000u * (uint64_t)(n))
#define LOOP_SEC(n) (1000000000u * (uint64_t)(n))

/*
 * Bits of the `events` argument of a loop_io_fn.  (Their values are
 * epoll's, which spares a translation per event; test them by name.)
 */
#define LOOP_READABLE 0x001u
#define LOOP_WRITABLE 0x004u
#define LOOP_ERROR 0x008u /* an error is pending on the fd (see SO_ERROR) */
#define LOOP_HUP 0x010u   /* the peer closed; reads will return 0 or fail */

typedef struct loop loop_t;

/* A callback scheduled with loop_call_*. */
typedef void loop_fn(loop_t *loop, void *arg);

/* An fd readiness handler; `events` is a set of LOOP_READABLE, ... bits. */
typedef void loop_io_fn(loop_t *loop, int fd, unsigned events, void *arg);

/*
 * A handle names one scheduled callback, so that it can be cancelled.  The
 * loop owns what it names: there is nothing to free.  It is checked against
 * a generation count, so a handle whose callback already ran or was
 * cancelled is harmlessly stale (loop_cancel() says -ENOENT) even after its
 * slot was reused.  {0} names nothing.
 */
typedef struct {
    uint64_t id;
} loop_handle;

enum loop_clock {
    LOOP_CLOCK_MONOTONIC = 0, /* CLOCK_MONOTONIC: real time */
    LOOP_CLOCK_VIRTUAL = 1,   /* starts at 0; moves only as described below */
};

/*
 * Options for loop_new_with().  Zero-initialise and set what you need:
 * a zeroed struct gives what loop_new() gives.
 */
typedef struct {
    /*
     * LOOP_CLOCK_VIRTUAL makes the loop deterministic, for tests: loop_now()
     * starts at 0; whenever an iteration would sleep for t, it polls fds
     * without waiting and advances the clock by t instead (by the cap of
     * loop_run_once(), if smaller).  With no timer pending and no cap it
     * blocks in real time on its fds.  loop_advance() moves it by hand.
     */
    enum loop_clock clock;
    /*
     * Poll the kernel in every iteration, exactly as asyncio does.  By
     * default (false), an iteration that would poll with a zero timeout
     * because callbacks are already ready may skip that poll and the clock
     * read, as long as fewer than `poll_interval` callbacks have run since
     * the last poll.  This bounds the delay it adds to I/O and timers by the
     * run time of that many callbacks, and lets a chain of call_soon run at
     * queue speed instead of one syscall per callback.
     */
    bool strict_poll;
    /* Callbacks between two polls when not strict; 0 means 64. */
    uint32_t poll_interval;
    /*
     * How late, in ns, the loop may wake for a timer so that timers due
     * shortly after it share the wake-up; 0 (the default) wakes at the
     * deadline.  Timers never run early either way.  Worth setting when
     * timers are dense: with a million timers spread over a second, 20 us
     * of slack saves about 14% of the CPU time spent running them.  The
     * virtual clock ignores it: it jumps exactly to each deadline.
     */
    uint32_t timer_slack_ns;
    /*
     * The allocator: realloc(ctx, ptr, size) with realloc's meaning, where
     * size 0 frees ptr and returns NULL.  NULL means libc's.  It may fail
     * (return NULL) at any call; the loop then returns -ENOMEM and stays
     * usable.
     */
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void *alloc_ctx;
} loop_options;

/* The version of the library linked in, as "MAJOR.MINOR.PATCH". */
LOOP_API const char *loop_version(void);

/*
 * The message for a code returned by this library or its layers: pass it
 * the negative value as returned (-ENOMEM).  The core's own codes have
 * texts worded for it; any other negative errno gets the C library's
 * description ("Connection refused").  Never NULL; a value that is no
 * errno gets a generic message.  Thread-safe.
 */
LOOP_API const char *loop_strerror(int err);

/* ---- Lifecycle -------------------------------------------------------- */

/*
 * Create a loop with default options and store it in *out.  Returns 0,
 * -EINVAL if out is NULL, -ENOMEM, or the error of epoll_create1() (such
 * as -EMFILE).  loop_now() is set on return.  The loop's own fds are
 * close-on-exec.
 */
LOOP_API int loop_new(loop_t **out);

/* As loop_new(), with options (NULL means defaults).  -EINVAL for an
 * unknown clock. */
LOOP_API int loop_new_with(loop_t **out, const loop_options *opts);

/*
 * Allocate through the loop's allocator (loop_options.realloc, or libc's),
 * with realloc's meaning: size 0 frees ptr and returns NULL.  For the
 * layers above the core and for programs that want their memory counted,
 * or failed, with the loop's.  From the loop's thread (or any thread, if
 * the allocator given is thread-safe).  Returns NULL for a NULL loop.
 */
LOOP_API void *loop_realloc(loop_t *loop, void *ptr, size_t size);

/*
 * The loop's allocator itself, for memory that may outlive the loop: the
 * function given in loop_options (or one that calls libc) and its
 * context.  Returns 0, or -EINVAL if an argument is NULL.
 */
LOOP_API int loop_get_allocator(const loop_t *loop, void *(**realloc_fn)(void *, void *, size_t),
                                void **ctx);

/*
 * Attach data to the loop under a key (any address the caller owns, such
 * as that of a static variable): for a layer above the core that keeps
 * state per loop.  loop_free() calls release(loop, data) for each
 * attachment, the last attached first, before it frees anything else (the
 * loop is still usable by release, but runs nothing more).  Returns 0,
 * -EINVAL if loop or key is NULL, -EEXIST if key is attached already, or
 * -ENOMEM.  loop_attached() returns the data, or NULL.  loop_detach()
 * removes it without calling release: 0, or -ENOENT.
 */
LOOP_API int loop_attach(loop_t *loop, const void *key, void *data,
                         void (*release)(loop_t *loop, void *data));
LOOP_API void *loop_attached(const loop_t *loop, const void *key);

/*
 * The data attached under key, made on first use: size bytes, zeroed,
 * from the loop's allocator, attached with release (which then owns it:
 * free it with loop_realloc(loop, data, 0) or the allocator of
 * loop_get_allocator()).  A layer's per-loop state in one call.  Returns
 * NULL if loop or key is NULL, size is 0, or memory ran out (then nothing
 * is attached).
 */
LOOP_API void *loop_attach_new(loop_t *loop, const void *key, size_t size,
                               void (*release)(loop_t *loop, void *data));
LOOP_API int loop_detach(loop_t *loop, const void *key);

/*
 * Free the loop: pending callbacks are dropped without running, its memory
 * and its own fds are released.  Registered user fds are not closed.
 * Returns 0, -EINVAL for NULL, or -EBUSY while the loop is running (from a
 * callback), in which case nothing is freed.
 */
LOOP_API int loop_free(loop_t *loop);

/*
 * Run iterations until loop_stop() is called, or until nothing is left
 * that could ever run a callback: no ready callbacks, no timers, no fd
 * handlers and no loop_ref() holds.  Returns 0, -EINVAL for NULL, -EBUSY
 * if called from a callback of this loop, -ENOMEM if the loop could not
 * grow a queue (it may simply be called again), or another negative errno
 * from the kernel's epoll wait.
 *
 * A stop requested before loop_run() makes it run one iteration (without
 * waiting) and return.  A stop is consumed by the call that honours it.
 */
LOOP_API int loop_run(loop_t *loop);

/*
 * Run exactly one iteration.  max_wait_ns caps how long it may wait for
 * events (-1: no cap; 0: do not wait).  If nothing keeps the loop alive it
 * still polls and runs what is due, but does not wait.  A pending stop
 * makes it not wait and is consumed.  Returns as loop_run().
 */
LOOP_API int loop_run_once(loop_t *loop, int64_t max_wait_ns);

/*
 * Ask loop_run() to return once the current iteration is finished.  May be
 * called from a callback or before loop_run(); not from another thread.
 */
LOOP_API void loop_stop(loop_t *loop);

/*
 * Keep loop_run() alive even when nothing is scheduled, for code that
 * expects work from outside.  Each loop_ref() is undone by one
 * loop_unref(); unref without a matching ref does nothing.
 */
LOOP_API void loop_ref(loop_t *loop);
LOOP_API void loop_unref(loop_t *loop);

/*
 * The loop's time in nanoseconds: CLOCK_MONOTONIC, read once per iteration
 * after the poll (and by loop_new), or the virtual clock.  0 for NULL.
 */
LOOP_API uint64_t loop_now(const loop_t *loop);

/* Read the clock now, refreshing loop_now().  No effect on a virtual clock. */
LOOP_API void loop_update_time(loop_t *loop);

/*
 * Move a virtual clock forward by ns without running anything; loop_now()
 * shows it at once (also inside a callback) and what falls due runs at the
 * next iteration.  Returns 0, -EINVAL for NULL or a loop on
 * the real clock.  Saturates rather than wraps.
 */
LOOP_API int loop_advance(loop_t *loop, uint64_t ns);

/* ---- Callbacks -------------------------------------------------------- */

/*
 * Each of these schedules fn(loop, arg) and, if out is not NULL, stores a
 * handle for loop_cancel() in *out (on failure *out is set to {0}).  They
 * return 0, -EINVAL if loop or fn is NULL (or period_ns is 0), or -ENOMEM.
 */

/* Run fn at the next iteration (in this one's snapshot it is too late). */
LOOP_API int loop_call_soon(loop_t *loop, loop_fn *fn, void *arg, loop_handle *out);

/*
 * Run fn once, delay_ns after this call: the clock is read at the call (as
 * asyncio does), so the whole delay is waited even when the call comes late
 * in a long callback.  A timer never runs before its deadline by
 * loop_now().  A deadline past the end of time saturates: that timer never
 * runs (but keeps loop_run() alive until cancelled).
 */
LOOP_API int loop_call_later(loop_t *loop, uint64_t delay_ns, loop_fn *fn, void *arg,
                             loop_handle *out);

/*
 * Run fn once loop_now() >= when_ns.  A deadline in the past runs at the
 * next iteration's timer phase.  call_at(loop, loop_now(loop) + d, ...)
 * is the cheap form of call_later that counts from the iteration's start.
 * when_ns == UINT64_MAX never runs.
 */
LOOP_API int loop_call_at(loop_t *loop, uint64_t when_ns, loop_fn *fn, void *arg, loop_handle *out);

/*
 * Run fn every period_ns, first at one period from this call.  Each next
 * deadline is the previous deadline plus the period; if that is already
 * past (the loop stalled), it is now plus the period, so a stall never
 * causes a burst.  The next deadline is set when a run is queued, before
 * fn runs: "now" is loop_now() of that iteration.  The handle stays valid
 * until cancelled.
 */
LOOP_API int loop_call_every(loop_t *loop, uint64_t period_ns, loop_fn *fn, void *arg,
                             loop_handle *out);

/*
 * Move the callback h names to a new deadline, keeping its handle: it runs
 * once delay_ns after this call (counted as loop_call_later counts), or once
 * loop_now() >= when_ns, instead of when it was going to run.  The cheap way
 * to push back an idle timeout: one O(log n) move, where loop_cancel()
 * and loop_call_later() make two and recycle a slot.  Works on any pending
 * one-shot callback, even one already queued to run in this iteration (that
 * run is dropped) or one scheduled with loop_call_soon() (it becomes a
 * timer).  A repeating timer's next run moves, and its period goes on from
 * there; a run of it already queued in this iteration still happens.
 * Among equal deadlines it counts as scheduled now.  Returns 0, -EINVAL for
 * a NULL loop, -ENOENT if h is stale (as loop_cancel()), or -ENOMEM (only
 * when h was queued to run: it is then left queued).
 */
LOOP_API int loop_reschedule(loop_t *loop, loop_handle h, uint64_t delay_ns);
LOOP_API int loop_reschedule_at(loop_t *loop, loop_handle h, uint64_t when_ns);

/*
 * Arm a timer held in a caller's variable, whether or not it has run: if
 * *timer names a pending callback of this loop (waiting, or queued to run
 * in this iteration), it moves to the new deadline as loop_reschedule()
 * moves it, and its fn and arg become these; otherwise (it is {0}, already
 * ran, or was cancelled) a new one-shot is scheduled as loop_call_later()
 * / loop_call_at() schedule it, and *timer is set to its handle.  So
 *
 *     loop_arm(loop, &conn->timeout, LOOP_SEC(5), on_timeout, conn);
 *
 * is always right, as libuv's uv_timer_start() is.  A repeating timer
 * keeps its period from its new deadline.  Returns 0, -EINVAL if loop,
 * timer or fn is NULL, or -ENOMEM (then *timer still names what it named).
 */
LOOP_API int loop_arm(loop_t *loop, loop_handle *timer, uint64_t delay_ns, loop_fn *fn, void *arg);
LOOP_API int loop_arm_at(loop_t *loop, loop_handle *timer, uint64_t when_ns, loop_fn *fn,
                         void *arg);

/*
 * Cancel a scheduled callback: it will not run, even if it is already
 * queued in the current iteration.  Returns 0, -EINVAL for a NULL loop, or
 * -ENOENT if the handle is {0}, already ran (one-shot callbacks count as run
 * as soon as they start), was already cancelled, or never came from this
 * loop.  Handle ids carry a key drawn for each loop, so a handle of
 * another loop, or any made-up value, is rejected with -ENOENT (barring a
 * 1 in 2^32 chance per live slot of matching one by accident); it never
 * cancels or moves a callback of this loop by design.
 */
LOOP_API int loop_cancel(loop_t *loop, loop_handle handle);

/* ---- File descriptors ------------------------------------------------- */

/*
 * Call fn(loop, fd, events, arg) in every iteration in which fd is readable
 * (level-triggered), or has hung up or has an error pending.  A reader is
 * called with the read side's bits (LOOP_READABLE, LOOP_HUP, LOOP_ERROR); a
 * writer with the write side's (LOOP_WRITABLE, LOOP_HUP, LOOP_ERROR).  When
 * the reader and the writer are the same fn with the same arg (as
 * loop_watch_fd() makes them), the fd gets ONE call per iteration, with
 * every bit the kernel reported.  At most one reader per fd: adding another
 * replaces the first (and any of its dispatch already queued is dropped);
 * adding the same fn and arg again changes nothing (a dispatch already
 * queued still runs).  The loop never closes fd.  One poll takes up to 512
 * ready fds; when more are ready the rest are served by the next
 * iterations, which never wait while any is ready (level-triggered).
 *
 * Returns 0; -EINVAL if loop or fn is NULL or fd is one of the loop's own
 * fds (loop_fd() and the eventfd and timerfd behind it);
 * -EBADF if fd is negative, closed or out of range; -EPERM if fd does not
 * support epoll (a regular file or a directory); -ENOMEM; or another error
 * of epoll_ctl().
 *
 * Remove the reader before closing fd.  After loop_remove_reader() (and
 * loop_remove_writer(), if one was added), closing fd is safe even if it
 * was duplicated elsewhere: nothing more is delivered for it.  A program
 * that closed fd WITHOUT removing its handlers, got the same number back
 * (from socket(), accept(), ...) and adds a handler for it again is served
 * too: adding where a handler is registered re-registers fd with the
 * kernel (at once for a new fn or arg, so its errors are returned here; at
 * the next poll for the same fn and arg), and nothing of the old file is
 * delivered to the new registration.
 */
LOOP_API int loop_add_reader(loop_t *loop, int fd, loop_io_fn *fn, void *arg);

/* As loop_add_reader(), for writability (and hang-up and errors). */
LOOP_API int loop_add_writer(loop_t *loop, int fd, loop_io_fn *fn, void *arg);

/*
 * Stop watching fd for reading.  A dispatch of the reader already queued in
 * this iteration is dropped.  Returns 0, -EINVAL for a NULL loop, -EBADF for
 * a negative fd, or -ENOENT if fd has no reader (whatever its number).
 */
LOOP_API int loop_remove_reader(loop_t *loop, int fd);

/* As loop_remove_reader(), for the writer. */
LOOP_API int loop_remove_writer(loop_t *loop, int fd);

/*
 * The interest-mask form, for C libraries that think in one callback per
 * fd (hiredis, libcurl, c-ares, GLib): set fd's interest to `events`, a
 * set of LOOP_READABLE and LOOP_WRITABLE, with fn(loop, fd, events, arg)
 * as its one handler.  It is the same table as loop_add_reader() and
 * loop_add_writer(): afterwards fd's reader is fn (if LOOP_READABLE is in
 * events, else none) and its writer is fn (if LOOP_WRITABLE, else none),
 * whatever they were, and fn is called once per iteration with every bit
 * the kernel reported (LOOP_HUP and LOOP_ERROR included).  events 0
 * removes both handlers (0 even if fd had none).  The same fn and arg
 * again keep a dispatch already queued.  Changing only the mask costs no
 * system call until the next poll, whatever the number of changes.
 *
 * Returns 0; -EINVAL if loop is NULL, events has other bits, or fn is
 * NULL with events not 0; otherwise as loop_add_reader().  On failure fd's
 * handlers are as they were.
 */
LOOP_API int loop_watch_fd(loop_t *loop, int fd, unsigned events, loop_io_fn *fn, void *arg);

/* ---- Threads ---------------------------------------------------------- */

/*
 * Schedule fn(loop, arg) from any thread, including signal-free contexts of
 * other threads and the loop's own thread.  Every call runs exactly once on
 * the loop thread, and calls made by one thread run in the order that
 * thread made them (calls are never merged).  They join the ready queue
 * during the I/O phase of the loop's next iteration.  A loop blocked in its
 * poll wakes at once: one eventfd write is made when the queue goes from
 * empty to non-empty, and a full eventfd counter is never an error.
 *
 * Queued calls keep loop_run() alive; the channel itself does not: a loop
 * that waits for work from other threads holds a loop_ref().  The
 * allocator (loop_options.realloc) is called from the posting thread, under
 * the queue's lock, when the queue grows.
 *
 * Returns 0, -EINVAL if loop or fn is NULL, or -ENOMEM (nothing queued).
 * The loop must stay alive (not be freed) while other threads may call this.
 */
LOOP_API int loop_call_soon_threadsafe(loop_t *loop, loop_fn *fn, void *arg);

/* ---- Signals ---------------------------------------------------------- */

/*
 * Run fn(loop, arg) on the loop thread, never in signal context, after
 * signo is delivered to the process.  Works whether or not other threads
 * block signo: a process-wide handler (sigaction, SA_RESTART) marks the
 * signal pending and wakes the owning loop through its eventfd.
 * Deliveries coalesce: however many arrive between two iterations, fn runs
 * once in the next one (as with any Unix signal, a count is not kept).
 *
 * One loop at a time may own a signal.  Adding it again on the same loop
 * replaces fn and arg.  A registered signal keeps loop_run() alive.
 *
 * Returns 0; -EINVAL for a NULL loop or fn, a number that is not a signal,
 * SIGKILL, SIGSTOP, or a signal raised by faults (SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL), which cannot be handled by returning; -EBUSY if another loop
 * owns signo; or an error of sigaction().
 */
LOOP_API int loop_add_signal(loop_t *loop, int signo, loop_fn *fn, void *arg);

/*
 * Stop handling signo and restore the disposition it had before
 * loop_add_signal().  A run already queued for it is dropped.  Returns 0,
 * -EINVAL for a NULL loop or a number that is not a signal, or -ENOENT if
 * this loop does not handle signo.  loop_free() removes every signal.
 */
LOOP_API int loop_remove_signal(loop_t *loop, int signo);

/* ---- Embedding in another main loop --------------------------------- */

/*
 * The loop's epoll fd, for a host loop to poll: it is readable when a
 * watched fd is ready, a threadsafe call is queued or a signal arrived.
 * Ready callbacks, due timers and queued epoll changes are announced by
 * loop_timeout_ns() instead.  The contract for a host, in each turn of its
 * own loop:
 *
 *     poll(&(struct pollfd){loop_fd(loop), POLLIN}, 1, loop_timeout_ms(loop));
 *     loop_run_once(loop, 0);
 *
 * i.e. sleep at most the timeout, rounded UP to the host's unit (a wait
 * rounded down wakes before the timer is due, finds nothing to run and
 * spins), and call loop_run_once(loop, 0) when loop_fd() is readable or the
 * timeout has passed.  A timeout of 0 means work is ready now: do not
 * sleep.  Returns -EINVAL for NULL.  Do not read from it or close it.
 */
LOOP_API int loop_fd(const loop_t *loop);

/*
 * How long a host may sleep before calling loop_run_once() again, in ns:
 * 0 while callbacks are ready, a stop is pending, fd changes are queued or
 * a timer is due; else the time to the earliest timer (on a virtual clock:
 * 0 whenever a timer is pending, as the next iteration jumps to it); -1 if
 * only fds, signals or threadsafe calls can bring work.  -1 for NULL.
 */
LOOP_API int64_t loop_timeout_ns(const loop_t *loop);

/*
 * loop_timeout_ns() for poll() and epoll_wait() users: milliseconds,
 * rounded up (1 ns is 1 ms), capped at INT_MAX; 0 is "ready now"; -1 is
 * "forever" (and for NULL).
 */
LOOP_API int loop_timeout_ms(const loop_t *loop);

/*
 * Hooks: call fn(loop, arg) at a fixed place of EVERY iteration, including
 * iterations that skip their poll (see poll_interval):
 *
 *   before_poll     first, before the timeout is chosen: a hook may
 *                   schedule callbacks, and the poll then does not wait;
 *   after_poll      right after the poll (or where it would be), before
 *                   any callback of the iteration runs;
 *   iteration_end   last, after every callback of the iteration, fd
 *                   handlers included.
 *
 * A host loop driven from libloop (GLib, say) prepares its sources before
 * the poll, and checks and dispatches them at iteration_end, where the fd
 * handlers of this iteration have already seen their events.  For daemons,
 * before_poll is where to flush buffers before sleeping.  One hook of each
 * kind; fn NULL removes it.  While any hook is set, a chain of callbacks
 * no longer runs several iterations in one go, so every iteration reaches
 * the hooks.  Returns 0 or -EINVAL for a NULL loop.
 */
LOOP_API int loop_on_before_poll(loop_t *loop, loop_fn *fn, void *arg);
LOOP_API int loop_on_after_poll(loop_t *loop, loop_fn *fn, void *arg);
LOOP_API int loop_on_iteration_end(loop_t *loop, loop_fn *fn, void *arg);

/* ---- Observability ---------------------------------------------------- */

/*
 * Counters since loop_new().  Times are on the loop's clock.  wait_ns is
 * the time spent blocked in polls that were allowed to wait; busy_ns is
 * the rest of the time spent inside loop_run()/loop_run_once() (running
 * callbacks and zero-timeout polls).  Neither needs a clock read beyond the
 * iteration's own.
 */
typedef struct {
    uint64_t iterations; /* iterations run */
    uint64_t polls;      /* kernel polls (iterations minus skipped polls) */
    uint64_t callbacks;  /* callbacks and fd handlers run */
    uint64_t events;     /* readiness events of watched fds (not the loop's own) */
    uint64_t wait_ns;
    uint64_t busy_ns;
    /*
     * System calls the loop made on its own thread: epoll_wait (or
     * epoll_pwait2), epoll_ctl, timerfd_settime and eventfd reads (clock
     * reads go through the vDSO and are not counted).  syscalls / polls is
     * the cost of an iteration beyond its one wait.
     */
    uint64_t syscalls;
} loop_stats_t;

/* Copy the counters into *out.  Returns 0 or -EINVAL for NULL arguments. */
LOOP_API int loop_stats(const loop_t *loop, loop_stats_t *out);

/* What loop_set_slow_callback() reports about one slow callback. */
typedef struct {
    loop_fn *fn;       /* the callback, or NULL for an fd handler */
    loop_io_fn *io_fn; /* the fd handler, or NULL */
    void *arg;         /* the argument it was given */
    int fd;            /* the fd of an fd handler, else -1 */
    uint64_t ns;       /* how long it ran, on CLOCK_MONOTONIC */
} loop_slow_info;

typedef void loop_slow_fn(loop_t *loop, const loop_slow_info *info, void *arg);

/*
 * Report every callback or fd handler that runs for threshold_ns or more,
 * as asyncio's debug mode does: fn(loop, info, arg) is called right after
 * it returns.  Costs one clock read per callback while set; threshold_ns 0
 * or fn NULL turns it off.  Returns 0 or -EINVAL for a NULL loop.
 */
LOOP_API int loop_set_slow_callback(loop_t *loop, uint64_t threshold_ns, loop_slow_fn *fn,
                                    void *arg);

/* ---- fork ------------------------------------------------------------- */

/*
 * Call in the child after fork() to give its loop fds of its own: a new
 * epoll set with every watched fd registered again, a new eventfd, and
 * signal handlers that wake the child's loop.  Until then the child must
 * not use the loop (it shares the parent's epoll set, and changing it
 * would change the parent's).  The parent's loop is not affected either
 * way.  Threadsafe calls queued at the fork stay queued in both; signals
 * delivered before the fork are the parent's to handle.  It may be called
 * from a callback: the child's iteration goes on with its new fds.  All
 * the loop's fds are close-on-exec.  Returns 0, -EINVAL for NULL, or the
 * error of creating the new fds, in which case nothing changed: the loop
 * still shares the parent's, and the child may only loop_free() it.
 */
LOOP_API int loop_fork(loop_t *loop);

#ifdef __cplusplus
}
#endif

#endif /* LOOP_H */
