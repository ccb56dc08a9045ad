/*
 * Signals (signal.c): which signals this loop handles; arrivals are
 * collected into the ring when the eventfd wakes the loop.
 */
#ifndef LOOP_CORE_SIGNALS_H
#define LOOP_CORE_SIGNALS_H

#include "internal.h"

int loop__signal_collect(loop_t *loop);
void loop__signal_dispatch(loop_t *loop, int signo, uint32_t gen);
void loop__signal_fork(loop_t *loop);
void loop__signal_free(loop_t *loop);

#endif
