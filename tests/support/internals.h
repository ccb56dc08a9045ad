/*
 * The one place where tests look inside a loop.  Everything else goes
 * through include/loop.h.  The core's internal names (fields of struct
 * loop, loop__ functions, LOOP__ constants) may change; when they do, this
 * file is the only one in tests/ to follow them.  One function per need.
 */
#ifndef LOOP_TESTS_INTERNALS_H
#define LOOP_TESTS_INTERNALS_H

/* The fuzzer has no cmocka: it defines LOOP_TESTS_NO_CMOCKA, and gets the
 * helpers that assert nothing. */
#ifndef LOOP_TESTS_NO_CMOCKA
#include "fixtures.h"
#endif

#include "ready_queue.h"
#include "wakeup.h"

#include <unistd.h>

/* Slots of handles not yet run or cancelled. */
static inline uint32_t test_live_slots(const loop_t *loop)
{
    return loop->slots.live;
}

/* Slots the slab ever made (live or on the free list). */
static inline uint32_t test_slots_made(const loop_t *loop)
{
    return loop->slots.n;
}

/* Entries the ready ring has room for; 0 once it was given back. */
static inline uint32_t test_ring_capacity(const loop_t *loop)
{
    return loop->ready.cap;
}

/* Entries an empty ring keeps rather than giving its memory back. */
static inline uint32_t test_ring_keep(void)
{
    return LOOP__RING_KEEP;
}

/* Entries in the ready queue now. */
static inline uint32_t test_ready_count(const loop_t *loop)
{
    return loop__ready_count(loop);
}

/* The most fd events one poll takes. */
static inline int test_max_events(void)
{
    return LOOP__MAX_EVENTS;
}

/* The eventfd that wakes the loop (threadsafe calls, signals). */
static inline int test_wakefd(const loop_t *loop)
{
    return loop__wakeup_fd(loop);
}

/* The timerfd that ends timed waits at their deadline, or -1. */
static inline int test_timerfd(const loop_t *loop)
{
    return loop->io.timerfd;
}

/* Close the loop's timerfd, as when none could be opened: timed waits then
 * end by the poll's own timeout. */
static inline void test_disable_timerfd(loop_t *loop)
{
    if (loop->io.timerfd >= 0)
        close(loop->io.timerfd); /* which also takes it out of the epoll set */
    loop->io.timerfd = -1;
    loop->io.armed = 0;
}

/* Wait with epoll_wait and a timeout in whole milliseconds, as where the
 * kernel (or valgrind) lacks epoll_pwait2. */
static inline void test_disable_pwait2(loop_t *loop)
{
    loop->io.no_pwait2 = 1;
}

/* Set the timer heap's next sequence number, to reach its wrap quickly. */
static inline void test_set_timer_seq(loop_t *loop, uint32_t seq)
{
    loop->timers.seq = seq;
}

#ifndef LOOP_TESTS_NO_CMOCKA
/* Every internal invariant holds (heap, slots, ring, fd table). */
static inline void assert_loop_valid(const loop_t *loop)
{
    const char *why = NULL;
    if (loop__verify(loop, &why) != 0)
        fail_msg("invariant broken: %s", why);
}

/* Run the n oldest entries of the ready queue, plain call_soon callbacks
 * only (the run phase also checks handles and dispatches fds). */
static inline void test_ready_run(loop_t *loop, uint32_t n)
{
    while (n--) {
        const struct loop__ready *e = loop__ready_pop(loop);
        assert_true(e->gen == 0);
        e->fn(loop, e->arg);
    }
}
#endif

/* ---- the model-based suites and the fuzzer ---------------------------------
 *
 * They use the loop's invariant checker as an extra check after every step
 * and inside every callback; their oracle is the reference model
 * (tests/support/model.h), which sees only the public API.
 */

/* loop__verify(): 0, or -1 with the first broken internal invariant in *why. */
static inline int test_loop_verify(const loop_t *loop, const char **why)
{
    return loop__verify(loop, why);
}

#endif /* LOOP_TESTS_INTERNALS_H */
