/*
 * Lifecycle and the iteration.  One iteration is asyncio's _run_once:
 * choose a timeout, poll, queue I/O, queue due timers, run the snapshot.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *loop__realloc(loop_t *loop, void *ptr, size_t size)
{
    if (loop->realloc)
        return loop->realloc(loop->alloc_ctx, ptr, size);
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, size);
}

/* Grow *arr (of *cap elements) by doubling until it holds need elements. */
int loop__grow(loop_t *loop, void **arr, uint32_t *cap, size_t elem, uint32_t need)
{
    if (need <= *cap)
        return 0;
    uint64_t ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    if (ncap > UINT32_MAX || ncap > SIZE_MAX / elem)
        return -ENOMEM;
    void *p = loop__realloc(loop, *arr, (size_t)ncap * elem);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = (uint32_t)ncap;
    return 0;
}

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
    loop->strict_poll = opts->strict_poll;
    loop->poll_interval = opts->poll_interval ? opts->poll_interval : LOOP__POLL_INTERVAL;
    loop->clock = opts->clock;
    loop->free_slot = UINT32_MAX;
    loop->now = loop__clock_read(loop);

    int err = loop__io_init(loop);
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
    loop__io_free(loop);
    loop__ready_free(loop);
    loop__heap_free(loop);
    loop__slots_free(loop);
    loop__realloc(loop, loop, 0);
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

/* Could anything ever run a callback again? */
static bool alive(const loop_t *loop)
{
    return loop->ring_count || loop->nheap || loop->nwatched || loop->refs;
}

/* Phase 1: how long the poll may wait; -1 is forever. */
static int64_t poll_timeout(loop_t *loop, int64_t cap)
{
    if (loop->ring_count || loop->stop_requested || !alive(loop))
        return 0;
    uint64_t when = loop__heap_next(loop);
    int64_t t = -1;
    if (when != LOOP__NEVER) {
        if (loop->clock == LOOP_CLOCK_MONOTONIC)
            loop->now = loop__clock_read(loop); /* wait from now, not the iteration's start */
        uint64_t d = when > loop->now ? when - loop->now : 0;
        t = d > INT64_MAX ? INT64_MAX : (int64_t)d;
    }
    if (cap >= 0 && (t < 0 || t > cap))
        t = cap;
    return t;
}

/*
 * Phase 2, with the default (non-strict) shortcut: while callbacks are
 * ready anyway, the zero-timeout poll and the clock read are skipped until
 * poll_interval callbacks have run since the last poll.
 */
static int poll_io(loop_t *loop, int64_t timeout)
{
    if (timeout == 0 && loop->ring_count && !loop->strict_poll &&
        loop->unpolled < loop->poll_interval && !loop->stop_requested)
        return 0;
    loop->unpolled = 0;

    int err;
    if (loop->clock == LOOP_CLOCK_VIRTUAL) {
        /* Never sleep while virtual time can jump instead; block only when
         * no timer can ever fire (then only fds can wake the loop). */
        err = loop__io_poll(loop, timeout < 0 ? -1 : 0);
        if (timeout > 0 && !err)
            loop->now = loop__deadline(loop->now, (uint64_t)timeout);
        return err;
    }
    err = loop__io_poll(loop, timeout);
    loop->now = loop__clock_read(loop);
    return err;
}

static int iterate(loop_t *loop, int64_t cap)
{
    int err = poll_io(loop, poll_timeout(loop, cap)); /* phases 1-3 */
    if (!err)
        err = loop__timers_expire(loop);                /* phase 4 */
    uint32_t n = loop->ring_count;                      /* phase 5: the snapshot */
    loop->unpolled += n;
    loop__ready_run(loop, n);
    return err;
}

static int run(loop_t *loop, int64_t cap, bool once)
{
    if (!loop)
        return -EINVAL;
    if (loop->running)
        return -EBUSY;
    loop->running = 1;
    int err = 0;
    if (once || alive(loop) || loop->stop_requested) {
        do
            err = iterate(loop, cap);
        while (!once && !err && !loop->stop_requested && alive(loop));
    }
    if (!err)
        loop->stop_requested = 0;
    loop->running = 0;
    return err;
}

int loop_run(loop_t *loop)
{
    return run(loop, -1, false);
}

int loop_run_once(loop_t *loop, int64_t max_wait_ns)
{
    return run(loop, max_wait_ns < 0 ? -1 : max_wait_ns, true);
}
