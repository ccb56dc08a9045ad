/* The loop's clock: CLOCK_MONOTONIC in nanoseconds, or a virtual one. */
#include "internal.h"

#include <errno.h>
#include <time.h>

uint64_t loop__clock_read(const loop_t *loop)
{
    if (loop->clock == LOOP_CLOCK_VIRTUAL)
        return loop->now;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for this clock id */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* base + delay, saturating at LOOP__NEVER rather than wrapping. */
uint64_t loop__deadline(uint64_t base, uint64_t delay)
{
    return delay > LOOP__NEVER - base ? LOOP__NEVER : base + delay;
}

uint64_t loop_now(const loop_t *loop)
{
    return loop ? loop->now : 0;
}

void loop_update_time(loop_t *loop)
{
    if (loop)
        loop->now = loop__clock_read(loop);
}

int loop_advance(loop_t *loop, uint64_t ns)
{
    if (!loop || loop->clock != LOOP_CLOCK_VIRTUAL)
        return -EINVAL;
    loop->now = loop__deadline(loop->now, ns);
    return 0;
}
