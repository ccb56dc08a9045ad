/*
 * Scheduling: call_soon, the timed calls, cancel, reschedule and arm.  The
 * public face of three modules: slots name what is scheduled, the heap
 * orders what waits for a deadline, the ring holds what is ready.
 */
#include "clock.h"
#include "handles.h"
#include "ready_queue.h"
#include "timer_heap.h"

#include <errno.h>

/* Everything but a fire-and-forget call with room in the ring. */
__attribute__((noinline)) static int call_soon_slow(loop_t *loop, loop_fn *fn, void *arg,
                                                    loop_handle *out)
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
    err = loop__ready_push(loop, fn, arg, i, loop->slots.v[i].gen);
    if (err) {
        loop__slot_release(loop, i);
        return err;
    }
    *out = loop__slot_handle(loop, i);
    return 0;
}

/* The hottest path of the library: a bounds check and four stores. */
int loop_call_soon(loop_t *loop, loop_fn *fn, void *arg, loop_handle *out)
{
    if (__builtin_expect(out || !loop || !fn, 0))
        return call_soon_slow(loop, fn, arg, out);
    if (__builtin_expect(loop->ready.tail - loop->ready.head == loop->ready.cap, 0))
        return call_soon_slow(loop, fn, arg, out);
    loop__ready_put(loop, fn, arg, 0, 0);
    return 0;
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
        err = loop__heap_push(loop, when, i);
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

/*
 * Move the live slot i to a new deadline in place: at most one sift
 * instead of a cancel and a schedule (two sifts, a slot freed and taken
 * again), and none when the deadline moves later.  A one-shot already
 * queued in this iteration goes back into the heap, and its queued run is
 * dropped (loop__slot_take skips it).
 */
static int reschedule_slot(loop_t *loop, uint32_t i, uint64_t when_ns)
{
    struct loop__slot *s = &loop->slots.v[i];
    if (s->pos != LOOP__QUEUED) {
        loop__heap_reschedule(loop, s->pos, when_ns);
        return 0;
    }
    int err = loop__slot_leave_ring(loop, i);
    if (!err) {
        err = loop__heap_push(loop, when_ns, i);
        if (err)
            loop__slot_stay_in_ring(loop, i); /* still queued, as before the call */
    }
    return err;
}

int loop_reschedule_at(loop_t *loop, loop_handle h, uint64_t when_ns)
{
    if (!loop)
        return -EINVAL;
    uint32_t i;
    if (!loop__slot_get(loop, h, &i))
        return -ENOENT;
    return reschedule_slot(loop, i, when_ns);
}

int loop_reschedule(loop_t *loop, loop_handle h, uint64_t delay_ns)
{
    if (!loop)
        return -EINVAL;
    return loop_reschedule_at(loop, h, loop__deadline(loop__clock_read(loop), delay_ns));
}

int loop_arm_at(loop_t *loop, loop_handle *timer, uint64_t when_ns, loop_fn *fn, void *arg)
{
    if (!loop || !timer || !fn)
        return -EINVAL;
    uint32_t i;
    struct loop__slot *s = loop__slot_get(loop, *timer, &i);
    if (!s)
        return schedule(loop, when_ns, 0, fn, arg, timer);
    int err = reschedule_slot(loop, i, when_ns);
    if (!err) {
        s->fn = fn;
        s->arg = arg;
    }
    return err;
}

int loop_arm(loop_t *loop, loop_handle *timer, uint64_t delay_ns, loop_fn *fn, void *arg)
{
    if (!loop)
        return -EINVAL;
    return loop_arm_at(loop, timer, loop__deadline(loop__clock_read(loop), delay_ns), fn, arg);
}
