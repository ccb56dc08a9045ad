/*
 * Slots (handles.c): the slab behind loop_handle.  A scheduled callback
 * that can be cancelled holds a slot; its generation is odd while it is
 * live and even while it is free.
 */
#ifndef LOOP_CORE_HANDLES_H
#define LOOP_CORE_HANDLES_H

#include "alloc.h"

void loop__slots_init(loop_t *loop);
void loop__slots_free(loop_t *loop);
void loop__slot_release(loop_t *loop, uint32_t index);
struct loop__slot *loop__slot_get(loop_t *loop, loop_handle h, uint32_t *index);
loop_handle loop__slot_handle(const loop_t *loop, uint32_t index);
int loop__slot_set_period(loop_t *loop, uint32_t index, uint64_t period);
int loop__slot_leave_ring(loop_t *loop, uint32_t index);
void loop__slot_stay_in_ring(loop_t *loop, uint32_t index);

/* A live slot for fn and arg, LOOP__QUEUED: the free list first, else the
 * slab grows.  Inline: every call_later and handle-taking call_soon. */
static inline int loop__slot_new(loop_t *loop, loop_fn *fn, void *arg, uint32_t *index)
{
    struct loop__slots *sl = &loop->slots;
    uint32_t i = sl->free;
    if (i != UINT32_MAX) {
        sl->free = sl->v[i].pos;
    } else {
        if (sl->n == UINT32_MAX - 1) /* UINT32_MAX is the list's end */
            return -ENOMEM;
        int err = loop__grow(loop, (void **)&sl->v, &sl->cap, sizeof(*sl->v), sl->n + 1);
        if (err)
            return err;
        i = sl->n++;
        sl->v[i].gen = 0;
    }
    struct loop__slot *s = &sl->v[i];
    s->gen++; /* even (free) -> odd (live) */
    s->fn = fn;
    s->arg = arg;
    s->pos = LOOP__QUEUED;
    if (i < sl->periods_cap)
        sl->periods[i] = 0; /* slots past the array are one-shot anyway */
    sl->live++;
    *index = i;
    return 0;
}

static inline uint64_t loop__slot_period(const loop_t *loop, uint32_t index)
{
    return index < loop->slots.periods_cap ? loop->slots.periods[index] : 0;
}

/*
 * A ring entry of slot ref, queued at generation gen, comes up: should it
 * run?  Not if it was cancelled or rescheduled since; a one-shot that runs
 * gives its slot back first.
 */
static inline bool loop__slot_take(loop_t *loop, uint32_t ref, uint32_t gen)
{
    struct loop__slots *sl = &loop->slots;
    struct loop__slot *s = &sl->v[ref];
    if (s->gen != gen)
        return false; /* cancelled after it was queued */
    if (ref < sl->stale_cap && sl->stale[ref]) {
        sl->stale[ref]--; /* rescheduled after it was queued */
        return false;
    }
    if (s->pos == LOOP__QUEUED)
        loop__slot_release(loop, ref); /* one-shot: it has run */
    return true;
}

#endif
