/*
 * Lifecycle and the iteration.  One iteration is asyncio's _run_once:
 * choose a timeout, poll, queue I/O, queue due timers, run the snapshot.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
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
    memset(loop, 0, offsetof(loop_t, events));
    loop->realloc = opts->realloc;
    loop->alloc_ctx = opts->alloc_ctx;
    /* Strict is a budget of no callbacks between polls: one test, not two. */
    loop->poll_interval = opts->poll_interval ? opts->poll_interval : LOOP__POLL_INTERVAL;
    if (opts->strict_poll)
        loop->poll_interval = 0;
    if (opts->clock == LOOP_CLOCK_MONOTONIC)
        loop->timer_slack = opts->timer_slack_ns;
    loop->clock = opts->clock;
    loop->free_slot = UINT32_MAX;
    loop->now = loop__clock_read(loop);

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
    return loop ? loop->epfd : -EINVAL;
}

int loop_on_before_poll(loop_t *loop, loop_fn *fn, void *arg)
{
    if (!loop)
        return -EINVAL;
    loop->before_poll = fn;
    loop->before_poll_arg = arg;
    return 0;
}

int loop_on_after_poll(loop_t *loop, loop_fn *fn, void *arg)
{
    if (!loop)
        return -EINVAL;
    loop->after_poll = fn;
    loop->after_poll_arg = arg;
    return 0;
}

int loop_stats(const loop_t *loop, loop_stats_t *out)
{
    if (!loop || !out)
        return -EINVAL;
    *out = loop->stats;
    return 0;
}

int loop_set_slow_callback(loop_t *loop, uint64_t threshold_ns, loop_slow_fn *fn, void *arg)
{
    if (!loop)
        return -EINVAL;
    loop->slow_ns = fn ? threshold_ns : 0;
    loop->slow_fn = fn;
    loop->slow_arg = arg;
    return 0;
}

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void report_slow(loop_t *loop, loop_slow_info *info, uint64_t start)
{
    info->ns = monotonic_ns() - start;
    if (info->ns >= loop->slow_ns && loop->slow_fn)
        loop->slow_fn(loop, info, loop->slow_arg);
}

void loop__run_timed(loop_t *loop, loop_fn *fn, void *arg)
{
    uint64_t start = monotonic_ns();
    fn(loop, arg);
    report_slow(loop, &(loop_slow_info){.fn = fn, .arg = arg, .fd = -1}, start);
}

void loop__run_io_timed(loop_t *loop, loop_io_fn *fn, int fd, unsigned events, void *arg)
{
    uint64_t start = monotonic_ns();
    fn(loop, fd, events, arg);
    report_slow(loop, &(loop_slow_info){.io_fn = fn, .arg = arg, .fd = fd}, start);
}

/* Could anything ever run a callback again? */
static bool alive(loop_t *loop)
{
    return loop__ready_count(loop) || loop->nheap || loop->nwatched || loop->refs ||
           loop->signals || loop__wakeup_pending(loop);
}

int64_t loop_timeout_ns(const loop_t *loop)
{
    if (!loop)
        return -1;
    if (loop__ready_count(loop) || loop->stop_requested || loop->nchanges)
        return 0;
    uint64_t when = loop__heap_next(loop);
    if (when == LOOP__NEVER)
        return -1;
    if (loop->clock == LOOP_CLOCK_VIRTUAL)
        return 0;
    uint64_t now = loop__clock_read(loop);
    uint64_t d = when > now ? when - now : 0;
    return d > INT64_MAX ? INT64_MAX : (int64_t)d;
}

/*
 * The clock, fresh.  The read that ended the previous iteration is still
 * fresh if no user code ran since (a before-poll hook may have): reusing
 * it keeps an iteration of loop_run at two clock reads.
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

/* Phase 1: how long the poll may wait; -1 is forever. */
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

static bool may_skip_poll(const loop_t *loop)
{
    return loop__ready_count(loop) && loop->unpolled < loop->poll_interval && !loop->stop_requested;
}

/*
 * Phases 1-3.  By default (not strict_poll), while callbacks are ready
 * anyway, the zero-timeout poll and its clock read are skipped until
 * poll_interval callbacks have run since the last poll: a call_soon chain
 * then runs at queue speed, and I/O and timers wait at most that many
 * callbacks.  Returns 1 if it polled, 0 if not, or a negative error.
 */
static int poll_phase(loop_t *loop, int64_t cap)
{
    if (may_skip_poll(loop))
        return 0;
    loop->unpolled = 0;
    loop->stats.polls++;
    if (loop->before_poll) {
        loop->before_poll(loop, loop->before_poll_arg);
        loop->mark_fresh = false;
    }

    int64_t timeout = poll_timeout(loop, cap);
    if (timeout)
        account(loop, fresh_now(loop), false);
    uint64_t start = loop->mark;
    int err;
    if (loop->clock == LOOP_CLOCK_VIRTUAL) {
        /* Never sleep while virtual time can jump instead; block only when
         * no timer can ever fire (then only fds can wake the loop). */
        err = loop__io_poll(loop, timeout < 0 ? -1 : 0, 0);
        if (timeout > 0 && !err)
            loop->now = loop__deadline(loop->now, (uint64_t)timeout);
    } else {
        err = loop__io_poll(loop, timeout,
                            timeout > 0 ? loop__deadline(start, (uint64_t)timeout) : 0);
        loop->now = loop__clock_read(loop);
    }
    loop->mark_fresh = false;
    if (timeout) {
        loop->stats.wait_ns += loop->now - start;
        loop->busy_start = loop->now;
        loop->busy_valid = true;
    } else {
        account(loop, loop->now, true);
    }
    if (loop->after_poll)
        loop->after_poll(loop, loop->after_poll_arg);
    return err < 0 ? err : 1;
}

/* The end of an iteration's (or a run's) work: account for it, and keep
 * the read fresh for the next poll's timeout. */
static void end_busy(loop_t *loop)
{
    loop->mark = loop__clock_read(loop);
    loop->mark_fresh = true;
    account(loop, loop->mark, false);
}

static int iterate(loop_t *loop, int64_t cap, bool once)
{
    int polled = poll_phase(loop, cap); /* phases 1-3 */
    int err = polled < 0 ? polled : 0;
    if (!err && loop__timer_due(loop))
        err = loop__timers_expire(loop);    /* phase 4 */
    loop__ready_run_snapshots(loop, !once); /* phase 5 */
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
