/*
 * fds (io_epoll.c): the fd table, batched epoll_ctl changes, the timed
 * wait, and the dispatch of fd events that went through the ready ring.
 */
#ifndef LOOP_CORE_IO_EPOLL_H
#define LOOP_CORE_IO_EPOLL_H

#include "alloc.h"
#include "callback.h"

int loop__io_init(loop_t *loop);
void loop__io_fork(loop_t *loop, int epfd);
int loop__io_poll(loop_t *loop, int64_t timeout_ns, uint64_t deadline, bool *woken, bool direct);
uint32_t loop__io_run_pending(loop_t *loop);
void loop__io_free(loop_t *loop);

/* The events a reader, and a writer, is called for. */
#define RMASK (LOOP_READABLE | LOOP_HUP | LOOP_ERROR)
#define WMASK (LOOP_WRITABLE | LOOP_HUP | LOOP_ERROR)

/*
 * Run a queued fd dispatch, unless its reader or writer was removed or
 * replaced since it was queued (a live registration has a non-zero
 * generation).  A reader sees the read side's events, a writer the write
 * side's; one handler for both ways sees them all, in one call.
 */
static inline void loop__io_dispatch(loop_t *loop, int fd, unsigned kind, uint32_t gen)
{
    const struct loop__fd *f = &loop->io.fds[fd];
    if (kind == LOOP__DISPATCH_READ) {
        if (f->rgen == gen)
            loop__run_io(loop, f->rfn, fd, f->revents & (RMASK | f->all), f->rarg);
    } else if (f->wgen == gen) {
        loop__run_io(loop, f->wfn, fd, f->revents & (WMASK | f->all), f->warg);
    }
}

#endif
