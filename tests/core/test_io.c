/*
 * fd readiness: readers and writers over real pipes and socketpairs,
 * level-triggering, hang-ups and errors, the phase order of an iteration,
 * stale events after removal or fd-number reuse, and bad fds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

/* ---- helpers ---------------------------------------------------------- */

static loop_t *new_loop(bool strict, bool virtual_clock)
{
    loop_t *l = NULL;
    loop_options o = {.clock = virtual_clock ? LOOP_CLOCK_VIRTUAL : LOOP_CLOCK_MONOTONIC,
                      .strict_poll = strict};
    assert_int_equal(loop_new_with(&l, &o), 0);
    assert_non_null(l);
    return l;
}

static void make_socketpair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static void make_pipe(int p[2])
{
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static void put(int fd, const char *s)
{
    assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

static void close_pair(int sv[2])
{
    close(sv[0]);
    close(sv[1]);
}

/* What one handler saw. */
struct io_probe {
    int runs;
    int fd_seen;
    unsigned events;     /* of the last run */
    unsigned all_events; /* union over runs */
    void *arg_seen;
    int read_each;   /* read one byte per run */
    int remove_self; /* remove_reader on its own fd when it runs */
};

static void probe_reader(loop_t *loop, int fd, unsigned events, void *arg)
{
    struct io_probe *p = arg;
    p->runs++;
    p->fd_seen = fd;
    p->events = events;
    p->all_events |= events;
    p->arg_seen = arg;
    if (p->read_each) {
        char c;
        (void)!read(fd, &c, 1);
    }
    if (p->remove_self)
        assert_int_equal(loop_remove_reader(loop, fd), 0);
}

static void probe_writer(loop_t *loop, int fd, unsigned events, void *arg)
{
    struct io_probe *p = arg;
    p->runs++;
    p->fd_seen = fd;
    p->events = events;
    p->all_events |= events;
    if (p->remove_self)
        assert_int_equal(loop_remove_writer(loop, fd), 0);
}

static void count_cb(loop_t *loop, void *arg)
{
    (void)loop;
    (*(int *)arg)++;
}

/* An ordered record of handler names. */
struct order {
    char seq[64];
    int n;
};

struct order_entry {
    struct order *o;
    char name;
};

static void order_cb(loop_t *loop, void *arg)
{
    (void)loop;
    struct order_entry *e = arg;
    e->o->seq[e->o->n++] = e->name;
}

static void order_io(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)fd;
    (void)events;
    order_cb(loop, arg);
}

/* ---- readiness ---------------------------------------------------------- */

static void test_readable_fd_runs_its_reader_with_fd_and_arg(void **state)
{
    (void)state;
    loop_t *l = new_loop(false, true);
    int sv[2];
    make_socketpair(sv);
    struct io_probe p = {.read_each = 1};
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &p), 0);

    /* Not readable yet: nothing runs. */
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(p.runs, 0);

    put(sv[1], "x");
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(p.runs, 1);
    assert_int_equal(p.fd_seen, sv[0]);
    assert_ptr_equal(p.arg_seen, &p);
    assert_true(p.events & LOOP_READABLE);

    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void test_writable_fd_runs_its_writer(void **state)
{
    (void)state;
    loop_t *l = new_loop(false, true);
    int sv[2];
    make_socketpair(sv);
    struct io_probe p = {0};
    assert_int_equal(loop_add_writer(l, sv[0], probe_writer, &p), 0);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(p.runs, 1);
    assert_int_equal(p.fd_seen, sv[0]);
    assert_true(p.events & LOOP_WRITABLE);
    assert_int_equal(loop_remove_writer(l, sv[0]), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void test_reader_is_level_triggered(void **state)
{
    (void)state;
    loop_t *l = new_loop(true, true);
    int sv[2];
    make_socketpair(sv);
    put(sv[1], "ab");
    struct io_probe p = {0}; /* never reads */
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &p), 0);
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
        assert_int_equal(p.runs, i);
    }
    /* Reading one byte at a time: two more runs, then silence. */
    p.read_each = 1;
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(p.runs, 7);
    for (int i = 0; i < 3; i++)
        assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(p.runs, 7);
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void test_peer_close_delivers_hup_to_the_reader(void **state)
{
    (void)state;
    loop_t *l = new_loop(false, true);

    int sv[2];
    make_socketpair(sv);
    struct io_probe ps = {0};
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &ps), 0);
    close(sv[1]);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_true(ps.runs >= 1);
    assert_true(ps.events & (LOOP_HUP | LOOP_READABLE));
    char c;
    assert_int_equal(read(sv[0], &c, 1), 0); /* end of file, as the bit said */
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close(sv[0]);

    int p[2];
    make_pipe(p);
    struct io_probe pp = {0};
    assert_int_equal(loop_add_reader(l, p[0], probe_reader, &pp), 0);
    close(p[1]);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(pp.runs, 1);
    assert_true(pp.events & LOOP_HUP); /* a pipe reports only EPOLLHUP */
    assert_int_equal(loop_remove_reader(l, p[0]), 0);
    close(p[0]);
    assert_int_equal(loop_free(l), 0);
}

static void test_closed_read_end_delivers_an_error_to_the_writer(void **state)
{
    (void)state;
    loop_t *l = new_loop(false, true);

    /* A full pipe: not writable, so the writer waits... */
    int p[2];
    make_pipe(p);
    char buf[4096];
    memset(buf, 'z', sizeof buf);
    while (write(p[1], buf, sizeof buf) > 0) {
    }
    assert_true(errno == EAGAIN);
    struct io_probe w = {0};
    assert_int_equal(loop_add_writer(l, p[1], probe_writer, &w), 0);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(w.runs, 0);
    /* ...until its reader goes away: an error, with still no room. */
    close(p[0]);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(w.runs, 1);
    assert_true(w.events & LOOP_ERROR);
    assert_int_equal(loop_remove_writer(l, p[1]), 0);
    close(p[1]);

    int sv[2];
    make_socketpair(sv);
    struct io_probe ws = {0};
    assert_int_equal(loop_add_writer(l, sv[0], probe_writer, &ws), 0);
    close(sv[1]);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(ws.runs, 1);
    assert_true(ws.events & (LOOP_HUP | LOOP_ERROR | LOOP_WRITABLE));
    assert_int_equal(loop_remove_writer(l, sv[0]), 0);
    close(sv[0]);
    assert_int_equal(loop_free(l), 0);
}

static void test_pending_socket_error_runs_the_reader(void **state)
{
    (void)state;
    /* A connection refused on loopback: EPOLLERR with nothing to read. */
    int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
        skip();
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (bind(probe, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(probe, (struct sockaddr *)&a, &alen) != 0) {
        close(probe);
        skip();
    }
    close(probe); /* the port is now closed: nothing listens there */

    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    int rc = connect(s, (struct sockaddr *)&a, sizeof a);
    assert_true(rc == -1 && (errno == EINPROGRESS || errno == ECONNREFUSED));

    loop_t *l = new_loop(false, false);
    struct io_probe p = {0};
    assert_int_equal(loop_add_reader(l, s, probe_reader, &p), 0);
    assert_int_equal(loop_run_once(l, LOOP_SEC(5)), 0);
    assert_int_equal(p.runs, 1);
    assert_true(p.events & (LOOP_ERROR | LOOP_HUP));
    assert_int_equal(loop_remove_reader(l, s), 0);
    close(s);
    assert_int_equal(loop_free(l), 0);
}

/* ---- the phase order of one iteration ------------------------------------ */

static void test_iteration_runs_ready_then_io_then_timers(void **state)
{
    (void)state;
    loop_t *l = new_loop(true, true);
    int sv[2];
    make_socketpair(sv);
    put(sv[1], "x"); /* readable, and writable too */
    struct order o = {0};
    struct order_entry t = {&o, 'T'}, r = {&o, 'R'}, w = {&o, 'W'}, s = {&o, 'S'};

    /* Registered in the reverse of the order they must run in. */
    assert_int_equal(loop_call_at(l, loop_now(l), order_cb, &t, NULL), 0);
    assert_int_equal(loop_add_writer(l, sv[0], order_io, &w), 0);
    assert_int_equal(loop_add_reader(l, sv[0], order_io, &r), 0);
    assert_int_equal(loop_call_soon(l, order_cb, &s, NULL), 0);

    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(o.n, 4);
    assert_memory_equal(o.seq, "SRWT", 4);

    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    assert_int_equal(loop_remove_writer(l, sv[0]), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void test_reader_and_writer_on_one_fd_run_reader_then_writer(void **state)
{
    (void)state;
    loop_t *l = new_loop(false, true);
    int sv[2];
    make_socketpair(sv);
    put(sv[1], "x");
    struct order o = {0};
    struct order_entry r = {&o, 'R'}, w = {&o, 'W'};
    assert_int_equal(loop_add_writer(l, sv[0], order_io, &w), 0);
    assert_int_equal(loop_add_reader(l, sv[0], order_io, &r), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(o.n, 4);
    assert_memory_equal(o.seq, "RWRW", 4);
    assert_int_equal(loop_remove_writer(l, sv[0]), 0);
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

/* ---- removal and replacement within a batch ------------------------------- */

struct pair_ctx {
    int fd[2]; /* the two watched fds */
    int runs[2];
    int new_runs; /* runs of a replacement handler */
    int mode;     /* what the first handler to run does to the other */
    int extra[2]; /* a socketpair made by the first handler */
    int first;    /* index of the first handler that ran, or -1 */
};

enum {
    REMOVE_OTHER,
    REPLACE_OTHER,
    CLOSE_AND_REUSE_OTHER,
    REMOVE_OTHER_WRITER,
    REPLACE_OTHER_WRITER
};

static void replacement_reader(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    struct pair_ctx *c = arg;
    c->new_runs++;
}

static void pair_handler(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct pair_ctx *c = arg;
    int me = fd == c->fd[0] ? 0 : 1, other = 1 - me;
    assert_int_equal(fd, c->fd[me]);
    c->runs[me]++;
    if (c->first != -1)
        return;
    c->first = me;
    int ofd = c->fd[other];
    switch (c->mode) {
    case REMOVE_OTHER:
        assert_int_equal(loop_remove_reader(loop, ofd), 0);
        break;
    case REMOVE_OTHER_WRITER:
        assert_int_equal(loop_remove_writer(loop, ofd), 0);
        break;
    case REPLACE_OTHER:
        assert_int_equal(loop_add_reader(loop, ofd, replacement_reader, c), 0);
        break;
    case REPLACE_OTHER_WRITER:
        assert_int_equal(loop_add_writer(loop, ofd, replacement_reader, c), 0);
        break;
    case CLOSE_AND_REUSE_OTHER:
        /* Remove, close, and give the number to a new socket that is
         * itself readable, then watch it. */
        assert_int_equal(loop_remove_reader(loop, ofd), 0);
        make_socketpair(c->extra); /* before the close: other numbers */
        assert_int_equal(close(ofd), 0);
        assert_int_equal(dup2(c->extra[0], ofd), ofd);
        close(c->extra[0]);
        c->extra[0] = ofd;
        put(c->extra[1], "n");
        assert_int_equal(loop_add_reader(loop, ofd, replacement_reader, c), 0);
        break;
    }
}

static void test_removing_a_reader_drops_its_queued_dispatch(void **state)
{
    (void)state;
    loop_t *l = new_loop(true, true);
    int a[2], b[2];
    make_socketpair(a);
    make_socketpair(b);
    put(a[1], "x");
    put(b[1], "x");
    struct pair_ctx c = {.fd = {a[0], b[0]}, .mode = REMOVE_OTHER, .first = -1};
    assert_int_equal(loop_add_reader(l, a[0], pair_handler, &c), 0);
    assert_int_equal(loop_add_reader(l, b[0], pair_handler, &c), 0);

    /* Both were ready at the poll; the first to run removes the other. */
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(c.first == 0 || c.first == 1, 1);
    assert_int_equal(c.runs[c.first], 1);
    assert_int_equal(c.runs[1 - c.first], 0);

    /* And in later iterations, too. */
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(c.runs[c.first], 2);
    assert_int_equal(c.runs[1 - c.first], 0);
    assert_int_equal(loop_remove_reader(l, c.fd[1 - c.first]), -ENOENT);
    assert_int_equal(loop_remove_reader(l, c.fd[c.first]), 0);
    close_pair(a);
    close_pair(b);
    assert_int_equal(loop_free(l), 0);
}

static void test_removing_a_writer_drops_its_queued_dispatch(void **state)
{
    (void)state;
    loop_t *l = new_loop(true, true);
    int a[2], b[2];
    make_socketpair(a);
    make_socketpair(b);
    struct pair_ctx c = {.fd = {a[0], b[0]}, .mode = REMOVE_OTHER_WRITER, .first = -1};
    assert_int_equal(loop_add_writer(l, a[0], pair_handler, &c), 0);
    assert_int_equal(loop_add_writer(l, b[0], pair_handler, &c), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_true(c.first == 0 || c.first == 1);
    assert_int_equal(c.runs[c.first], 1);
    assert_int_equal(c.runs[1 - c.first], 0);
    assert_int_equal(loop_remove_writer(l, c.fd[c.first]), 0);
    close_pair(a);
    close_pair(b);
    assert_int_equal(loop_free(l), 0);
}

static void test_replacing_a_reader_drops_the_old_readers_queued_dispatch(void **state)
{
    (void)state;
    loop_t *l = new_loop(true, true);
    int a[2], b[2];
    make_socketpair(a);
    make_socketpair(b);
    put(a[1], "x");
    put(b[1], "x");
    struct pair_ctx c = {.fd = {a[0], b[0]}, .mode = REPLACE_OTHER, .first = -1};
    assert_int_equal(loop_add_reader(l, a[0], pair_handler, &c), 0);
    assert_int_equal(loop_add_reader(l, b[0], pair_handler, &c), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_true(c.first == 0 || c.first == 1);
    assert_int_equal(c.runs[1 - c.first], 0); /* the old reader never runs */
    assert_int_equal(c.new_runs, 0);          /* the new one waits for a poll */
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(c.runs[1 - c.first], 0);
    assert_int_equal(c.new_runs, 1);
    assert_int_equal(loop_remove_reader(l, a[0]), 0);
    assert_int_equal(loop_remove_reader(l, b[0]), 0);
    close_pair(a);
    close_pair(b);
    assert_int_equal(loop_free(l), 0);
}

static void test_replacing_a_writer_drops_the_old_writers_queued_dispatch(void **state)
{
    (void)state;
    loop_t *l = new_loop(true, true);
    int a[2], b[2];
    make_socketpair(a);
    make_socketpair(b);
    struct pair_ctx c = {.fd = {a[0], b[0]}, .mode = REPLACE_OTHER_WRITER, .first = -1};
    assert_int_equal(loop_add_writer(l, a[0], pair_handler, &c), 0);
    assert_int_equal(loop_add_writer(l, b[0], pair_handler, &c), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_true(c.first == 0 || c.first == 1);
    assert_int_equal(c.runs[1 - c.first], 0);
    assert_int_equal(c.new_runs, 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(c.runs[1 - c.first], 0);
    assert_int_equal(c.new_runs, 1);
    assert_int_equal(loop_remove_writer(l, a[0]), 0);
    assert_int_equal(loop_remove_writer(l, b[0]), 0);
    close_pair(a);
    close_pair(b);
    assert_int_equal(loop_free(l), 0);
}

static void test_reused_fd_number_never_gets_the_old_registrations_event(void **state)
{
    (void)state;
    loop_t *l = new_loop(true, true);
    int a[2], b[2];
    make_socketpair(a);
    make_socketpair(b);
    put(a[1], "x");
    put(b[1], "x");
    struct pair_ctx c = {.fd = {a[0], b[0]}, .mode = CLOSE_AND_REUSE_OTHER, .first = -1};
    assert_int_equal(loop_add_reader(l, a[0], pair_handler, &c), 0);
    assert_int_equal(loop_add_reader(l, b[0], pair_handler, &c), 0);

    assert_int_equal(loop_run_once(l, 0), 0);
    assert_true(c.first == 0 || c.first == 1);
    assert_int_equal(c.runs[1 - c.first], 0);
    assert_int_equal(c.new_runs, 0); /* the event was the old socket's */

    /* The new socket is readable in its own right: next iteration. */
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(c.new_runs, 1);
    assert_int_equal(c.runs[1 - c.first], 0);

    int reused = c.fd[1 - c.first];
    assert_int_equal(loop_remove_reader(l, reused), 0);
    assert_int_equal(loop_remove_reader(l, c.fd[c.first]), 0);
    close(c.extra[0]); /* == reused */
    close(c.extra[1]);
    if (c.first == 0) {
        close_pair(a);
        close(b[1]);
    } else {
        close_pair(b);
        close(a[1]);
    }
    assert_int_equal(loop_free(l), 0);
}

static void test_add_reader_twice_replaces_the_callback(void **state)
{
    (void)state;
    loop_t *l = new_loop(false, true);
    int sv[2];
    make_socketpair(sv);
    put(sv[1], "x");
    struct io_probe first = {0}, second = {0};
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &first), 0);
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &second), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(first.runs, 0);
    assert_int_equal(second.runs, 1);
    assert_ptr_equal(second.arg_seen, &second);
    /* One registration: one removal empties it. */
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    assert_int_equal(loop_remove_reader(l, sv[0]), -ENOENT);
    assert_int_equal(loop_run(l), 0); /* nothing keeps it alive */

    struct io_probe w1 = {0}, w2 = {0};
    assert_int_equal(loop_add_writer(l, sv[0], probe_writer, &w1), 0);
    assert_int_equal(loop_add_writer(l, sv[0], probe_writer, &w2), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(w1.runs, 0);
    assert_int_equal(w2.runs, 1);
    assert_int_equal(loop_remove_writer(l, sv[0]), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void test_removing_one_direction_keeps_the_other(void **state)
{
    (void)state;
    loop_t *l = new_loop(true, true);
    int sv[2];
    make_socketpair(sv);
    put(sv[1], "x");
    struct io_probe r = {0}, w = {0};
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &r), 0);
    assert_int_equal(loop_add_writer(l, sv[0], probe_writer, &w), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(r.runs, 1);
    assert_int_equal(w.runs, 1);

    assert_int_equal(loop_remove_writer(l, sv[0]), 0);
    assert_int_equal(loop_remove_writer(l, sv[0]), -ENOENT);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(r.runs, 2);
    assert_int_equal(w.runs, 1);

    assert_int_equal(loop_add_writer(l, sv[0], probe_writer, &w), 0);
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(r.runs, 2);
    assert_int_equal(w.runs, 2);
    assert_true(w.events & LOOP_WRITABLE);

    assert_int_equal(loop_remove_writer(l, sv[0]), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(r.runs, 2);
    assert_int_equal(w.runs, 2);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

/* ---- handlers changed from inside I/O callbacks ------------------------- */

struct adder {
    int target_fd;
    struct io_probe *target;
    int runs;
};

static void adding_reader(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct adder *a = arg;
    a->runs++;
    if (a->runs == 1) {
        assert_int_equal(loop_add_reader(loop, a->target_fd, probe_reader, a->target), 0);
        /* And re-register itself, which is a replacement: its next run
         * comes from the next poll, as level-triggering requires. */
        assert_int_equal(loop_add_reader(loop, fd, adding_reader, a), 0);
    }
}

static void test_reader_added_from_an_io_callback_runs_from_the_next_iteration(void **state)
{
    (void)state;
    loop_t *l = new_loop(true, true);
    int a[2], b[2];
    make_socketpair(a);
    make_socketpair(b);
    put(a[1], "x");
    put(b[1], "x");
    struct io_probe target = {0};
    struct adder ad = {.target_fd = b[0], .target = &target};
    assert_int_equal(loop_add_reader(l, a[0], adding_reader, &ad), 0);

    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(ad.runs, 1);
    assert_int_equal(target.runs, 0);

    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(ad.runs, 2);
    assert_int_equal(target.runs, 1);

    assert_int_equal(loop_remove_reader(l, a[0]), 0);
    assert_int_equal(loop_remove_reader(l, b[0]), 0);
    close_pair(a);
    close_pair(b);
    assert_int_equal(loop_free(l), 0);
}

static void test_reader_removing_itself_runs_no_more_and_lets_run_return(void **state)
{
    (void)state;
    loop_t *l = new_loop(false, true);
    int sv[2];
    make_socketpair(sv);
    put(sv[1], "xyz"); /* stays readable: it never reads */
    struct io_probe p = {.remove_self = 1};
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &p), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(p.runs, 1);
    assert_int_equal(loop_remove_reader(l, sv[0]), -ENOENT);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

struct closer {
    int runs;
};

static void remove_and_close_reader(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct closer *c = arg;
    c->runs++;
    assert_int_equal(loop_remove_reader(loop, fd), 0);
    assert_int_equal(close(fd), 0);
}

static void test_reader_may_remove_and_close_its_fd_in_its_callback(void **state)
{
    (void)state;
    loop_t *l = new_loop(false, true);
    int sv[2];
    make_socketpair(sv);
    put(sv[1], "x");
    struct closer c = {0};
    assert_int_equal(loop_add_reader(l, sv[0], remove_and_close_reader, &c), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(c.runs, 1);
    close(sv[1]);
    assert_int_equal(loop_free(l), 0);
}

/* ---- the kernel's view: no stale registration survives removal ----------- */

static void test_removed_fd_closed_while_a_dup_stays_readable_delivers_nothing(void **state)
{
    (void)state;
    loop_t *l = new_loop(false, false);
    int sv[2];
    make_socketpair(sv);
    put(sv[1], "x");
    int dup_fd = dup(sv[0]);
    assert_true(dup_fd >= 0);

    struct io_probe p = {0};
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &p), 0);
    /* Also a writer, removed first, so the fd goes through a partial
     * change before its full removal. */
    struct io_probe w = {0};
    assert_int_equal(loop_add_writer(l, sv[0], probe_writer, &w), 0);
    assert_int_equal(loop_run_once(l, LOOP_SEC(5)), 0);
    assert_int_equal(p.runs, 1);
    assert_int_equal(w.runs, 1);

    assert_int_equal(loop_remove_writer(l, sv[0]), 0);
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close(sv[0]); /* the file lives on through dup_fd, still readable */

    /* Keep the loop waiting so that it really polls. */
    loop_ref(l);
    for (int i = 0; i < 3; i++)
        assert_int_equal(loop_run_once(l, LOOP_MS(20)), 0);
    assert_int_equal(p.runs, 1);
    assert_int_equal(w.runs, 1);

    /* The loop's fd, which a host would poll, is not readable: nothing
     * stale is left in the kernel to wake (or spin) the loop. */
    struct pollfd pfd = {.fd = loop_fd(l), .events = POLLIN};
    assert_true(pfd.fd >= 0);
    assert_int_equal(poll(&pfd, 1, 0), 0);

    loop_unref(l);
    assert_int_equal(loop_run(l), 0);
    char c;
    assert_int_equal(read(dup_fd, &c, 1), 1);
    close(dup_fd);
    close(sv[1]);
    assert_int_equal(loop_free(l), 0);
}

/* ---- flow control --------------------------------------------------------- */

static void test_writer_on_a_full_socket_waits_until_the_peer_reads(void **state)
{
    (void)state;
    loop_t *l = new_loop(false, true);
    int sv[2];
    make_socketpair(sv);
    char buf[4096];
    memset(buf, 'z', sizeof buf);
    size_t total = 0;
    for (;;) {
        ssize_t n = write(sv[0], buf, sizeof buf);
        if (n < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            break;
        }
        total += (size_t)n;
    }
    assert_true(total > 0);

    struct io_probe w = {.remove_self = 1};
    assert_int_equal(loop_add_writer(l, sv[0], probe_writer, &w), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(w.runs, 0);

    size_t drained = 0;
    for (;;) {
        ssize_t n = read(sv[1], buf, sizeof buf);
        if (n <= 0)
            break;
        drained += (size_t)n;
    }
    assert_true(drained == total);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(w.runs, 1);
    assert_true(w.events & LOOP_WRITABLE);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

/* ---- many fds --------------------------------------------------------------- */

static int usable_pairs(int want)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rlim_t need = (rlim_t)want * 2 + 64;
    if (rl.rlim_cur < need) {
        rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    if (rl.rlim_cur >= need)
        return want;
    return (int)((rl.rlim_cur - 64) / 2);
}

struct many {
    int runs;
    int bad_events;
};

static void many_reader(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    struct many *m = arg;
    m->runs++;
    if (!(events & LOOP_READABLE))
        m->bad_events++;
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
}

static void many_reader_no_read(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    struct many *m = arg;
    m->runs++;
}

static void test_every_reader_of_1000_readable_socketpairs_runs(void **state)
{
    (void)state;
    int n = usable_pairs(1000);
    assert_true(n >= 400);
    int(*sv)[2] = calloc((size_t)n, sizeof *sv);
    struct many *m = calloc((size_t)n, sizeof *m);
    assert_non_null(sv);
    assert_non_null(m);
    loop_t *l = new_loop(false, false);
    for (int i = 0; i < n; i++) {
        make_socketpair(sv[i]);
        put(sv[i][1], "x");
        assert_int_equal(loop_add_reader(l, sv[i][0], many_reader, &m[i]), 0);
    }
    /* A poll may report only so many events at once; every ready fd must
     * still get its turn within a few iterations. */
    for (int it = 0; it < 4; it++)
        assert_int_equal(loop_run_once(l, 0), 0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(m[i].runs, 1);
        assert_int_equal(m[i].bad_events, 0);
    }

    /* Readers that never read stay ready: none of them starves. */
    for (int i = 0; i < n; i++) {
        m[i].runs = 0;
        put(sv[i][1], "y");
        assert_int_equal(loop_add_reader(l, sv[i][0], many_reader_no_read, &m[i]), 0);
    }
    for (int it = 0; it < 4; it++)
        assert_int_equal(loop_run_once(l, 0), 0);
    for (int i = 0; i < n; i++)
        assert_true(m[i].runs >= 1);

    for (int i = 0; i < n; i++) {
        assert_int_equal(loop_remove_reader(l, sv[i][0]), 0);
        close_pair(sv[i]);
    }
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_free(l), 0);
    free(sv);
    free(m);
}

/* ---- liveness ----------------------------------------------------------------- */

static void write_later_cb(loop_t *loop, void *arg)
{
    (void)loop;
    put(*(int *)arg, "x");
}

static void test_fd_handler_keeps_run_alive_until_removed(void **state)
{
    (void)state;
    loop_t *l = new_loop(false, true);
    int sv[2];
    make_socketpair(sv);
    struct io_probe p = {.read_each = 1, .remove_self = 1};
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &p), 0);
    assert_int_equal(loop_call_later(l, LOOP_SEC(1), write_later_cb, &sv[1], NULL), 0);
    /* After the timer, only the reader keeps the loop going; it then
     * removes itself, and run returns. */
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(p.runs, 1);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static volatile sig_atomic_t signals_seen;

static void on_sigusr1(int signo)
{
    (void)signo;
    signals_seen++;
}

static void stop_cb(loop_t *loop, void *arg)
{
    (void)arg;
    loop_stop(loop);
}

static void test_signal_interrupting_the_poll_is_not_an_error(void **state)
{
    (void)state;
    struct sigaction sa = {.sa_handler = on_sigusr1}, old;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the wait sees EINTR */
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
    timer_t tid;
    assert_int_equal(timer_create(CLOCK_MONOTONIC, &sev, &tid), 0);
    signals_seen = 0;

    loop_t *l = new_loop(true, false);
    loop_ref(l);
    int ran = 0;
    /* The signal comes 10 ms in, while the loop waits for a 100 ms timer. */
    struct itimerspec its = {.it_value = {.tv_nsec = 10 * 1000 * 1000}};
    assert_int_equal(loop_call_later(l, LOOP_MS(100), count_cb, &ran, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_MS(100), stop_cb, NULL, NULL), 0);
    assert_int_equal(timer_settime(tid, 0, &its, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(ran, 1);
    assert_true(signals_seen >= 1);

    /* And loop_run_once: an interrupted wait is an iteration, 0. */
    assert_int_equal(timer_settime(tid, 0, &its, NULL), 0);
    assert_int_equal(loop_run_once(l, LOOP_MS(200)), 0);
    while (signals_seen < 2) /* delivered by now or imminently */
        assert_int_equal(loop_run_once(l, LOOP_MS(200)), 0);

    loop_unref(l);
    timer_delete(tid);
    assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
    assert_int_equal(loop_free(l), 0);
}

/* ---- bad fds and arguments ------------------------------------------------------ */

static void test_negative_fd_is_ebadf(void **state)
{
    (void)state;
    loop_t *l = new_loop(false, true);
    struct io_probe p = {0};
    assert_int_equal(loop_add_reader(l, -1, probe_reader, &p), -EBADF);
    assert_int_equal(loop_add_writer(l, -1, probe_writer, &p), -EBADF);
    assert_int_equal(loop_add_reader(l, INT_MIN, probe_reader, &p), -EBADF);
    assert_int_equal(loop_remove_reader(l, -1), -EBADF);
    assert_int_equal(loop_remove_writer(l, -1), -EBADF);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_closed_fd_is_ebadf(void **state)
{
    (void)state;
    loop_t *l = new_loop(false, true);
    int p[2];
    make_pipe(p);
    close(p[0]);
    close(p[1]);
    struct io_probe pr = {0};
    assert_int_equal(loop_add_reader(l, p[0], probe_reader, &pr), -EBADF);
    assert_int_equal(loop_add_writer(l, p[1], probe_writer, &pr), -EBADF);
    /* Nothing was registered. */
    assert_int_equal(loop_remove_reader(l, p[0]), -ENOENT);
    assert_int_equal(loop_remove_writer(l, p[1]), -ENOENT);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(pr.runs, 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_closed_fd_below_a_watched_one_is_ebadf(void **state)
{
    (void)state;
    /* A closed number inside the range the loop already tracks. */
    loop_t *l = new_loop(false, true);
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    struct io_probe pr = {0};
    int hi = b[0] > a[0] ? b[0] : a[0];
    int lo = b[0] > a[0] ? a[0] : b[0];
    assert_int_equal(loop_add_reader(l, hi, probe_reader, &pr), 0);
    assert_int_equal(close(lo), 0);
    assert_int_equal(loop_add_reader(l, lo, probe_reader, &pr), -EBADF);
    assert_int_equal(loop_remove_reader(l, lo), -ENOENT);
    assert_int_equal(loop_remove_reader(l, hi), 0);
    close(hi);
    close(a[1]);
    close(b[1]);
    assert_int_equal(loop_free(l), 0);
}

static void test_huge_fd_is_ebadf(void **state)
{
    (void)state;
    loop_t *l = new_loop(false, true);
    struct io_probe p = {0};
    assert_int_equal(loop_add_reader(l, 1 << 30, probe_reader, &p), -EBADF);
    assert_int_equal(loop_add_writer(l, 1 << 30, probe_writer, &p), -EBADF);
    assert_int_equal(loop_add_reader(l, INT_MAX, probe_reader, &p), -EBADF);
    /* Not negative, just never registered. */
    assert_int_equal(loop_remove_reader(l, 1 << 30), -ENOENT);
    assert_int_equal(loop_remove_writer(l, INT_MAX), -ENOENT);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_regular_file_and_directory_are_eperm(void **state)
{
    (void)state;
    loop_t *l = new_loop(false, true);
    struct io_probe p = {0};
    FILE *f = tmpfile();
    assert_non_null(f);
    int ffd = fileno(f);
    assert_int_equal(loop_add_reader(l, ffd, probe_reader, &p), -EPERM);
    assert_int_equal(loop_add_writer(l, ffd, probe_writer, &p), -EPERM);
    assert_int_equal(loop_remove_reader(l, ffd), -ENOENT);
    assert_int_equal(loop_remove_writer(l, ffd), -ENOENT);

    int dfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    assert_int_equal(loop_add_reader(l, dfd, probe_reader, &p), -EPERM);
    assert_int_equal(loop_add_writer(l, dfd, probe_writer, &p), -EPERM);
    assert_int_equal(loop_remove_reader(l, dfd), -ENOENT);

    /* Nothing registered: run returns at once. */
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(p.runs, 0);
    close(dfd);
    fclose(f);
    assert_int_equal(loop_free(l), 0);
}

static void test_eperm_on_a_second_direction_leaves_the_first_intact(void **state)
{
    (void)state;
    /* A failed add must not disturb what is registered on other fds. */
    loop_t *l = new_loop(false, true);
    int sv[2];
    make_socketpair(sv);
    put(sv[1], "x");
    struct io_probe r = {0}, bad = {0};
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &r), 0);
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(loop_add_reader(l, fileno(f), probe_reader, &bad), -EPERM);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(r.runs, 1);
    assert_int_equal(bad.runs, 0);
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    fclose(f);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void test_null_loop_or_fn_is_einval(void **state)
{
    (void)state;
    loop_t *l = new_loop(false, true);
    int sv[2];
    make_socketpair(sv);
    struct io_probe p = {0};
    assert_int_equal(loop_add_reader(NULL, sv[0], probe_reader, &p), -EINVAL);
    assert_int_equal(loop_add_writer(NULL, sv[0], probe_writer, &p), -EINVAL);
    assert_int_equal(loop_add_reader(l, sv[0], NULL, &p), -EINVAL);
    assert_int_equal(loop_add_writer(l, sv[0], NULL, &p), -EINVAL);
    assert_int_equal(loop_remove_reader(NULL, sv[0]), -EINVAL);
    assert_int_equal(loop_remove_writer(NULL, sv[0]), -EINVAL);
    assert_int_equal(loop_remove_reader(l, sv[0]), -ENOENT);
    assert_int_equal(loop_remove_writer(l, sv[0]), -ENOENT);
    assert_int_equal(loop_run(l), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void test_the_loops_own_fd_is_einval(void **state)
{
    (void)state;
    loop_t *l = new_loop(false, true);
    int epfd = loop_fd(l);
    assert_true(epfd >= 0);
    struct io_probe p = {0};
    assert_int_equal(loop_add_reader(l, epfd, probe_reader, &p), -EINVAL);
    assert_int_equal(loop_add_writer(l, epfd, probe_writer, &p), -EINVAL);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_remove_of_an_unregistered_fd_is_enoent(void **state)
{
    (void)state;
    loop_t *l = new_loop(false, true);
    int sv[2];
    make_socketpair(sv);
    struct io_probe p = {0};
    assert_int_equal(loop_remove_reader(l, sv[0]), -ENOENT);
    assert_int_equal(loop_remove_writer(l, sv[0]), -ENOENT);
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &p), 0);
    assert_int_equal(loop_remove_writer(l, sv[0]), -ENOENT); /* only a reader */
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    assert_int_equal(loop_remove_reader(l, sv[0]), -ENOENT);
    assert_int_equal(loop_remove_reader(l, 0), -ENOENT);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readable_fd_runs_its_reader_with_fd_and_arg),
        cmocka_unit_test(test_writable_fd_runs_its_writer),
        cmocka_unit_test(test_reader_is_level_triggered),
        cmocka_unit_test(test_peer_close_delivers_hup_to_the_reader),
        cmocka_unit_test(test_closed_read_end_delivers_an_error_to_the_writer),
        cmocka_unit_test(test_pending_socket_error_runs_the_reader),
        cmocka_unit_test(test_iteration_runs_ready_then_io_then_timers),
        cmocka_unit_test(test_reader_and_writer_on_one_fd_run_reader_then_writer),
        cmocka_unit_test(test_removing_a_reader_drops_its_queued_dispatch),
        cmocka_unit_test(test_removing_a_writer_drops_its_queued_dispatch),
        cmocka_unit_test(test_replacing_a_reader_drops_the_old_readers_queued_dispatch),
        cmocka_unit_test(test_replacing_a_writer_drops_the_old_writers_queued_dispatch),
        cmocka_unit_test(test_reused_fd_number_never_gets_the_old_registrations_event),
        cmocka_unit_test(test_add_reader_twice_replaces_the_callback),
        cmocka_unit_test(test_removing_one_direction_keeps_the_other),
        cmocka_unit_test(test_reader_added_from_an_io_callback_runs_from_the_next_iteration),
        cmocka_unit_test(test_reader_removing_itself_runs_no_more_and_lets_run_return),
        cmocka_unit_test(test_reader_may_remove_and_close_its_fd_in_its_callback),
        cmocka_unit_test(test_removed_fd_closed_while_a_dup_stays_readable_delivers_nothing),
        cmocka_unit_test(test_writer_on_a_full_socket_waits_until_the_peer_reads),
        cmocka_unit_test(test_every_reader_of_1000_readable_socketpairs_runs),
        cmocka_unit_test(test_fd_handler_keeps_run_alive_until_removed),
        cmocka_unit_test(test_signal_interrupting_the_poll_is_not_an_error),
        cmocka_unit_test(test_negative_fd_is_ebadf),
        cmocka_unit_test(test_closed_fd_is_ebadf),
        cmocka_unit_test(test_closed_fd_below_a_watched_one_is_ebadf),
        cmocka_unit_test(test_huge_fd_is_ebadf),
        cmocka_unit_test(test_regular_file_and_directory_are_eperm),
        cmocka_unit_test(test_eperm_on_a_second_direction_leaves_the_first_intact),
        cmocka_unit_test(test_null_loop_or_fn_is_einval),
        cmocka_unit_test(test_the_loops_own_fd_is_einval),
        cmocka_unit_test(test_remove_of_an_unregistered_fd_is_enoent),
    };
    signal(SIGPIPE, SIG_IGN); /* a broken pipe fails a test, not the run */
    alarm(120);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
