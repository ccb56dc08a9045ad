/*
 * Wake-ups and threadsafe calls (wakeup.c): the loop's eventfd, and the
 * queue other threads post to.
 */
#ifndef LOOP_CORE_WAKEUP_H
#define LOOP_CORE_WAKEUP_H

#include "alloc.h"

int loop__wakeup_init(loop_t *loop);
int loop__wakeup_open(int epfd);
void loop__wakeup_fork(loop_t *loop, int wakefd);
int loop__wakeup_drain(loop_t *loop, bool direct);
uint32_t loop__wakeup_run_taken(loop_t *loop);
void loop__wakeup_signal(loop_t *loop);
bool loop__wakeup_pending(loop_t *loop);
void loop__wakeup_free(loop_t *loop);

/* The eventfd: signal handlers write it too. */
static inline int loop__wakeup_fd(const loop_t *loop)
{
    return loop->wakeup.fd;
}

#endif
