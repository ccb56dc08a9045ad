/*
 * Slow-callback reports: with a threshold set, every callback is timed on
 * CLOCK_MONOTONIC and those that ran at least that long are reported.
 */
#include "callback.h"
#include "clock.h"

#include <errno.h>

int loop_set_slow_callback(loop_t *loop, uint64_t threshold_ns, loop_slow_fn *fn, void *arg)
{
    if (!loop)
        return -EINVAL;
    loop->slow.ns = fn ? threshold_ns : 0;
    loop->slow.fn = fn;
    loop->slow.arg = arg;
    return 0;
}

static void report_slow(loop_t *loop, loop_slow_info *info, uint64_t start)
{
    info->ns = loop__monotonic_ns() - start;
    if (info->ns >= loop->slow.ns && loop->slow.fn)
        loop->slow.fn(loop, info, loop->slow.arg);
}

void loop__run_timed(loop_t *loop, loop_fn *fn, void *arg)
{
    uint64_t start = loop__monotonic_ns();
    fn(loop, arg);
    report_slow(loop, &(loop_slow_info){.fn = fn, .arg = arg, .fd = -1}, start);
}

void loop__run_io_timed(loop_t *loop, loop_io_fn *fn, int fd, unsigned events, void *arg)
{
    uint64_t start = loop__monotonic_ns();
    fn(loop, fd, events, arg);
    report_slow(loop, &(loop_slow_info){.io_fn = fn, .arg = arg, .fd = fd}, start);
}
