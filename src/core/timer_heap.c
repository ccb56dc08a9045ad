/*
 * Timers: a binary min-heap of (deadline, sequence, slot).  The sequence
 * number is the schedule order, so equal deadlines pop in the order they
 * were scheduled.  Each slot remembers its heap position, which makes
 * cancel O(log n).  Entries carry their keys inline so that sifting never
 * touches the slots except to record moves.
 *
 * Pushing a deadline back (the idle-timeout pattern: every bit of activity
 * moves the timeout later) is O(1): the new key is noted in a side array,
 * `later`, and the entry is re-keyed only when its old deadline reaches the
 * top of the heap.  The sequence number is taken when the call is made, so
 * ties still order as if the entry had moved at once.  A deadline brought
 * forward moves at once.
 */
#include "internal.h"

#include <errno.h>

static bool before(const struct loop__timer *a, const struct loop__timer *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void place(loop_t *loop, uint32_t pos, struct loop__timer t)
{
    loop->heap[pos] = t;
    loop->slots[t.slot].pos = pos;
}

static void sift_up(loop_t *loop, uint32_t pos, struct loop__timer t)
{
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!before(&t, &loop->heap[parent]))
            break;
        place(loop, pos, loop->heap[parent]);
        pos = parent;
    }
    place(loop, pos, t);
}

static void sift_down(loop_t *loop, uint32_t pos, struct loop__timer t)
{
    uint32_t n = loop->nheap;
    for (;;) {
        uint32_t child = 2 * pos + 1;
        if (child >= n)
            break;
        if (child + 1 < n && before(&loop->heap[child + 1], &loop->heap[child]))
            child++;
        if (!before(&loop->heap[child], &t))
            break;
        place(loop, pos, loop->heap[child]);
        pos = child;
    }
    place(loop, pos, t);
}

static inline int heap_push(loop_t *loop, uint64_t when, uint32_t slot)
{
    int err = loop__grow(loop, (void **)&loop->heap, &loop->heap_cap, sizeof(*loop->heap),
                         loop->nheap + 1);
    if (err)
        return err;
    struct loop__timer t = {when, loop->timer_seq++, slot};
    sift_up(loop, loop->nheap++, t);
    return 0;
}

static bool has_later(const loop_t *loop, uint32_t slot)
{
    return slot < loop->later_cap && loop->later[slot].when;
}

static void clear_later(loop_t *loop, uint32_t slot)
{
    if (slot < loop->later_cap)
        loop->later[slot].when = 0;
}

/* Note a later deadline for slot; false if the side array cannot grow. */
static bool set_later(loop_t *loop, uint32_t slot, uint64_t when)
{
    uint32_t old = loop->later_cap;
    if (slot >= old) {
        if (loop__grow(loop, (void **)&loop->later, &loop->later_cap, sizeof(*loop->later),
                       loop->slots_cap))
            return false;
        for (uint32_t k = old; k < loop->later_cap; k++)
            loop->later[k].when = 0;
    }
    loop->later[slot] = (struct loop__later){when, loop->timer_seq++};
    return true;
}

/* The top's deadline was pushed back: give it its real key. */
static void rekey_top(loop_t *loop)
{
    uint32_t slot = loop->heap[0].slot;
    struct loop__later l = loop->later[slot];
    loop->later[slot].when = 0;
    sift_down(loop, 0, (struct loop__timer){l.when, l.seq, slot});
}

/* Before the earliest deadline is used to sleep: make it a real one. */
void loop__heap_settle(loop_t *loop)
{
    while (loop->nheap && has_later(loop, loop->heap[0].slot))
        rekey_top(loop);
}

void loop__heap_remove(loop_t *loop, uint32_t pos)
{
    clear_later(loop, loop->heap[pos].slot);
    struct loop__timer last = loop->heap[--loop->nheap];
    if (pos == loop->nheap)
        return;
    if (pos > 0 && before(&last, &loop->heap[(pos - 1) / 2]))
        sift_up(loop, pos, last);
    else
        sift_down(loop, pos, last);
}

/* Give the entry at pos a new deadline, as if scheduled anew (it goes after
 * equal deadlines already pending), and restore the heap order. */
void loop__heap_move(loop_t *loop, uint32_t pos, uint64_t when)
{
    struct loop__timer t = {when, loop->timer_seq++, loop->heap[pos].slot};
    if (pos > 0 && before(&t, &loop->heap[(pos - 1) / 2]))
        sift_up(loop, pos, t);
    else
        sift_down(loop, pos, t);
}

uint64_t loop__heap_next(const loop_t *loop)
{
    return loop->nheap ? loop->heap[0].when : LOOP__NEVER;
}

/*
 * Phase 4: queue every timer due by loop_now(), in (deadline, sequence)
 * order.  A repeating timer is re-armed as it is queued, at its previous
 * deadline plus its period, or now plus its period if that is past already:
 * a stalled loop gets one run, not a burst.  If the ring cannot grow, the
 * rest stay in the heap, due, for the next iteration.
 */
int loop__timers_expire(loop_t *loop)
{
    uint64_t now = loop->now;
    while (loop->nheap && loop->heap[0].when <= now && loop->heap[0].when != LOOP__NEVER) {
        if (has_later(loop, loop->heap[0].slot)) {
            rekey_top(loop);
            continue;
        }
        int err = loop__ready_reserve(loop, 1);
        if (err)
            return err;
        struct loop__timer top = loop->heap[0];
        struct loop__slot *s = &loop->slots[top.slot];
        uint64_t period = loop__slot_period(loop, top.slot);
        if (period) {
            uint64_t next = loop__deadline(top.when, period);
            if (next <= now)
                next = loop__deadline(now, period);
            sift_down(loop, 0, (struct loop__timer){next, loop->timer_seq++, top.slot});
        } else {
            loop__heap_remove(loop, 0);
            s->pos = LOOP__QUEUED;
        }
        loop__ready_put(loop, s->fn, s->arg, top.slot, s->gen);
    }
    return 0;
}

void loop__heap_free(loop_t *loop)
{
    loop__realloc(loop, loop->later, 0);
    loop->later = NULL;
    loop->later_cap = 0;
    loop__realloc(loop, loop->heap, 0);
    loop->heap = NULL;
    loop->nheap = loop->heap_cap = 0;
}

static inline int schedule(loop_t *loop, uint64_t when, uint64_t period, loop_fn *fn, void *arg,
                           loop_handle *out)
{
    uint32_t i;
    int err = loop__slot_new(loop, fn, arg, &i);
    if (err)
        return err;
    if (period)
        err = loop__slot_set_period(loop, i, period);
    if (!err)
        err = heap_push(loop, when, i);
    if (err) {
        loop__slot_release(loop, i);
        return err;
    }
    if (out)
        *out = loop__slot_handle(loop, i);
    return 0;
}

int loop_call_at(loop_t *loop, uint64_t when_ns, loop_fn *fn, void *arg, loop_handle *out)
{
    if (out)
        *out = (loop_handle){0};
    if (!loop || !fn)
        return -EINVAL;
    return schedule(loop, when_ns, 0, fn, arg, out);
}

int loop_call_later(loop_t *loop, uint64_t delay_ns, loop_fn *fn, void *arg, loop_handle *out)
{
    if (out)
        *out = (loop_handle){0};
    if (!loop || !fn)
        return -EINVAL;
    uint64_t when = loop__deadline(loop__clock_read(loop), delay_ns);
    return schedule(loop, when, 0, fn, arg, out);
}

int loop_call_every(loop_t *loop, uint64_t period_ns, loop_fn *fn, void *arg, loop_handle *out)
{
    if (out)
        *out = (loop_handle){0};
    if (!loop || !fn || !period_ns)
        return -EINVAL;
    uint64_t when = loop__deadline(loop__clock_read(loop), period_ns);
    return schedule(loop, when, period_ns, fn, arg, out);
}

/*
 * Move a pending callback to a new deadline in place: at most one sift
 * instead of a cancel and a schedule (two sifts, a slot freed and taken
 * again), and none when the deadline moves later.  A one-shot already
 * queued in this iteration goes back into the heap, and its queued run is
 * dropped (see run_checked in ready_queue.c).
 */
int loop_reschedule_at(loop_t *loop, loop_handle h, uint64_t when_ns)
{
    if (!loop)
        return -EINVAL;
    uint32_t i;
    struct loop__slot *s = loop__slot_get(loop, h, &i);
    if (!s)
        return -ENOENT;
    if (s->pos != LOOP__QUEUED) {
        if (when_ns > loop->heap[s->pos].when && set_later(loop, i, when_ns))
            return 0;
        clear_later(loop, i);
        loop__heap_move(loop, s->pos, when_ns);
        return 0;
    }
    int err = loop__slot_leave_ring(loop, i);
    if (!err) {
        err = heap_push(loop, when_ns, i);
        if (err)
            loop->stale[i]--; /* still queued, as before the call */
    }
    return err;
}

int loop_reschedule(loop_t *loop, loop_handle h, uint64_t delay_ns)
{
    if (!loop)
        return -EINVAL;
    return loop_reschedule_at(loop, h, loop__deadline(loop__clock_read(loop), delay_ns));
}
