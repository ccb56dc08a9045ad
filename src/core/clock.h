/* The loop's clock (clock.c): a leaf module. */
#ifndef LOOP_CORE_CLOCK_H
#define LOOP_CORE_CLOCK_H

#include "internal.h"

#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds: the only place that reads it. */
static inline uint64_t loop__monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for this clock id */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The loop's clock, read now (the virtual clock reads as it stands). */
static inline uint64_t loop__clock_read(const loop_t *loop)
{
    return loop->clock.kind == LOOP_CLOCK_VIRTUAL ? loop->clock.now : loop__monotonic_ns();
}

/* base + delay, saturating at LOOP__NEVER rather than wrapping. */
static inline uint64_t loop__deadline(uint64_t base, uint64_t delay)
{
    return delay > LOOP__NEVER - base ? LOOP__NEVER : base + delay;
}

#endif
