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

/* 16 bytes: four children of a 4-ary heap node share a cache line. */
struct loop__timer {
    uint64_t when;
    uint32_t seq; /* schedule order: breaks deadline ties (renumbered at wrap) */
    uint32_t slot;
};

/* A deadline pushed back lazily (see loop_reschedule_at); when 0: none. */
struct loop__later {
    uint64_t when;
    uint32_t seq;
};

struct loop__ready {
    loop_fn *fn; /* NULL: an fd dispatch; arg then holds the direction bit */
    void *arg;
    uint32_t ref; /* slot index, or fd */
    uint32_t gen; /* slot generation (0: no slot), or registration generation */
};

/* 48 bytes: a 20,000-fd table is under a megabyte. */
struct loop__fd {
    loop_io_fn *rfn, *wfn; /* NULL: no reader / no writer */
    void *rarg, *warg;
    uint32_t rgen, wgen;  /* registration generations: stale dispatches are dropped */
    uint32_t kgen;        /* generation of the kernel registration, in epoll data */
    uint8_t kmask;        /* LOOP_READABLE|LOOP_WRITABLE as the kernel has them */
    uint8_t revents;      /* this iteration's events, as LOOP_* bits */
    uint8_t all;          /* RMASK | WMASK if reader and writer are one handler (fn and arg) */
    uint8_t inkernel : 1; /* the fd is in the epoll set */
    uint8_t dirty : 1;    /* on the change list */
    uint8_t verify : 1;   /* re-added: check the kernel still has it (see io_epoll.c) */
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

/* The hooks a host loop drives its own work from (loop.c). */
enum loop__hook { LOOP__HOOK_BEFORE_POLL, LOOP__HOOK_AFTER_POLL, LOOP__HOOK_END, LOOP__NHOOKS };
struct loop__hook_fn {
    loop_fn *fn;
    void *arg;
};

/* Allocator (alloc.c). */
struct loop__alloc {
    void *(*fn)(void *ctx, void *ptr, size_t size); /* NULL: libc */
    void *ctx;
    struct loop__attachment *attached;
    uint32_t nattached, attached_cap;
};

/* Data attached by the layers above (alloc.c). */
struct loop__attachment {
    const void *key;
    void *data;
    void (*release)(loop_t *loop, void *data);
};

/* The clock (clock.c). */
struct loop__clock {
    enum loop_clock kind;
    uint64_t now; /* loop_now(): read at each polling iteration */
};

/* Slow-callback reports (callback.c). */
struct loop__slow {
    uint64_t ns; /* 0: slow callbacks are not reported */
    loop_slow_fn *fn;
    void *arg;
};

/* Slots: the slab behind loop_handle (handles.c). */
struct loop__slots {
    struct loop__slot *v;
    uint32_t n, cap;
    uint32_t free; /* head of the free list, or UINT32_MAX */
    uint32_t live;
    uint64_t *periods; /* per slot, 0 for one-shot; NULL until call_every */
    uint32_t periods_cap;
    uint32_t *stale; /* per slot: ring entries it left behind; NULL until then */
    uint32_t stale_cap;
    uint64_t key; /* handle ids are (gen << 32 | index) ^ key: see handles.c */
};

/* Pending timers (timer_heap.c). */
struct loop__timers {
    struct loop__timer *heap;
    uint32_t n, cap;
    uint32_t seq;              /* the next sequence number */
    struct loop__later *later; /* per slot; NULL until a deadline is pushed back */
    uint32_t later_cap;
};

/* The ready ring (ready_queue.c). */
struct loop__ring {
    struct loop__ready *v;
    uint32_t head, tail; /* free-running: count is tail - head */
    uint32_t cap, mask;  /* cap: 0 or a power of two; mask: cap - 1 */
};

/* fds, the epoll set and the timed wait (io_epoll.c). */
struct loop__io {
    int epfd;
    bool no_pwait2; /* the kernel (or valgrind) lacks epoll_pwait2 */
    int timerfd;    /* wakes timed waits without timer slack; -1 if none */
    uint64_t armed; /* the timerfd's deadline; 0: disarmed */
    struct loop__fd *fds;
    uint32_t fds_cap;
    uint32_t nwatched; /* fds with a reader or a writer */
    uint32_t gen;
    int *changes;
    uint32_t nchanges, changes_cap;
    uint32_t npending;   /* events kept in events[] for direct dispatch (io_epoll.c) */
    uint32_t polled_gen; /* gen when they were polled */
    struct epoll_event events[LOOP__MAX_EVENTS];
};

/* Wake-ups and threadsafe calls (wakeup.c). */
struct loop__wakeup {
    /* The loop thread's own: apart from what other threads write. */
    int fd;                   /* eventfd in the epoll set */
    struct loop__post *drain; /* swapped with posts by the loop thread */
    uint32_t drain_cap;
    uint32_t ntaken; /* posts taken into drain, to be run from there */
    /*
     * Shared with posting threads, padded to cache lines of their own
     * (padding, not _Alignas: the loop comes from the user's allocator,
     * which promises malloc's alignment only).
     */
    char pad_before[64];
    pthread_mutex_t lock;
    struct loop__post *posts; /* filled by any thread, under lock */
    uint32_t nposts, posts_cap;
    char pad_after[64];
};

/* Signals (signal.c). */
struct loop__signals {
    uint64_t set; /* bit n - 1: this loop handles signal n */
    uint32_t gen;
    struct loop__signal v[LOOP__NSIG];
};

/*
 * The loop: lifecycle and iteration state (loop.c), counters every module
 * adds to, and one part per module.  Only the owner touches a part.
 */
struct loop {
    int running;
    int stop_requested;
    uint32_t refs;
    uint32_t poll_interval; /* 0: strict, poll every iteration */
    uint32_t timer_slack;   /* ns a timed wait may run past its deadline */
    uint32_t unpolled;      /* callbacks run since the last poll */
    struct loop__hook_fn hooks[LOOP__NHOOKS];
    uint32_t nhooks;     /* hooks set: iterations with hooks never chain */
    uint64_t mark;       /* the last clock read of the current run */
    uint64_t busy_start; /* where busy_ns counts from */
    bool mark_fresh;     /* no user code ran since mark was read */
    bool busy_valid;

    loop_stats_t stats;

    struct loop__alloc alloc;
    struct loop__clock clock;
    struct loop__slow slow;
    struct loop__slots slots;
    struct loop__timers timers;
    struct loop__ring ready;
    struct loop__wakeup wakeup;
    struct loop__signals signals;
    struct loop__io io; /* last: its event array is not zeroed by loop_new */
};

/*
 * Check every internal invariant (heap order and positions, slot free list
 * and live count, ring bounds, fd table); returns 0 or -1 and the first
 * broken rule in *why.  For tests and debug builds.
 */
int loop__verify(const loop_t *loop, const char **why);

#endif /* LOOP_INTERNAL_H */
