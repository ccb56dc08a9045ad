/*
 * fd handlers that record what they saw: how often they ran, with which fd,
 * events and arg, and that may read a byte or remove themselves as they
 * run.  Include after fixtures.h.
 */
#ifndef LOOP_TESTS_IO_PROBE_H
#define LOOP_TESTS_IO_PROBE_H

#include <unistd.h>

struct io_probe {
    int runs;
    int fd_seen;
    unsigned events;     /* of the last run */
    unsigned all_events; /* union over runs */
    void *arg_seen;
    int read_each;   /* read one byte per run */
    int remove_self; /* remove its own registration when it runs */
};

static inline void io_probe_saw(struct io_probe *p, int fd, unsigned events)
{
    p->runs++;
    p->fd_seen = fd;
    p->events = events;
    p->all_events |= events;
    p->arg_seen = p;
}

/* A reader whose arg is its struct io_probe. */
static inline void probe_reader(loop_t *loop, int fd, unsigned events, void *arg)
{
    struct io_probe *p = arg;
    io_probe_saw(p, fd, events);
    if (p->read_each) {
        char c;
        (void)!read(fd, &c, 1);
    }
    if (p->remove_self)
        assert_int_equal(loop_remove_reader(loop, fd), 0);
}

/* A writer whose arg is its struct io_probe. */
static inline void probe_writer(loop_t *loop, int fd, unsigned events, void *arg)
{
    struct io_probe *p = arg;
    io_probe_saw(p, fd, events);
    if (p->remove_self)
        assert_int_equal(loop_remove_writer(loop, fd), 0);
}

#endif /* LOOP_TESTS_IO_PROBE_H */
