/*
 * Slots: the slab behind loop_handle.  Free slots form a LIFO list through
 * slot.pos, so a freed slot is reused first and the slab only grows when
 * every slot is live.  Generations make reuse safe: see internal.h.
 */
#include "internal.h"

#include <errno.h>

void loop__slot_release(loop_t *loop, uint32_t i)
{
    struct loop__slot *s = &loop->slots[i];
    s->gen++; /* odd (live) -> even (free): every handle to it goes stale */
    s->pos = loop->free_slot;
    loop->free_slot = i;
    loop->live_slots--;
    if (i < loop->stale_cap)
        loop->stale[i] = 0; /* its ring entries are stale by generation now */
}

/* The live slot a handle names, or NULL. */
struct loop__slot *loop__slot_get(loop_t *loop, loop_handle h, uint32_t *index)
{
    uint32_t i = (uint32_t)h.id, gen = (uint32_t)(h.id >> 32);
    if (i >= loop->nslots || !(gen & 1) || loop->slots[i].gen != gen)
        return NULL;
    *index = i;
    return &loop->slots[i];
}

loop_handle loop__slot_handle(const loop_t *loop, uint32_t i)
{
    return (loop_handle){(uint64_t)loop->slots[i].gen << 32 | i};
}

/* The side array of periods grows to the slab's size on first use. */
int loop__slot_set_period(loop_t *loop, uint32_t i, uint64_t period)
{
    uint32_t old = loop->periods_cap;
    if (i >= old) {
        int err = loop__grow(loop, (void **)&loop->periods, &loop->periods_cap,
                             sizeof(*loop->periods), loop->slots_cap);
        if (err)
            return err;
        for (uint32_t k = old; k < loop->periods_cap; k++)
            loop->periods[k] = 0;
    }
    loop->periods[i] = period;
    return 0;
}

/*
 * A queued one-shot goes back into the heap (loop_reschedule): its entry
 * in the ring must not run it, even if it is queued again in the same
 * iteration, when the generation check alone would pass.  Entries it left
 * behind always precede a newer one, so the run phase skips as many as are
 * counted here.
 */
int loop__slot_leave_ring(loop_t *loop, uint32_t i)
{
    uint32_t old = loop->stale_cap;
    if (i >= old) {
        int err = loop__grow(loop, (void **)&loop->stale, &loop->stale_cap, sizeof(*loop->stale),
                             loop->slots_cap);
        if (err)
            return err;
        for (uint32_t k = old; k < loop->stale_cap; k++)
            loop->stale[k] = 0;
    }
    loop->stale[i]++;
    return 0;
}

void loop__slots_free(loop_t *loop)
{
    loop__realloc(loop, loop->stale, 0);
    loop->stale = NULL;
    loop->stale_cap = 0;
    loop__realloc(loop, loop->periods, 0);
    loop->periods = NULL;
    loop->periods_cap = 0;
    loop__realloc(loop, loop->slots, 0);
    loop->slots = NULL;
    loop->nslots = loop->slots_cap = loop->live_slots = 0;
    loop->free_slot = UINT32_MAX;
}

int loop_cancel(loop_t *loop, loop_handle h)
{
    if (!loop)
        return -EINVAL;
    uint32_t i;
    struct loop__slot *s = loop__slot_get(loop, h, &i);
    if (!s)
        return -ENOENT;
    /* A queued copy in the ready ring goes stale with the generation. */
    if (s->pos != LOOP__QUEUED)
        loop__heap_remove(loop, s->pos);
    loop__slot_release(loop, i);
    return 0;
}
