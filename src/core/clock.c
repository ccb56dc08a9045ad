/* The loop's clock: CLOCK_MONOTONIC in nanoseconds, or a virtual one. */
#include "clock.h"

#include <errno.h>

uint64_t loop_now(const loop_t *loop)
{
    return loop ? loop->clock.now : 0;
}

void loop_update_time(loop_t *loop)
{
    if (loop)
        loop->clock.now = loop__clock_read(loop);
}

int loop_advance(loop_t *loop, uint64_t ns)
{
    if (!loop || loop->clock.kind != LOOP_CLOCK_VIRTUAL)
        return -EINVAL;
    loop->clock.now = loop__deadline(loop->clock.now, ns);
    return 0;
}
