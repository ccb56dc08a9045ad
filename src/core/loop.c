/*
 * Lifecycle and the iteration.  One iteration is asyncio's _run_once, read
 * top to bottom in iterate(): the hooks, the poll (timeout, wait, fd events
 * and wake-ups into the ready queue), due timers into the ready queue, then
 * exactly what is in the ready queue runs.  Each step is a call into the
 * module that owns it; the modules never call back up into this file.
 *
 * When the queue is empty at the poll, as it is whenever the loop waited,
 * fd events skip the queue: they would be its head, so the handlers are
 * called straight from the poll's results before the snapshot runs, with
 * the checks a queued dispatch makes (io_epoll.c).
 */
#include "callback.h"
#include "clock.h"
#include "handles.h"
#include "io_epoll.h"
#include "ready_queue.h"
#include "signals.h"
#include "timer_heap.h"
#include "wakeup.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

int loop_new(loop_t **out)
{
    return loop_new_with(out, NULL);
}

int loop_new_with(loop_t **out, const loop_options *opts)
{
    static const loop_options defaults;

    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!opts)
        opts = &defaults;
    if (opts->clock != LOOP_CLOCK_MONOTONIC && opts->clock != LOOP_CLOCK_VIRTUAL)
        return -EINVAL;

    loop_t *loop;
    if (opts->realloc)
        loop = opts->realloc(opts->alloc_ctx, NULL, sizeof(*loop));
    else
        loop = malloc(sizeof(*loop));
    if (!loop)
        return -ENOMEM;
    memset(loop, 0, offsetof(loop_t, io.events));
    loop->alloc.fn = opts->realloc;
    loop->alloc.ctx = opts->alloc_ctx;
    /* Strict is a budget of no callbacks between polls: one test, not two. */
    loop->poll_interval = opts->poll_interval ? opts->poll_interval : LOOP__POLL_INTERVAL;
    if (opts->strict_poll)
        loop->poll_interval = 0;
    if (opts->clock == LOOP_CLOCK_MONOTONIC)
        loop->timer_slack = opts->timer_slack_ns;
    loop->clock.kind = opts->clock;
    loop__slots_init(loop);
    loop->clock.now = loop__clock_read(loop);

    int err = loop__io_init(loop);
    if (!err) {
        err = loop__wakeup_init(loop);
        if (err)
            loop__io_free(loop);
    }
    if (err) {
        loop__realloc(loop, loop, 0);
        return err;
    }
    *out = loop;
    return 0;
}

int loop_free(loop_t *loop)
{
    if (!loop)
        return -EINVAL;
    if (loop->running)
        return -EBUSY;
    loop__attachments_release(loop);
    loop__signal_free(loop);
    loop__wakeup_free(loop);
    loop__io_free(loop);
    loop__ready_free(loop);
    loop__heap_free(loop);
    loop__slots_free(loop);
    loop__realloc(loop, loop, 0);
    return 0;
}

int loop_fork(loop_t *loop)
{
    if (!loop)
        return -EINVAL;
    /* All that can fail comes first, so that a failure changes nothing. */
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        return -errno;
    int wakefd = loop__wakeup_open(epfd);
    if (wakefd < 0) {
        close(epfd);
        return wakefd;
    }
    loop__io_fork(loop, epfd);
    loop__wakeup_fork(loop, wakefd);
    loop__signal_fork(loop);
    return 0;
}

void loop_stop(loop_t *loop)
{
    if (loop)
        loop->stop_requested = 1;
}

void loop_ref(loop_t *loop)
{
    if (loop && loop->refs < UINT32_MAX)
        loop->refs++;
}

void loop_unref(loop_t *loop)
{
    if (loop && loop->refs > 0)
        loop->refs--;
}

int loop_fd(const loop_t *loop)
{
    return loop ? loop->io.epfd : -EINVAL;
}

int loop_stats(const loop_t *loop, loop_stats_t *out)
{
    if (!loop || !out)
        return -EINVAL;
    *out = loop->stats;
    return 0;
}

static int set_hook(loop_t *loop, enum loop__hook which, loop_fn *fn, void *arg)
{
    if (!loop)
        return -EINVAL;
    loop->hooks[which] = (struct loop__hook_fn){fn, arg};
    loop->nhooks = 0;
    for (int i = 0; i < LOOP__NHOOKS; i++)
        loop->nhooks += loop->hooks[i].fn != NULL;
    return 0;
}

int loop_on_before_poll(loop_t *loop, loop_fn *fn, void *arg)
{
    return set_hook(loop, LOOP__HOOK_BEFORE_POLL, fn, arg);
}

int loop_on_after_poll(loop_t *loop, loop_fn *fn, void *arg)
{
    return set_hook(loop, LOOP__HOOK_AFTER_POLL, fn, arg);
}

int loop_on_iteration_end(loop_t *loop, loop_fn *fn, void *arg)
{
    return set_hook(loop, LOOP__HOOK_END, fn, arg);
}

static void run_hook(loop_t *loop, enum loop__hook which)
{
    struct loop__hook_fn h = loop->hooks[which];
    if (h.fn) {
        h.fn(loop, h.arg);
        loop->mark_fresh = false; /* user code ran: the last clock read aged */
    }
}

/* Could anything ever run a callback again? */
static bool alive(loop_t *loop)
{
    return loop__ready_count(loop) || loop->timers.n || loop->io.nwatched || loop->refs ||
           loop->signals.set || loop__wakeup_pending(loop);
}

/*
 * For a host's poll: settling the heap applies deadlines pushed back by
 * loop_reschedule (a change of representation, not of state), so that the
 * answer is the true earliest deadline, not a stale earlier one.
 */
int64_t loop_timeout_ns(const loop_t *cloop)
{
    if (!cloop)
        return -1;
    loop_t *loop = (loop_t *)cloop;
    if (loop__ready_count(loop) || loop->stop_requested || loop->io.nchanges)
        return 0;
    loop__heap_settle(loop);
    uint64_t when = loop__heap_next(loop);
    if (when == LOOP__NEVER)
        return -1;
    if (loop->clock.kind == LOOP_CLOCK_VIRTUAL)
        return 0;
    uint64_t now = loop__clock_read(loop);
    uint64_t d = when > now ? when - now : 0;
    return d > INT64_MAX ? INT64_MAX : (int64_t)d;
}

int loop_timeout_ms(const loop_t *loop)
{
    int64_t ns = loop_timeout_ns(loop);
    if (ns < 0)
        return -1;
    int64_t ms = ns / 1000000 + (ns % 1000000 != 0); /* up: never wake before it is due */
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/*
 * The clock, fresh.  The read that ended the previous iteration is still
 * fresh if no user code ran since (a hook may have): reusing it keeps an
 * iteration of loop_run at two clock reads.
 */
static uint64_t fresh_now(loop_t *loop)
{
    if (!loop->mark_fresh) {
        loop->mark = loop__clock_read(loop);
        loop->mark_fresh = true;
    }
    return loop->mark;
}

/*
 * Time accounting from the reads the loop makes anyway: wait_ns runs from
 * the read before a waiting poll to the read after it; busy_ns runs from
 * the end of one wait (or the first poll of a run) to the start of the next
 * wait or the end of the iteration.
 */
static void account(loop_t *loop, uint64_t until, bool restart)
{
    if (loop->busy_valid)
        loop->stats.busy_ns += until - loop->busy_start;
    if (loop->busy_valid || restart) {
        loop->busy_start = until;
        loop->busy_valid = true;
    }
}

/* Step 1: how long the poll may wait; -1 is forever. */
static int64_t poll_timeout(loop_t *loop, int64_t cap)
{
    if (loop__ready_count(loop) || loop->stop_requested || !alive(loop))
        return 0;
    loop__heap_settle(loop);
    uint64_t when = loop__heap_next(loop);
    int64_t t = -1;
    if (when != LOOP__NEVER) {
        uint64_t now = fresh_now(loop); /* wait from now, not from the iteration's start */
        uint64_t d = when > now ? loop__deadline(when - now, loop->timer_slack) : 0;
        t = d > INT64_MAX ? INT64_MAX : (int64_t)d;
    }
    if (cap >= 0 && (t < 0 || t > cap))
        t = cap;
    return t;
}

/*
 * By default (not strict_poll), while callbacks are ready anyway, the
 * zero-timeout poll and its clock read are skipped until poll_interval
 * callbacks have run since the last poll: a call_soon chain then runs at
 * queue speed, and I/O and timers wait at most that many callbacks.
 */
static bool may_skip_poll(const loop_t *loop)
{
    return loop__ready_count(loop) && loop->unpolled < loop->poll_interval && !loop->stop_requested;
}

/* The eventfd fired: take the threadsafe calls (see run_ready) and signals. */
static int take_wakeups(loop_t *loop, bool direct)
{
    int err = loop__wakeup_drain(loop, direct);
    int serr = loop__signal_collect(loop);
    if (serr)
        loop__wakeup_signal(loop); /* the rest of the signals at the next iteration */
    return err ? err : serr;
}

/* Steps 2 and 3: wait for timeout, then queue fd events and wake-ups. */
static int wait_and_queue_io(loop_t *loop, int64_t timeout)
{
    uint64_t start = loop->mark;
    bool woken = false;
    bool direct = loop__ready_count(loop) == 0; /* then fd handlers come first anyway */
    int err;
    if (loop->clock.kind == LOOP_CLOCK_VIRTUAL) {
        /* Never sleep while virtual time can jump instead; block only when
         * no timer can ever fire (then only fds can wake the loop). */
        err = loop__io_poll(loop, timeout < 0 ? -1 : 0, 0, &woken, direct);
        if (timeout > 0 && !err)
            loop->clock.now = loop__deadline(loop->clock.now, (uint64_t)timeout);
    } else {
        err =
            loop__io_poll(loop, timeout, timeout > 0 ? loop__deadline(start, (uint64_t)timeout) : 0,
                          &woken, direct);
        loop->clock.now = loop__clock_read(loop);
    }
    loop->mark_fresh = false;
    if (timeout) {
        loop->stats.wait_ns += loop->clock.now - start;
        loop->busy_start = loop->clock.now;
        loop->busy_valid = true;
    } else {
        account(loop, loop->clock.now, true);
    }
    /* A post can be queued before its eventfd write comes: another thread
     * made the queue non-empty and has not written yet.  Posts of this
     * thread made meanwhile found the queue non-empty and wrote nothing,
     * yet they are due in this iteration; so take whatever is queued. */
    if ((woken || loop__wakeup_pending(loop)) && !err)
        err = take_wakeups(loop, direct);
    return err;
}

/* Steps 1-3; 1 if it polled, 0 if it skipped the poll, or an error. */
static int poll_io(loop_t *loop, int64_t cap)
{
    if (may_skip_poll(loop))
        return 0;
    loop->unpolled = 0;
    loop->stats.polls++;
    int64_t timeout = poll_timeout(loop, cap);
    if (timeout)
        account(loop, fresh_now(loop), false);
    int err = wait_and_queue_io(loop, timeout);
    return err < 0 ? err : 1;
}

/* A queued entry with a generation: a cancellable callback or a dispatch. */
static void run_checked(loop_t *loop, loop_fn *fn, void *arg, uint32_t ref, uint32_t gen)
{
    if (fn) {
        if (loop__slot_take(loop, ref, gen))
            loop__run_callback(loop, fn, arg);
        return;
    }
    unsigned kind = (unsigned)(uintptr_t)arg;
    if (kind == LOOP__DISPATCH_SIGNAL)
        loop__signal_dispatch(loop, (int)ref, gen);
    else
        loop__io_dispatch(loop, (int)ref, kind, gen);
}

/* Run the n oldest entries; whatever they queue waits for a later call. */
static inline void run_n(loop_t *loop, uint32_t n)
{
    for (; n; n--) {
        /* Read the entry out first: the callback may move the ring. */
        const struct loop__ready *e = loop__ready_pop(loop);
        loop_fn *fn = e->fn;
        void *arg = e->arg;
        if (e->gen)
            run_checked(loop, fn, arg, e->ref, e->gen);
        else
            loop__run_callback(loop, fn, arg);
    }
}

/* Would the next iteration skip its poll and find no timer due? */
static bool next_is_only_callbacks(const loop_t *loop)
{
    return may_skip_poll(loop) && !loop__timer_due(loop) && !loop->nhooks;
}

/*
 * Step 5: run the snapshot.  With chain set (inside loop_run), while the
 * next iteration would only run callbacks (no poll, no timer due, no
 * hook), it follows at once, here: a call_soon chain runs at queue speed.
 */
static void run_ready(loop_t *loop, bool chain)
{
    /*
     * fd events and threadsafe calls the poll kept for direct dispatch are
     * the snapshot's head: the queue was empty when the loop polled, so
     * signals, due timers and whatever the hooks queued all come after
     * them.  They run first, in that order, then exactly the entries
     * queued before they ran.
     */
    uint32_t n = loop__ready_count(loop);
    loop->unpolled += n;
    loop->stats.iterations++;
    if (loop->io.npending)
        loop->unpolled += loop__io_run_pending(loop);
    if (loop->wakeup.ntaken)
        loop->unpolled += loop__wakeup_run_taken(loop);
    run_n(loop, n);
    while (chain && next_is_only_callbacks(loop)) {
        n = loop__ready_count(loop);
        loop->unpolled += n;
        loop->stats.iterations++;
        run_n(loop, n);
    }
}

/* The end of an iteration's (or a run's) work: account for it, and keep
 * the read fresh for the next poll's timeout. */
static void end_busy(loop_t *loop)
{
    loop->mark = loop__clock_read(loop);
    loop->mark_fresh = true;
    account(loop, loop->mark, false);
}

/*
 * One iteration.  The hooks run in every iteration, whether or not it
 * polls: a host loop driven by them (see loop_on_iteration_end) sees each
 * iteration's fd events in that same iteration.
 */
static int iterate(loop_t *loop, int64_t cap, bool once)
{
    run_hook(loop, LOOP__HOOK_BEFORE_POLL);
    int polled = poll_io(loop, cap); /* steps 1-3: timeout, wait, queue I/O */
    run_hook(loop, LOOP__HOOK_AFTER_POLL);
    int err = polled < 0 ? polled : 0;
    if (!err && loop__timer_due(loop))
        err = loop__timers_expire(loop); /* step 4: queue due timers */
    run_ready(loop, !once);              /* step 5: run what is queued */
    run_hook(loop, LOOP__HOOK_END);
    loop__ready_trim(loop);
    if (polled)
        end_busy(loop);
    else
        loop->mark_fresh = false; /* callbacks ran since the last read */
    return err < 0 ? err : polled;
}

static int run(loop_t *loop, int64_t cap, bool once)
{
    if (!loop)
        return -EINVAL;
    if (loop->running)
        return -EBUSY;
    loop->running = 1;
    loop->mark_fresh = false; /* time passed outside */
    loop->busy_valid = false;
    int r = 0;
    if (once || alive(loop) || loop->stop_requested) {
        do
            r = iterate(loop, cap, once);
        while (!once && r >= 0 && !loop->stop_requested && alive(loop));
        if (r == 0)
            end_busy(loop); /* the last iteration skipped its poll */
    }
    if (r >= 0)
        loop->stop_requested = 0;
    loop->running = 0;
    return r < 0 ? r : 0;
}

int loop_run(loop_t *loop)
{
    return run(loop, -1, false);
}

int loop_run_once(loop_t *loop, int64_t max_wait_ns)
{
    return run(loop, max_wait_ns < 0 ? -1 : max_wait_ns, true);
}
