/*
 * How the pieces of a loop fit together.
 *
 * struct loop is a composite: each src/ file owns one part of it and is
 * the only one to touch that part's fields directly.
 *
 *   handles.c      slots: the slab behind loop_handle (generation-checked)
 *   timer_heap.c   heap:  pending timers, ordered by (deadline, sequence)
 *   ready_queue.c  ready: the FIFO ring of callbacks to run
 *   io_epoll.c     io:    the fd table, batched epoll_ctl changes, the wait
 *   clock.c        now:   the cached monotonic or virtual clock
 *   loop.c         lifecycle and the iteration, phase by phase
 *
 * A scheduled callback that can be cancelled holds a slot.  Its handle id
 * is (generation << 32 | slot index).  A slot's generation is odd while it
 * is live and even while it is free, so a handle is live exactly when its
 * generation equals its slot's, and id 0 never names a live slot.
 *
 * The ready ring holds copies of (fn, arg) plus the slot reference, so a
 * fire-and-forget call_soon needs no slot at all.  Cancelling frees the
 * slot; a ring entry whose slot generation no longer matches is skipped.
 * fd dispatches ride the same ring (fn == NULL) and are checked the same
 * way against the fd's registration generation.
 */
#ifndef LOOP_INTERNAL_H
#define LOOP_INTERNAL_H

/* Before any system header: epoll_pwait2, eventfd and friends are Linux's. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>

#define LOOP__NEVER UINT64_MAX            /* a deadline that never comes */
#define LOOP__QUEUED UINT32_MAX           /* slot.pos of a slot whose callback is in the ring */
#define LOOP__MAX_EVENTS 512              /* epoll events taken per wait */
#define LOOP__POLL_INTERVAL 64            /* default options.poll_interval */
#define LOOP__PRECISE_WAIT 50000          /* ns: shorter waits do without the timerfd */
#define LOOP__RING_KEEP 65536             /* entries an empty ring keeps; more are given back */
#define LOOP__WAKE_DATA UINT64_MAX        /* epoll data of the loop's own eventfd */
#define LOOP__TIMER_DATA (UINT64_MAX - 1) /* epoll data of the loop's timerfd */
#define LOOP__NSIG 65                     /* signal numbers 1..64 */

/* Kinds of ring entries with fn == NULL, in their arg. */
#define LOOP__DISPATCH_READ 1u
#define LOOP__DISPATCH_WRITE 2u
#define LOOP__DISPATCH_SIGNAL 3u

/*
 * 24 bytes: with its 24-byte heap entry, a pending timer costs 48 bytes.
 * Periods live in a side array that exists only once call_every is used.
 */
struct loop__slot {
    loop_fn *fn;
    void *arg;
    uint32_t gen; /* odd: live; even: free */
    uint32_t pos; /* heap index, LOOP__QUEUED, or next free slot */
};

struct loop__timer {
    uint64_t when;
    uint64_t seq; /* schedule order: breaks deadline ties */
    uint32_t slot;
};

/* A deadline pushed back lazily (see loop_reschedule_at); when 0: none. */
struct loop__later {
    uint64_t when;
    uint64_t seq;
};

struct loop__ready {
    loop_fn *fn; /* NULL: an fd dispatch; arg then holds the direction bit */
    void *arg;
    uint32_t ref; /* slot index, or fd */
    uint32_t gen; /* slot generation (0: no slot), or registration generation */
};

struct loop__fd {
    loop_io_fn *rfn, *wfn; /* NULL: no reader / no writer */
    void *rarg, *warg;
    uint32_t rgen, wgen; /* registration generations: stale dispatches are dropped */
    uint32_t kgen;       /* generation of the kernel registration, in epoll data */
    uint8_t kmask;       /* LOOP_READABLE|LOOP_WRITABLE as the kernel has them */
    uint8_t inkernel;    /* the fd is in the epoll set */
    uint8_t dirty;       /* on the change list */
    uint8_t revents;     /* this iteration's events, as LOOP_* bits */
};

struct loop__post {
    loop_fn *fn;
    void *arg;
};

struct loop__signal {
    loop_fn *fn; /* NULL: not handled by this loop */
    void *arg;
    uint32_t gen; /* registration generation: stale dispatches are dropped */
};

struct loop {
    /* allocator (loop.c) */
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void *alloc_ctx;

    /* lifecycle (loop.c) */
    int running;
    int stop_requested;
    uint32_t refs;
    uint32_t poll_interval; /* 0: strict, poll every iteration */
    uint32_t timer_slack;   /* ns a timed wait may run past its deadline */
    uint32_t unpolled;      /* callbacks run since the last poll */
    loop_fn *before_poll, *after_poll;
    void *before_poll_arg, *after_poll_arg;
    loop_stats_t stats;
    uint64_t mark;       /* the last clock read of the current run */
    uint64_t busy_start; /* where busy_ns counts from */
    bool mark_fresh;     /* no user code ran since mark was read */
    bool busy_valid;
    uint64_t slow_ns; /* 0: slow callbacks are not reported */
    loop_slow_fn *slow_fn;
    void *slow_arg;

    /* clock (clock.c) */
    enum loop_clock clock;
    uint64_t now;

    /* slots (handles.c) */
    struct loop__slot *slots;
    uint32_t nslots, slots_cap;
    uint32_t free_slot; /* head of the free list, or UINT32_MAX */
    uint32_t live_slots;
    uint64_t *periods; /* per slot, 0 for one-shot; NULL until call_every */
    uint32_t periods_cap;
    uint32_t *stale; /* per slot: ring entries it left behind; NULL until then */
    uint32_t stale_cap;

    /* timers (timer_heap.c) */
    struct loop__timer *heap;
    uint32_t nheap, heap_cap;
    uint64_t timer_seq;
    struct loop__later *later; /* per slot; NULL until a deadline is pushed back */
    uint32_t later_cap;

    /* ready ring (ready_queue.c) */
    struct loop__ready *ring;
    uint32_t ring_head, ring_tail; /* free-running: count is tail - head */
    uint32_t ring_cap, ring_mask;  /* cap: 0 or a power of two; mask: cap - 1 */

    /* fds (io_epoll.c) */
    int epfd;
    int no_pwait2;  /* the kernel (or valgrind) lacks epoll_pwait2 */
    int timerfd;    /* wakes timed waits without timer slack; -1 if none */
    uint64_t armed; /* the timerfd's deadline; 0: disarmed */
    struct loop__fd *fds;
    uint32_t nfds_cap;
    uint32_t nwatched; /* fds with a reader or a writer */
    uint32_t io_gen;
    int *changes;
    uint32_t nchanges, changes_cap;

    /* wake-ups and threadsafe calls (wakeup.c) */
    int wakefd; /* eventfd in the epoll set */
    pthread_mutex_t post_lock;
    struct loop__post *posts; /* filled by any thread, under post_lock */
    uint32_t nposts, posts_cap;
    struct loop__post *drain; /* swapped with posts by the loop thread */
    uint32_t drain_cap;

    /* signals (signal.c) */
    uint64_t signals; /* bit n: this loop handles signal n */
    uint32_t sig_gen;
    struct loop__signal sig[LOOP__NSIG];

    struct epoll_event events[LOOP__MAX_EVENTS];
};

/* loop.c: allocation through the loop's allocator. */
void *loop__realloc(loop_t *loop, void *ptr, size_t size);
int loop__grow_slow(loop_t *loop, void **arr, uint32_t *cap, size_t elem, uint32_t need);

/* Make *arr (of *cap elements) hold need elements, growing it by doubling. */
static inline int loop__grow(loop_t *loop, void **arr, uint32_t *cap, size_t elem, uint32_t need)
{
    return need <= *cap ? 0 : loop__grow_slow(loop, arr, cap, elem, need);
}

/* clock.c */
uint64_t loop__clock_read(const loop_t *loop);
uint64_t loop__deadline(uint64_t base, uint64_t delay);

/* handles.c */
void loop__slot_release(loop_t *loop, uint32_t index);
struct loop__slot *loop__slot_get(loop_t *loop, loop_handle h, uint32_t *index);
loop_handle loop__slot_handle(const loop_t *loop, uint32_t index);
int loop__slot_set_period(loop_t *loop, uint32_t index, uint64_t period);
int loop__slot_leave_ring(loop_t *loop, uint32_t index);

/* A live slot for fn and arg, LOOP__QUEUED: the free list first, else the
 * slab grows.  Inline: every call_later and handle-taking call_soon. */
static inline int loop__slot_new(loop_t *loop, loop_fn *fn, void *arg, uint32_t *index)
{
    uint32_t i = loop->free_slot;
    if (i != UINT32_MAX) {
        loop->free_slot = loop->slots[i].pos;
    } else {
        if (loop->nslots == UINT32_MAX - 1) /* UINT32_MAX is the list's end */
            return -ENOMEM;
        int err = loop__grow(loop, (void **)&loop->slots, &loop->slots_cap, sizeof(*loop->slots),
                             loop->nslots + 1);
        if (err)
            return err;
        i = loop->nslots++;
        loop->slots[i].gen = 0;
    }
    struct loop__slot *s = &loop->slots[i];
    s->gen++; /* even (free) -> odd (live) */
    s->fn = fn;
    s->arg = arg;
    s->pos = LOOP__QUEUED;
    if (i < loop->periods_cap)
        loop->periods[i] = 0; /* slots past the array are one-shot anyway */
    loop->live_slots++;
    *index = i;
    return 0;
}

static inline uint64_t loop__slot_period(const loop_t *loop, uint32_t index)
{
    return index < loop->periods_cap ? loop->periods[index] : 0;
}
void loop__slots_free(loop_t *loop);

/* timer_heap.c */
void loop__heap_remove(loop_t *loop, uint32_t pos);
void loop__heap_move(loop_t *loop, uint32_t pos, uint64_t when);
void loop__heap_settle(loop_t *loop);
uint64_t loop__heap_next(const loop_t *loop);
int loop__timers_expire(loop_t *loop);
void loop__heap_free(loop_t *loop);

/* ready_queue.c */
int loop__ready_push(loop_t *loop, loop_fn *fn, void *arg, uint32_t ref, uint32_t gen);

/* Append to the ring, which the caller made room in (loop__ready_reserve). */
static inline void loop__ready_put(loop_t *loop, loop_fn *fn, void *arg, uint32_t ref, uint32_t gen)
{
    struct loop__ready *e = &loop->ring[loop->ring_tail++ & loop->ring_mask];
    e->fn = fn;
    e->arg = arg;
    e->ref = ref;
    e->gen = gen;
}
int loop__ready_reserve(loop_t *loop, uint32_t more);
void loop__ready_run(loop_t *loop, uint32_t n);
void loop__ready_run_snapshots(loop_t *loop, bool chain);
void loop__ready_trim(loop_t *loop);
void loop__ready_free(loop_t *loop);

/* loop.c: run one callback (timed, if slow callbacks are reported). */
void loop__run_timed(loop_t *loop, loop_fn *fn, void *arg);
void loop__run_io_timed(loop_t *loop, loop_io_fn *fn, int fd, unsigned events, void *arg);

static inline void loop__run_callback(loop_t *loop, loop_fn *fn, void *arg)
{
    loop->stats.callbacks++;
    if (__builtin_expect(loop->slow_ns != 0, 0))
        loop__run_timed(loop, fn, arg);
    else
        fn(loop, arg);
}

static inline void loop__run_io(loop_t *loop, loop_io_fn *fn, int fd, unsigned events, void *arg)
{
    loop->stats.callbacks++;
    if (__builtin_expect(loop->slow_ns != 0, 0))
        loop__run_io_timed(loop, fn, fd, events, arg);
    else
        fn(loop, fd, events, arg);
}

static inline uint32_t loop__ready_count(const loop_t *loop)
{
    return loop->ring_tail - loop->ring_head;
}

static inline bool loop__timer_due(const loop_t *loop)
{
    return loop->nheap && loop->heap[0].when <= loop->now;
}

/* io_epoll.c */
int loop__io_init(loop_t *loop);
void loop__io_fork(loop_t *loop, int epfd);
int loop__io_poll(loop_t *loop, int64_t timeout_ns, uint64_t deadline);
void loop__io_free(loop_t *loop);

/* wakeup.c */
int loop__wakeup_init(loop_t *loop);
int loop__wakeup_open(int epfd);
void loop__wakeup_fork(loop_t *loop, int wakefd);
int loop__wakeup_drain(loop_t *loop);
void loop__wakeup_signal(loop_t *loop);
bool loop__wakeup_pending(loop_t *loop);
void loop__wakeup_free(loop_t *loop);

/* signal.c */
int loop__signal_collect(loop_t *loop);
void loop__signal_dispatch(loop_t *loop, int signo, uint32_t gen);
void loop__signal_fork(loop_t *loop);
void loop__signal_free(loop_t *loop);

/*
 * Check every internal invariant (heap order and positions, slot free list
 * and live count, ring bounds, fd table); returns 0 or -1 and the first
 * broken rule in *why.  For tests and debug builds.
 */
int loop__verify(const loop_t *loop, const char **why);

#endif /* LOOP_INTERNAL_H */
