/*
 * The ready queue (ready_queue.c): a FIFO ring of (fn, arg, ref, gen).
 * Entries with gen 0 are plain callbacks; others are checked when their
 * turn comes: a slot's callback against the slot's generation, an fd or
 * signal dispatch (fn NULL, kind in arg) against its registration's.
 */
#ifndef LOOP_CORE_READY_QUEUE_H
#define LOOP_CORE_READY_QUEUE_H

#include "alloc.h"

int loop__ready_reserve(loop_t *loop, uint32_t more);
int loop__ready_push(loop_t *loop, loop_fn *fn, void *arg, uint32_t ref, uint32_t gen);
void loop__ready_trim(loop_t *loop);
void loop__ready_free(loop_t *loop);

static inline uint32_t loop__ready_count(const loop_t *loop)
{
    return loop->ready.tail - loop->ready.head;
}

/* Append to the ring, which the caller made room in (loop__ready_reserve). */
static inline void loop__ready_put(loop_t *loop, loop_fn *fn, void *arg, uint32_t ref, uint32_t gen)
{
    struct loop__ready *e = &loop->ready.v[loop->ready.tail++ & loop->ready.mask];
    e->fn = fn;
    e->arg = arg;
    e->ref = ref;
    e->gen = gen;
}

/* Append with no handle: room permitting, four stores and no call. */
static inline int loop__ready_push_fast(loop_t *loop, loop_fn *fn, void *arg)
{
    if (__builtin_expect(loop->ready.tail - loop->ready.head == loop->ready.cap, 0))
        return loop__ready_push(loop, fn, arg, 0, 0);
    loop__ready_put(loop, fn, arg, 0, 0);
    return 0;
}

/* Take the oldest entry (there must be one).  The pointer is good until
 * the next push: a callback may grow, and so move, the ring. */
static inline const struct loop__ready *loop__ready_pop(loop_t *loop)
{
    return &loop->ready.v[loop->ready.head++ & loop->ready.mask];
}

#endif
