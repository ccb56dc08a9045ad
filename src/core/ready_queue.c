/*
 * The ready queue: a ring of (fn, arg, ref, gen) with free-running head and
 * tail indices and a power-of-two capacity, grown by doubling and kept, so
 * steady state allocates nothing.  Only a ring grown past LOOP__RING_KEEP
 * entries (1.5 MB) by a burst is given back once the burst has drained:
 * memory stays bounded by what is live, at the price of one allocation per
 * burst of that size.  Cancelled entries stay in the
 * ring and are skipped when their turn comes (their slot generation no
 * longer matches): cancel is O(1).
 *
 * This is the hottest path of the library: a fire-and-forget call_soon is
 * a bounds check and four stores, and running it is four loads and a call.
 * Everything rarer (handles, fd and signal dispatches, slow-callback
 * timing) has gen != 0 or a flag, and leaves the fast path on one branch.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

int loop__ready_reserve(loop_t *loop, uint32_t more)
{
    uint32_t count = loop__ready_count(loop), old = loop->ring_cap;
    if (more > UINT32_MAX - count)
        return -ENOMEM;
    if (count + more <= old)
        return 0;
    int err =
        loop__grow(loop, (void **)&loop->ring, &loop->ring_cap, sizeof(*loop->ring), count + more);
    if (err)
        return err;
    /* Re-base the indices on the new mask: entries that wrapped past the
     * old end move to just past it. */
    uint32_t head = old ? loop->ring_head & (old - 1) : 0;
    if (head + count > old)
        memcpy(loop->ring + old, loop->ring, (head + count - old) * sizeof(*loop->ring));
    loop->ring_head = head;
    loop->ring_tail = head + count;
    loop->ring_mask = loop->ring_cap - 1;
    return 0;
}

static inline int push(loop_t *loop, loop_fn *fn, void *arg, uint32_t ref, uint32_t gen)
{
    uint32_t tail = loop->ring_tail;
    if (tail - loop->ring_head == loop->ring_cap) {
        int err = loop__ready_reserve(loop, 1);
        if (err)
            return err;
        tail = loop->ring_tail;
    }
    struct loop__ready *e = &loop->ring[tail & loop->ring_mask];
    e->fn = fn;
    e->arg = arg;
    e->ref = ref;
    e->gen = gen;
    loop->ring_tail = tail + 1;
    return 0;
}

int loop__ready_push(loop_t *loop, loop_fn *fn, void *arg, uint32_t ref, uint32_t gen)
{
    return push(loop, fn, arg, ref, gen);
}

/*
 * An fd dispatch runs unless its reader or writer was removed or replaced
 * since it was queued (a live registration has a non-zero generation).
 */
static inline void run_fd(loop_t *loop, int fd, unsigned kind, uint32_t gen)
{
    const struct loop__fd *f = &loop->fds[fd];
    if (kind == LOOP__DISPATCH_READ) {
        if (f->rgen == gen)
            loop__run_io(loop, f->rfn, fd, f->revents, f->rarg);
    } else if (f->wgen == gen) {
        loop__run_io(loop, f->wfn, fd, f->revents, f->warg);
    }
}

/* An entry with a generation: a cancellable callback, or a dispatch. */
static inline void run_checked(loop_t *loop, loop_fn *fn, void *arg, uint32_t ref, uint32_t gen)
{
    if (!fn) {
        unsigned kind = (unsigned)(uintptr_t)arg;
        if (kind == LOOP__DISPATCH_SIGNAL)
            loop__signal_dispatch(loop, (int)ref, gen);
        else
            run_fd(loop, (int)ref, kind, gen);
        return;
    }
    struct loop__slot *s = &loop->slots[ref];
    if (s->gen != gen)
        return; /* cancelled after it was queued */
    if (ref < loop->stale_cap && loop->stale[ref]) {
        loop->stale[ref]--; /* rescheduled after it was queued */
        return;
    }
    if (s->pos == LOOP__QUEUED)
        loop__slot_release(loop, ref); /* one-shot: it has run */
    loop__run_callback(loop, fn, arg);
}

/* Run the n oldest entries; whatever they queue waits for a later call. */
static inline void run_n(loop_t *loop, uint32_t n)
{
    for (; n; n--) {
        /* Read the entry out first: a callback may grow (and so move) the ring. */
        const struct loop__ready *e = &loop->ring[loop->ring_head++ & loop->ring_mask];
        loop_fn *fn = e->fn;
        void *arg = e->arg;
        if (e->gen)
            run_checked(loop, fn, arg, e->ref, e->gen);
        else
            loop__run_callback(loop, fn, arg);
    }
}

void loop__ready_run(loop_t *loop, uint32_t n)
{
    run_n(loop, n);
}

static bool next_skips_poll(const loop_t *loop)
{
    return loop__ready_count(loop) && loop->unpolled < loop->poll_interval &&
           !loop->stop_requested && !loop__timer_due(loop);
}

/*
 * Phase 5: run the snapshot.  With chain set (inside loop_run), while the
 * next iteration would skip its poll and has no timer due, its phases 1-4
 * are empty, so it follows at once, here: a call_soon chain runs at queue
 * speed.
 */
void loop__ready_run_snapshots(loop_t *loop, bool chain)
{
    do {
        uint32_t n = loop__ready_count(loop);
        loop->unpolled += n;
        loop->stats.iterations++;
        run_n(loop, n);
    } while (chain && next_skips_poll(loop));
}

void loop__ready_trim(loop_t *loop)
{
    if (loop->ring_cap > LOOP__RING_KEEP && !loop__ready_count(loop))
        loop__ready_free(loop);
}

void loop__ready_free(loop_t *loop)
{
    loop__realloc(loop, loop->ring, 0);
    loop->ring = NULL;
    loop->ring_head = loop->ring_tail = loop->ring_cap = loop->ring_mask = 0;
}

/* Everything but a fire-and-forget call with room in the ring. */
__attribute__((noinline)) static int call_soon_slow(loop_t *loop, loop_fn *fn, void *arg,
                                                    loop_handle *out)
{
    if (out)
        *out = (loop_handle){0};
    if (!loop || !fn)
        return -EINVAL;
    if (!out)
        return push(loop, fn, arg, 0, 0);

    uint32_t i;
    int err = loop__slot_new(loop, fn, arg, &i);
    if (err)
        return err;
    err = push(loop, fn, arg, i, loop->slots[i].gen);
    if (err) {
        loop__slot_release(loop, i);
        return err;
    }
    *out = loop__slot_handle(loop, i);
    return 0;
}

int loop_call_soon(loop_t *loop, loop_fn *fn, void *arg, loop_handle *out)
{
    if (__builtin_expect(out || !loop || !fn, 0))
        return call_soon_slow(loop, fn, arg, out);
    uint32_t tail = loop->ring_tail;
    if (__builtin_expect(tail - loop->ring_head == loop->ring_cap, 0))
        return call_soon_slow(loop, fn, arg, out);
    struct loop__ready *e = &loop->ring[tail & loop->ring_mask];
    e->fn = fn;
    e->arg = arg;
    e->ref = 0;
    e->gen = 0;
    loop->ring_tail = tail + 1;
    return 0;
}
