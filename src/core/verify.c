/*
 * loop__verify: the invariants of every part of struct loop, checked from
 * the outside.  Tests call it after every operation of their randomised
 * runs; nothing on a hot path calls it.
 */
#include "handles.h"
#include "ready_queue.h"

#define CHECK(cond, msg)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            *why = msg;                                                                            \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

static int verify_slots(const loop_t *loop, const char **why)
{
    uint32_t free_count = 0, live = 0;
    CHECK(loop->slots.n <= loop->slots.cap, "slots: count beyond capacity");
    for (uint32_t i = loop->slots.free; i != UINT32_MAX; i = loop->slots.v[i].pos) {
        CHECK(i < loop->slots.n, "slots: free list leaves the slab");
        CHECK(!(loop->slots.v[i].gen & 1), "slots: live slot on the free list");
        CHECK(++free_count <= loop->slots.n, "slots: free list has a cycle");
    }
    for (uint32_t i = 0; i < loop->slots.n; i++) {
        const struct loop__slot *s = &loop->slots.v[i];
        if (!(s->gen & 1))
            continue;
        live++;
        CHECK(s->pos == LOOP__QUEUED || s->pos < loop->timers.n, "slots: position out of range");
        CHECK(s->pos == LOOP__QUEUED || loop->timers.heap[s->pos].slot == i,
              "slots: heap position does not point back");
        CHECK(s->pos != LOOP__QUEUED || !loop__slot_period(loop, i),
              "slots: a repeating timer is out of the heap");
    }
    for (uint32_t i = 0; i < loop->timers.later_cap && i < loop->slots.n; i++)
        CHECK(!loop->timers.later[i].when ||
                  ((loop->slots.v[i].gen & 1) && loop->slots.v[i].pos != LOOP__QUEUED),
              "slots: a pushed-back deadline for a slot not in the heap");
    for (uint32_t i = 0; i < loop->slots.stale_cap && i < loop->slots.n; i++)
        CHECK(!loop->slots.stale[i] || (loop->slots.v[i].gen & 1),
              "slots: a free slot counts ring entries it left behind");
    CHECK(live == loop->slots.live, "slots: live count is wrong");
    CHECK(live + free_count == loop->slots.n, "slots: a slot is neither live nor free");
    return 0;
}

static int verify_heap(const loop_t *loop, const char **why)
{
    CHECK(loop->timers.n <= loop->timers.cap, "heap: count beyond capacity");
    for (uint32_t i = 0; i < loop->timers.n; i++) {
        const struct loop__timer *t = &loop->timers.heap[i];
        CHECK(t->slot < loop->slots.n && (loop->slots.v[t->slot].gen & 1),
              "heap: entry names a free slot");
        CHECK(loop->slots.v[t->slot].pos == i, "heap: slot does not record its position");
        CHECK(t->seq < loop->timers.seq, "heap: sequence from the future");
        if (t->slot < loop->timers.later_cap && loop->timers.later[t->slot].when) {
            CHECK(loop->timers.later[t->slot].when > t->when,
                  "heap: a pushed-back deadline is not later");
            CHECK(loop->timers.later[t->slot].seq < loop->timers.seq,
                  "heap: later sequence from the future");
        }
        if (i == 0)
            continue;
        const struct loop__timer *p = &loop->timers.heap[(i - 1) / 4]; /* 4-ary */
        CHECK(p->when < t->when || (p->when == t->when && p->seq < t->seq),
              "heap: parent after child");
    }
    return 0;
}

static int verify_ring(const loop_t *loop, const char **why)
{
    uint32_t count = loop__ready_count(loop);
    CHECK(count <= loop->ready.cap, "ring: count beyond capacity");
    CHECK(!(loop->ready.cap & (loop->ready.cap - 1)), "ring: capacity not a power of two");
    CHECK(!loop->ready.cap || loop->ready.mask == loop->ready.cap - 1, "ring: mask is not cap - 1");
    for (uint32_t k = 0; k < count; k++) {
        const struct loop__ready *e = &loop->ready.v[(loop->ready.head + k) & loop->ready.mask];
        if (!e->fn && (uintptr_t)e->arg == LOOP__DISPATCH_SIGNAL)
            CHECK(e->ref > 0 && e->ref < LOOP__NSIG, "ring: signal dispatch of no signal");
        else if (!e->fn)
            CHECK(e->ref < loop->io.fds_cap, "ring: fd dispatch beyond the fd table");
        else if (e->gen)
            CHECK(e->ref < loop->slots.n, "ring: entry names a slot beyond the slab");
    }
    return 0;
}

static int verify_fds(const loop_t *loop, const char **why)
{
    uint32_t watched = 0;
    for (uint32_t fd = 0; fd < loop->io.fds_cap; fd++) {
        const struct loop__fd *f = &loop->io.fds[fd];
        unsigned want = (f->rfn ? LOOP_READABLE : 0) | (f->wfn ? LOOP_WRITABLE : 0);
        watched += want != 0;
        CHECK(!f->rfn == !f->rgen, "fds: reader and its generation disagree");
        CHECK(!f->wfn == !f->wgen, "fds: writer and its generation disagree");
        CHECK(!want || f->inkernel, "fds: watched fd missing from the epoll set");
        CHECK(want || !f->inkernel, "fds: unwatched fd left in the epoll set");
        CHECK(f->dirty || !f->inkernel || f->kmask == want, "fds: change not queued");
    }
    CHECK(watched == loop->io.nwatched, "fds: watched count is wrong");
    for (int signo = 1; signo < LOOP__NSIG; signo++)
        CHECK(!(loop->signals.set >> (signo - 1) & 1) == !loop->signals.v[signo].fn,
              "signals: mask and handlers disagree");
    for (uint32_t i = 0; i < loop->io.nchanges; i++)
        CHECK((uint32_t)loop->io.changes[i] < loop->io.fds_cap, "fds: change beyond the table");
    return 0;
}

int loop__verify(const loop_t *loop, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (verify_slots(loop, why) || verify_heap(loop, why) || verify_ring(loop, why) ||
        verify_fds(loop, why))
        return -1;
    *why = NULL;
    return 0;
}
