/*
 * Pending timers (timer_heap.c): a min-heap of (deadline, sequence, slot).
 * Each slot holds its heap position (slot.pos), so removal is O(log n).
 */
#ifndef LOOP_CORE_TIMER_HEAP_H
#define LOOP_CORE_TIMER_HEAP_H

#include "handles.h"

int loop__heap_push(loop_t *loop, uint64_t when, uint32_t slot);
void loop__heap_remove(loop_t *loop, uint32_t pos);
void loop__heap_reschedule(loop_t *loop, uint32_t pos, uint64_t when);
void loop__heap_settle(loop_t *loop);
int loop__timers_expire(loop_t *loop);
void loop__heap_free(loop_t *loop);

/* The earliest deadline as the heap stands (settle it first to sleep on
 * it), or LOOP__NEVER. */
static inline uint64_t loop__heap_next(const loop_t *loop)
{
    return loop->timers.n ? loop->timers.heap[0].when : LOOP__NEVER;
}

static inline bool loop__timer_due(const loop_t *loop)
{
    return loop->timers.n && loop->timers.heap[0].when <= loop->clock.now;
}

#endif
