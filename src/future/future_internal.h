/* Between the files of the future layer only. */
#ifndef LOOP_FUTURE_INTERNAL_H
#define LOOP_FUTURE_INTERNAL_H

#include "loop_future.h"

/*
 * size bytes (zeroed) that live as long as f: freed with it, and so also
 * when the loop is freed.  The state of a combinator hangs on the future
 * it completes.  NULL on failure; at most one per future.
 */
void *loop__future_aux(loop_future *f, size_t size);

#endif
