/*
 * Slots: the slab behind loop_handle.  Free slots form a LIFO list through
 * slot.pos, so a freed slot is reused first and the slab only grows when
 * every slot is live.
 *
 * A handle id is (generation << 32 | slot index) ^ key.  A slot's
 * generation is odd while it is live and even while it is free, so a
 * handle is live exactly when its generation equals its slot's: one that
 * already ran or was cancelled is stale even after its slot is reused.
 * The key is this loop's own, drawn when the loop is made, so that a
 * handle of another loop (or any made-up value) decodes to a slot index
 * far out of range or a generation that does not match: it is rejected
 * with -ENOENT, never taken for one of this loop's callbacks.  Its bit 32
 * is clear, which keeps the decoded generation of a live id odd, so no
 * live handle is {0}.
 */
#include "handles.h"

#include <errno.h>

/* splitmix64's finaliser: distinct inputs give distinct, scattered keys. */
static uint64_t mix(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

void loop__slots_init(loop_t *loop)
{
    static uint64_t loops; /* loops made by this process */
    uint64_t n = __atomic_add_fetch(&loops, 1, __ATOMIC_RELAXED);
    loop->slots.free = UINT32_MAX;
    loop->slots.key = mix(n ^ (uint64_t)(uintptr_t)loop) & ~((uint64_t)1 << 32);
}

void loop__slot_release(loop_t *loop, uint32_t i)
{
    struct loop__slots *sl = &loop->slots;
    struct loop__slot *s = &sl->v[i];
    s->gen++; /* odd (live) -> even (free): every handle to it goes stale */
    s->pos = sl->free;
    sl->free = i;
    sl->live--;
    if (i < sl->stale_cap)
        sl->stale[i] = 0; /* its ring entries are stale by generation now */
}

/* The live slot a handle names, or NULL. */
struct loop__slot *loop__slot_get(loop_t *loop, loop_handle h, uint32_t *index)
{
    uint64_t id = h.id ^ loop->slots.key;
    uint32_t i = (uint32_t)id, gen = (uint32_t)(id >> 32);
    if (i >= loop->slots.n || !(gen & 1) || loop->slots.v[i].gen != gen)
        return NULL;
    *index = i;
    return &loop->slots.v[i];
}

loop_handle loop__slot_handle(const loop_t *loop, uint32_t i)
{
    return (loop_handle){((uint64_t)loop->slots.v[i].gen << 32 | i) ^ loop->slots.key};
}

/* The side array of periods grows to the slab's size on first use. */
int loop__slot_set_period(loop_t *loop, uint32_t i, uint64_t period)
{
    struct loop__slots *sl = &loop->slots;
    int err = loop__grow_zero(loop, (void **)&sl->periods, &sl->periods_cap, sizeof(*sl->periods),
                              i < sl->periods_cap ? 0 : sl->cap);
    if (!err)
        sl->periods[i] = period;
    return err;
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
    struct loop__slots *sl = &loop->slots;
    int err = loop__grow_zero(loop, (void **)&sl->stale, &sl->stale_cap, sizeof(*sl->stale),
                              i < sl->stale_cap ? 0 : sl->cap);
    if (!err)
        sl->stale[i]++;
    return err;
}

/* Undo loop__slot_leave_ring: the slot stays queued after all. */
void loop__slot_stay_in_ring(loop_t *loop, uint32_t i)
{
    loop->slots.stale[i]--;
}

void loop__slots_free(loop_t *loop)
{
    struct loop__slots *sl = &loop->slots;
    loop__realloc(loop, sl->stale, 0);
    loop__realloc(loop, sl->periods, 0);
    loop__realloc(loop, sl->v, 0);
    uint64_t key = sl->key;
    *sl = (struct loop__slots){.free = UINT32_MAX, .key = key};
}
