/*
 * fds (io_epoll.c): the fd table, batched epoll_ctl changes, the timed
 * wait, and the dispatch of fd events that went through the ready ring.
 */
#ifndef LOOP_CORE_IO_EPOLL_H
#define LOOP_CORE_IO_EPOLL_H

#include "alloc.h"

int loop__io_init(loop_t *loop);
void loop__io_fork(loop_t *loop, int epfd);
int loop__io_poll(loop_t *loop, int64_t timeout_ns, uint64_t deadline, bool *woken);
void loop__io_dispatch(loop_t *loop, int fd, unsigned kind, uint32_t gen);
void loop__io_free(loop_t *loop);

#endif
