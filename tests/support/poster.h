/*
 * Another thread that posts one call to a loop with
 * loop_call_soon_threadsafe(): at once, or only once a given thread sleeps
 * in its poll, so that the call has to wake it.  Plain C (no cmocka):
 * forked children use it too.
 *
 *     struct poster p = {.loop = l, .fn = stop_cb, .wait_for = test_gettid()};
 *     assert_int_equal(poster_start(&p), 0);
 *     ... loop_run(l) ...
 *     assert_int_equal(poster_join(&p), 0);
 */
#ifndef LOOP_TESTS_POSTER_H
#define LOOP_TESTS_POSTER_H

#include <pthread.h>

#include "loop.h"
#include "watchdog.h"

struct poster {
    loop_t *loop;
    loop_fn *fn;
    void *arg;
    pid_t wait_for; /* 0: post at once; else once this thread blocks in its poll */
    int err;        /* what loop_call_soon_threadsafe() returned */
    pthread_t thread;
};

static inline void *poster_main_(void *arg)
{
    struct poster *p = arg;
    if (p->wait_for)
        wait_until_blocked(p->wait_for);
    p->err = loop_call_soon_threadsafe(p->loop, p->fn, p->arg);
    return NULL;
}

/* Start the thread; 0 or pthread_create()'s error. */
static inline int poster_start(struct poster *p)
{
    p->err = -1;
    return pthread_create(&p->thread, NULL, poster_main_, p);
}

/* Wait for the thread; what its post returned. */
static inline int poster_join(struct poster *p)
{
    int e = pthread_join(p->thread, NULL);
    return e ? -e : p->err;
}

#endif /* LOOP_TESTS_POSTER_H */
