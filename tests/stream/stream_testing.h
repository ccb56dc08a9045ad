/*
 * Helpers for the stream suites: a loop run until a condition holds (with
 * a generous deadline, never a sleep), an echo server and a recording
 * client in callback form, and raw sockets for the other end.
 */
#ifndef TESTS_STREAM_TESTING_H
#define TESTS_STREAM_TESTING_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixtures.h"
#include "loop_stream.h"
#include "realtime.h"

/* Run iterations until cond holds; fail after 20 s (a loaded machine or
 * valgrind may be slow; a hang is a failure, never a wait). */
#define RUN_UNTIL(l, cond)                                                                         \
    do {                                                                                           \
        uint64_t t0_ = mono_ns();                                                                  \
        while (!(cond)) {                                                                          \
            assert_int_equal(loop_run_once((l), LOOP_MS(50)), 0);                                  \
            if (mono_ns() - t0_ > LOOP_SEC(20))                                                    \
                fail_msg("still not true after 20 s: %s", #cond);                                  \
        }                                                                                          \
    } while (0)

/* ---- a recording client/peer in callback form ------------------------ */

struct rec {
    char buf[1 << 16];
    size_t len;
    int data_calls, drains, connects, errors;
    int connect_err, error;
    bool eof;
    bool consume; /* take every byte in on_data (default true via rec_cb) */
    loop_stream *s;
};

static inline void rec_on_data(loop_stream *s, void *arg)
{
    struct rec *r = arg;
    r->data_calls++;
    if (!r->consume)
        return;
    const char *p;
    size_t n;
    while (loop_stream_read(s, 0, &p, &n) == 0 && n > 0) {
        size_t room = sizeof r->buf - 1 - r->len;
        if (n > room)
            n = room;
        memcpy(r->buf + r->len, p, n);
        r->len += n;
        r->buf[r->len] = 0;
    }
    if (loop_stream_eof(s))
        r->eof = true;
}

static inline void rec_on_drain(loop_stream *s, void *arg)
{
    (void)s;
    ((struct rec *)arg)->drains++;
}

static inline void rec_on_connect(loop_stream *s, int err, void *arg)
{
    (void)s;
    struct rec *r = arg;
    r->connects++;
    r->connect_err = err;
}

static inline void rec_on_error(loop_stream *s, int err, void *arg)
{
    (void)s;
    struct rec *r = arg;
    r->errors++;
    r->error = err;
}

static const loop_stream_callbacks rec_cb = {
    .on_data = rec_on_data,
    .on_drain = rec_on_drain,
    .on_connect = rec_on_connect,
    .on_error = rec_on_error,
};

/* ---- an echo server in callback form --------------------------------- */

struct echo_server {
    loop_server *srv;
    loop_stream *last; /* the newest connection */
    int conns, closed;
};

static inline void echo_on_data(loop_stream *s, void *arg)
{
    struct echo_server *e = arg;
    const char *p;
    size_t n;
    while (loop_stream_read(s, 0, &p, &n) == 0 && n > 0)
        loop_stream_write(s, p, n);
    if (loop_stream_eof(s)) {
        if (e->last == s)
            e->last = NULL;
        e->closed++;
        loop_stream_close(s);
    }
}

static inline void echo_on_error(loop_stream *s, int err, void *arg)
{
    (void)err;
    struct echo_server *e = arg;
    if (e->last == s)
        e->last = NULL;
    e->closed++;
    loop_stream_close(s);
}

static inline void echo_on_conn(loop_server *srv, loop_stream *s, void *arg)
{
    (void)srv;
    struct echo_server *e = arg;
    e->conns++;
    e->last = s;
    loop_stream_callbacks cb = {.on_data = echo_on_data, .on_error = echo_on_error};
    assert_int_equal(loop_stream_set_callbacks(s, &cb, e), 0);
}

/* Listen on 127.0.0.1, a free port. */
static inline uint16_t echo_listen(loop_t *l, struct echo_server *e, const loop_stream_options *o)
{
    assert_int_equal(loop_server_listen(l, "127.0.0.1", 0, o, echo_on_conn, e, &e->srv), 0);
    uint16_t port = loop_server_port(e->srv);
    assert_true(port > 0);
    return port;
}

/* ---- raw sockets ------------------------------------------------------ */

/* A blocking client socket connected to 127.0.0.1:port. */
static inline int raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* A raw listener on 127.0.0.1 (port 0) with a backlog; *port gets it. */
static inline int raw_listen(int backlog, uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, backlog), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Close with a reset (SO_LINGER 0). */
static inline void raw_reset(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(fd);
}

/* Shrink the kernel's buffers of fd so that a little data fills them. */
static inline void small_buffers(int fd)
{
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
}

#endif /* TESTS_STREAM_TESTING_H */
