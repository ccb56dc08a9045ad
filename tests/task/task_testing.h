/*
 * Helpers for the task suites: a trace of what ran (one letter per
 * event), hops counted as the loop's iterations, and futures and tasks
 * made in one line.
 */
#ifndef TESTS_TASK_TESTING_H
#define TESTS_TASK_TESTING_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "loop_task.h"

static char trace[128];
static size_t ntrace;

static inline void reset_trace(void)
{
    ntrace = 0;
    trace[0] = 0;
}

static inline void mark(char c)
{
    assert_true(ntrace + 1 < sizeof trace);
    trace[ntrace++] = c;
    trace[ntrace] = 0;
}

/* A plain callback that marks its letter (arg points at it). */
static inline void mark_cb(loop_t *loop, void *arg)
{
    (void)loop;
    mark(*(const char *)arg);
}

/* Hops so far: one per pass through the ready queue (an iteration). */
static inline uint64_t hops(loop_t *loop)
{
    loop_stats_t s;
    assert_int_equal(loop_stats(loop, &s), 0);
    return s.iterations;
}

static inline loop_future *new_future(loop_t *l)
{
    loop_future *f = NULL;
    assert_int_equal(loop_future_new(l, &f), 0);
    return f;
}

static inline loop_task *spawn(loop_t *l, loop_task_fn *fn, void *arg)
{
    loop_task *t = NULL;
    assert_int_equal(loop_task_spawn(l, fn, arg, &t), 0);
    assert_non_null(t);
    return t;
}

/* Run l until t is done; return its outcome. */
static inline int run_task(loop_t *l, loop_task *t, void **result)
{
    return loop_run_until_complete(l, loop_task_future(t), result);
}

#endif /* TESTS_TASK_TESTING_H */
