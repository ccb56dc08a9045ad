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
#include "ready_queue.h"

#include <errno.h>
#include <string.h>

int loop__ready_reserve(loop_t *loop, uint32_t more)
{
    uint32_t count = loop__ready_count(loop), old = loop->ready.cap;
    if (more > UINT32_MAX - count)
        return -ENOMEM;
    if (count + more <= old)
        return 0;
    int err = loop__grow(loop, (void **)&loop->ready.v, &loop->ready.cap, sizeof(*loop->ready.v),
                         count + more);
    if (err)
        return err;
    /* Re-base the indices on the new mask: entries that wrapped past the
     * old end move to just past it. */
    uint32_t head = old ? loop->ready.head & (old - 1) : 0;
    if (head + count > old)
        memcpy(loop->ready.v + old, loop->ready.v, (head + count - old) * sizeof(*loop->ready.v));
    loop->ready.head = head;
    loop->ready.tail = head + count;
    loop->ready.mask = loop->ready.cap - 1;
    return 0;
}

int loop__ready_push(loop_t *loop, loop_fn *fn, void *arg, uint32_t ref, uint32_t gen)
{
    if (loop->ready.tail - loop->ready.head == loop->ready.cap) {
        int err = loop__ready_reserve(loop, 1);
        if (err)
            return err;
    }
    loop__ready_put(loop, fn, arg, ref, gen);
    return 0;
}

void loop__ready_trim(loop_t *loop)
{
    if (loop->ready.cap > LOOP__RING_KEEP && !loop__ready_count(loop))
        loop__ready_free(loop);
}

void loop__ready_free(loop_t *loop)
{
    loop__realloc(loop, loop->ready.v, 0);
    loop->ready.v = NULL;
    loop->ready.head = loop->ready.tail = loop->ready.cap = loop->ready.mask = 0;
}
