/*
 * Running one user callback (callback.c): counting it, and timing it when
 * slow callbacks are reported.  A leaf module.
 */
#ifndef LOOP_CORE_CALLBACK_H
#define LOOP_CORE_CALLBACK_H

#include "internal.h"

void loop__run_timed(loop_t *loop, loop_fn *fn, void *arg);
void loop__run_io_timed(loop_t *loop, loop_io_fn *fn, int fd, unsigned events, void *arg);

static inline void loop__run_callback(loop_t *loop, loop_fn *fn, void *arg)
{
    loop->stats.callbacks++;
    if (__builtin_expect(loop->slow.ns != 0, 0))
        loop__run_timed(loop, fn, arg);
    else
        fn(loop, arg);
}

static inline void loop__run_io(loop_t *loop, loop_io_fn *fn, int fd, unsigned events, void *arg)
{
    loop->stats.callbacks++;
    if (__builtin_expect(loop->slow.ns != 0, 0))
        loop__run_io_timed(loop, fn, fd, events, arg);
    else
        fn(loop, fd, events, arg);
}

#endif
