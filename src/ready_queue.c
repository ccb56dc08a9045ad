/*
 * The ready queue: a ring of (fn, arg, ref, gen) whose capacity is a power
 * of two, grown by doubling and never shrunk, so steady state allocates
 * nothing.  Cancelled entries stay in the ring and are skipped when their
 * turn comes (their slot generation no longer matches): cancel is O(1).
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

int loop__ready_reserve(loop_t *loop, uint32_t more)
{
    uint32_t old = loop->ring_cap;
    if (more > UINT32_MAX - loop->ring_count)
        return -ENOMEM;
    int err = loop__grow(loop, (void **)&loop->ring, &loop->ring_cap, sizeof(*loop->ring),
                         loop->ring_count + more);
    if (err || old == loop->ring_cap)
        return err;
    /* Unwrap: entries that wrapped past the old end move past it. */
    uint32_t head = loop->ring_head;
    if (head + loop->ring_count > old) {
        uint32_t wrapped = head + loop->ring_count - old;
        memcpy(loop->ring + old, loop->ring, wrapped * sizeof(*loop->ring));
    }
    return 0;
}

int loop__ready_push(loop_t *loop, loop_fn *fn, void *arg, uint32_t ref, uint32_t gen)
{
    if (loop->ring_count == loop->ring_cap) {
        int err = loop__ready_reserve(loop, 1);
        if (err)
            return err;
    }
    uint32_t tail = (loop->ring_head + loop->ring_count) & (loop->ring_cap - 1);
    loop->ring[tail] = (struct loop__ready){fn, arg, ref, gen};
    loop->ring_count++;
    return 0;
}

/* Run the n oldest entries; whatever they queue waits for the next call. */
void loop__ready_run(loop_t *loop, uint32_t n)
{
    while (n--) {
        /* Copy out first: the callback may grow (and so move) the ring. */
        struct loop__ready e = loop->ring[loop->ring_head];
        loop->ring_head = (loop->ring_head + 1) & (loop->ring_cap - 1);
        loop->ring_count--;
        if (!e.fn) {
            unsigned kind = (unsigned)(uintptr_t)e.arg;
            if (kind == LOOP__DISPATCH_SIGNAL)
                loop__signal_dispatch(loop, (int)e.ref, e.gen);
            else
                loop__io_dispatch(loop, (int)e.ref, kind, e.gen);
            continue;
        }
        if (e.gen) {
            struct loop__slot *s = &loop->slots[e.ref];
            if (s->gen != e.gen)
                continue; /* cancelled after it was queued */
            if (s->pos == LOOP__QUEUED)
                loop__slot_release(loop, e.ref); /* one-shot: it has run */
        }
        loop__run_callback(loop, e.fn, e.arg);
    }
}

void loop__ready_free(loop_t *loop)
{
    loop__realloc(loop, loop->ring, 0);
    loop->ring = NULL;
    loop->ring_head = loop->ring_count = loop->ring_cap = 0;
}

int loop_call_soon(loop_t *loop, loop_fn *fn, void *arg, loop_handle *out)
{
    if (out)
        *out = (loop_handle){0};
    if (!loop || !fn)
        return -EINVAL;
    if (!out)
        return loop__ready_push(loop, fn, arg, 0, 0);

    uint32_t i;
    int err = loop__slot_new(loop, fn, arg, &i);
    if (err)
        return err;
    err = loop__ready_push(loop, fn, arg, i, loop->slots[i].gen);
    if (err) {
        loop__slot_release(loop, i);
        return err;
    }
    *out = loop__slot_handle(loop, i);
    return 0;
}
