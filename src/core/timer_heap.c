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
#include "timer_heap.h"
#include "clock.h"
#include "ready_queue.h"

#include <errno.h>

static bool before(const struct loop__timer *a, const struct loop__timer *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void place(loop_t *loop, uint32_t pos, struct loop__timer t)
{
    loop->timers.heap[pos] = t;
    loop->slots.v[t.slot].pos = pos;
}

static void sift_up(loop_t *loop, uint32_t pos, struct loop__timer t)
{
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!before(&t, &loop->timers.heap[parent]))
            break;
        place(loop, pos, loop->timers.heap[parent]);
        pos = parent;
    }
    place(loop, pos, t);
}

static void sift_down(loop_t *loop, uint32_t pos, struct loop__timer t)
{
    uint32_t n = loop->timers.n;
    for (;;) {
        uint32_t child = 2 * pos + 1;
        if (child >= n)
            break;
        if (child + 1 < n && before(&loop->timers.heap[child + 1], &loop->timers.heap[child]))
            child++;
        if (!before(&loop->timers.heap[child], &t))
            break;
        place(loop, pos, loop->timers.heap[child]);
        pos = child;
    }
    place(loop, pos, t);
}

int loop__heap_push(loop_t *loop, uint64_t when, uint32_t slot)
{
    int err = loop__grow(loop, (void **)&loop->timers.heap, &loop->timers.cap,
                         sizeof(*loop->timers.heap), loop->timers.n + 1);
    if (err)
        return err;
    struct loop__timer t = {when, loop->timers.seq++, slot};
    sift_up(loop, loop->timers.n++, t);
    return 0;
}

static bool has_later(const loop_t *loop, uint32_t slot)
{
    return slot < loop->timers.later_cap && loop->timers.later[slot].when;
}

static void clear_later(loop_t *loop, uint32_t slot)
{
    if (slot < loop->timers.later_cap)
        loop->timers.later[slot].when = 0;
}

/* Note a later deadline for slot; false if the side array cannot grow. */
static bool set_later(loop_t *loop, uint32_t slot, uint64_t when)
{
    struct loop__timers *t = &loop->timers;
    if (loop__grow_zero(loop, (void **)&t->later, &t->later_cap, sizeof(*t->later),
                        slot < t->later_cap ? 0 : loop->slots.cap))
        return false;
    loop->timers.later[slot] = (struct loop__later){when, loop->timers.seq++};
    return true;
}

/* The top's deadline was pushed back: give it its real key. */
static void rekey_top(loop_t *loop)
{
    uint32_t slot = loop->timers.heap[0].slot;
    struct loop__later l = loop->timers.later[slot];
    loop->timers.later[slot].when = 0;
    sift_down(loop, 0, (struct loop__timer){l.when, l.seq, slot});
}

/* Before the earliest deadline is used to sleep: make it a real one. */
void loop__heap_settle(loop_t *loop)
{
    while (loop->timers.n && has_later(loop, loop->timers.heap[0].slot))
        rekey_top(loop);
}

void loop__heap_remove(loop_t *loop, uint32_t pos)
{
    clear_later(loop, loop->timers.heap[pos].slot);
    struct loop__timer last = loop->timers.heap[--loop->timers.n];
    if (pos == loop->timers.n)
        return;
    if (pos > 0 && before(&last, &loop->timers.heap[(pos - 1) / 2]))
        sift_up(loop, pos, last);
    else
        sift_down(loop, pos, last);
}

/* Give the entry at pos a new deadline, as if scheduled anew (it goes after
 * equal deadlines already pending), and restore the heap order. */
static void move(loop_t *loop, uint32_t pos, uint64_t when)
{
    struct loop__timer t = {when, loop->timers.seq++, loop->timers.heap[pos].slot};
    if (pos > 0 && before(&t, &loop->timers.heap[(pos - 1) / 2]))
        sift_up(loop, pos, t);
    else
        sift_down(loop, pos, t);
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
    uint64_t now = loop->clock.now;
    while (loop->timers.n && loop->timers.heap[0].when <= now &&
           loop->timers.heap[0].when != LOOP__NEVER) {
        if (has_later(loop, loop->timers.heap[0].slot)) {
            rekey_top(loop);
            continue;
        }
        int err = loop__ready_reserve(loop, 1);
        if (err)
            return err;
        struct loop__timer top = loop->timers.heap[0];
        struct loop__slot *s = &loop->slots.v[top.slot];
        uint64_t period = loop__slot_period(loop, top.slot);
        if (period) {
            uint64_t next = loop__deadline(top.when, period);
            if (next <= now)
                next = loop__deadline(now, period);
            sift_down(loop, 0, (struct loop__timer){next, loop->timers.seq++, top.slot});
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
    loop__realloc(loop, loop->timers.later, 0);
    loop__realloc(loop, loop->timers.heap, 0);
    loop->timers = (struct loop__timers){0};
}

/*
 * Give the entry at pos a new deadline.  Pushing it back is O(1): noted
 * in `later`, applied when the old deadline reaches the top.  Bringing it
 * forward (or a side array that cannot grow) moves it at once.
 */
void loop__heap_reschedule(loop_t *loop, uint32_t pos, uint64_t when)
{
    uint32_t slot = loop->timers.heap[pos].slot;
    if (when > loop->timers.heap[pos].when && set_later(loop, slot, when))
        return;
    clear_later(loop, slot);
    move(loop, pos, when);
}
