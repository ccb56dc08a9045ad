/*
 * Timers: a 4-ary min-heap of (deadline, sequence, slot), 16 bytes an
 * entry, so the four children of a node share a cache line and the heap
 * is half as deep as a binary one.  The sequence number is the schedule
 * order, so equal deadlines pop in the order they were scheduled.  Each
 * slot remembers its heap position, which makes cancel O(log n).  Entries
 * carry their keys inline so that sifting never touches the slots except
 * to record moves.
 *
 * Sequence numbers are 32 bits.  When they run out, every live one is
 * renumbered in order (renumber(): O(n log n), in place, once per 2^32
 * schedules), so the order stays exact without 64-bit keys.
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

#define ARITY 4

static inline uint32_t parent_of(uint32_t pos)
{
    return (pos - 1) / ARITY;
}

static inline bool before(const struct loop__timer *a, const struct loop__timer *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static inline void place(loop_t *loop, uint32_t pos, struct loop__timer t)
{
    loop->timers.heap[pos] = t;
    loop->slots.v[t.slot].pos = pos;
}

static void sift_up(loop_t *loop, uint32_t pos, struct loop__timer t)
{
    struct loop__timer *heap = loop->timers.heap;
    while (pos > 0) {
        uint32_t parent = parent_of(pos);
        if (!before(&t, &heap[parent]))
            break;
        place(loop, pos, heap[parent]);
        pos = parent;
    }
    place(loop, pos, t);
}

/* The earlier of two entries' positions. */
static inline uint32_t earlier(const struct loop__timer *heap, uint32_t a, uint32_t b)
{
    return before(&heap[b], &heap[a]) ? b : a;
}

static void sift_down(loop_t *loop, uint32_t pos, struct loop__timer t)
{
    struct loop__timer *heap = loop->timers.heap;
    uint32_t n = loop->timers.n;
    for (;;) {
        uint32_t first = ARITY * pos + 1, least;
        if (first + ARITY <= n) { /* every child there: a tournament, no loop */
            least =
                earlier(heap, earlier(heap, first, first + 1), earlier(heap, first + 2, first + 3));
        } else {
            if (first >= n)
                break;
            least = first;
            for (uint32_t c = first + 1; c < n; c++)
                least = earlier(heap, least, c);
        }
        if (!before(&heap[least], &t))
            break;
        place(loop, pos, heap[least]);
        pos = least;
    }
    place(loop, pos, t);
}

static bool has_later(const loop_t *loop, uint32_t slot)
{
    return slot < loop->timers.later_cap && loop->timers.later[slot].when;
}

/* Within v[0..n), a binary max-heap by key: move v[p] down to its place. */
static void max_sift(struct loop__timer *v, uint32_t n, uint32_t p)
{
    for (;;) {
        uint32_t c = 2 * p + 1;
        if (c >= n)
            return;
        if (c + 1 < n && before(&v[c], &v[c + 1]))
            c++;
        if (!before(&v[p], &v[c]))
            return;
        struct loop__timer t = v[p];
        v[p] = v[c];
        v[c] = t;
        p = c;
    }
}

/* Sort v[0..n) by (deadline, sequence), in place (heapsort), so that
 * renumbering never needs memory. */
static void sort_by_key(struct loop__timer *v, uint32_t n)
{
    for (uint32_t i = n / 2; i-- > 0;)
        max_sift(v, n, i);
    for (uint32_t end = n; end-- > 1;) {
        struct loop__timer t = v[0];
        v[0] = v[end];
        v[end] = t;
        max_sift(v, end, 0);
    }
}

/*
 * The sequence numbers ran out: apply every pushed-back deadline, sort the
 * entries by key (a sorted array is a heap), and number them 0, 1, ... in
 * that order.  Every comparison gives what it gave before.
 */
static void renumber(loop_t *loop)
{
    struct loop__timers *t = &loop->timers;
    for (uint32_t i = 0; i < t->n; i++) {
        uint32_t slot = t->heap[i].slot;
        if (has_later(loop, slot)) {
            t->heap[i].when = t->later[slot].when;
            t->heap[i].seq = t->later[slot].seq;
            t->later[slot].when = 0;
        }
    }
    sort_by_key(t->heap, t->n);
    for (uint32_t i = 0; i < t->n; i++) {
        t->heap[i].seq = i;
        loop->slots.v[t->heap[i].slot].pos = i;
    }
    t->seq = t->n;
}

/* The next sequence number.  Entries may move (renumber), so positions are
 * read after it is taken. */
static inline uint32_t take_seq(loop_t *loop)
{
    if (__builtin_expect(loop->timers.seq == UINT32_MAX, 0))
        renumber(loop);
    return loop->timers.seq++;
}

int loop__heap_push(loop_t *loop, uint64_t when, uint32_t slot)
{
    int err = loop__grow(loop, (void **)&loop->timers.heap, &loop->timers.cap,
                         sizeof(*loop->timers.heap), loop->timers.n + 1);
    if (err)
        return err;
    struct loop__timer t = {when, take_seq(loop), slot};
    sift_up(loop, loop->timers.n++, t);
    return 0;
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
    loop->timers.later[slot] = (struct loop__later){when, take_seq(loop)};
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
    if (pos > 0 && before(&last, &loop->timers.heap[parent_of(pos)]))
        sift_up(loop, pos, last);
    else
        sift_down(loop, pos, last);
}

/* Give slot's entry a new deadline, as if scheduled anew (it goes after
 * equal deadlines already pending), and restore the heap order. */
static void move(loop_t *loop, uint32_t slot, uint64_t when)
{
    struct loop__timer t = {when, take_seq(loop), slot};
    uint32_t pos = loop->slots.v[slot].pos;
    if (pos > 0 && before(&t, &loop->timers.heap[parent_of(pos)]))
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
            uint32_t seq = take_seq(loop); /* the top stays the top: it is the least */
            sift_down(loop, 0, (struct loop__timer){next, seq, top.slot});
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
    move(loop, slot, when);
}
