/*
 * What most suites need: cmocka, loops made and checked in one line, the
 * callbacks that only count or stop, assertions on 64-bit values, and a
 * comparator for sorting them.
 *
 * Every helper here is static inline: a suite is one source file, and a
 * helper it does not use costs it nothing (see tests/CMakeLists.txt).
 */
#ifndef LOOP_TESTS_FIXTURES_H
#define LOOP_TESTS_FIXTURES_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdbool.h>

#include "loop.h"

/* cmocka prints the two sides in hex: these print the expressions and their
 * values in decimal. */
#define assert_u64_eq(a, b)                                                                        \
    do {                                                                                           \
        uint64_t a_ = (a), b_ = (b);                                                               \
        if (a_ != b_)                                                                              \
            fail_msg("%s = %" PRIu64 " != %s = %" PRIu64, #a, a_, #b, b_);                         \
    } while (0)

#define assert_u64_ge(a, b)                                                                        \
    do {                                                                                           \
        uint64_t a_ = (a), b_ = (b);                                                               \
        if (!(a_ >= b_))                                                                           \
            fail_msg("%s = %" PRIu64 " < %s = %" PRIu64, #a, a_, #b, b_);                          \
    } while (0)

#define assert_u64_lt(a, b)                                                                        \
    do {                                                                                           \
        uint64_t a_ = (a), b_ = (b);                                                               \
        if (!(a_ < b_))                                                                            \
            fail_msg("%s = %" PRIu64 " >= %s = %" PRIu64, #a, a_, #b, b_);                         \
    } while (0)

/* ---- loops ---------------------------------------------------------------- */

static inline loop_t *new_loop_with(loop_options o)
{
    loop_t *l = NULL;
    assert_int_equal(loop_new_with(&l, &o), 0);
    assert_non_null(l);
    return l;
}

/* CLOCK_MONOTONIC, default polling: what loop_new() gives. */
static inline loop_t *new_real_loop(void)
{
    return new_loop_with((loop_options){0});
}

/* The virtual clock: deterministic time, for everything but real waits. */
static inline loop_t *new_virtual_loop(bool strict)
{
    return new_loop_with((loop_options){.clock = LOOP_CLOCK_VIRTUAL, .strict_poll = strict});
}

/* ---- callbacks -------------------------------------------------------------- */

/* ++*(int *)arg */
static inline void count_cb(loop_t *loop, void *arg)
{
    (void)loop;
    (*(int *)arg)++;
}

/* ++*(int *)arg, for an fd. */
static inline void count_io(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    (*(int *)arg)++;
}

/* loop_stop(), and ++*(int *)arg unless arg is NULL. */
static inline void stop_cb(loop_t *loop, void *arg)
{
    loop_stop(loop);
    if (arg)
        (*(int *)arg)++;
}

static inline void nop_cb(loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
}

static inline void nop_io(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    (void)arg;
}

/* A call_soon chain: each link queues the next, until `left` links ran. */
struct chain {
    int left;
    int ran;
};

static inline void chain_cb(loop_t *loop, void *arg)
{
    struct chain *c = arg;
    c->ran++;
    if (--c->left > 0)
        assert_int_equal(loop_call_soon(loop, chain_cb, c, NULL), 0);
}

/* ---- sorting ---------------------------------------------------------------- */

/* qsort() comparator for uint64_t. */
static inline int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

#endif /* LOOP_TESTS_FIXTURES_H */
