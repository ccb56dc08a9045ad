/*
 * http_hello_cb: http_hello (see http_hello.c) in callback form: the same
 * server, with the stream layer's callbacks instead of tasks, for programs
 * that link no coroutines.
 *
 *   usage: http_hello_cb [--virtual-time] [PORT]
 *
 * Each connection is a small state machine driven by on_data and
 * on_drain: answer every complete request that is buffered while the
 * stream is not paused; when it is (more than 64 KiB of responses queued
 * for a client that does not read), stop and go on from on_drain.  Reading
 * pauses by itself once the input buffer holds twice its limit, so a
 * client that only sends costs bounded memory.
 */
#include "example.h"
#include "http_parse.h"
#include "loop_stream.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEAD_MAX 8192
#define LINGER_MS 2000

struct conn {
    loop_stream *s;
    struct conn *prev, *next; /* every open connection, to close them at exit */
    struct request pending;   /* the request whose body is being skipped */
    uint64_t body_left;
    bool lingering; /* answered for the last time: discard until the client closes */
};

static struct conn *conns;

static void on_close(loop_stream *s, void *arg)
{
    (void)s;
    struct conn *c = arg;
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

enum { CLOSED = -1, WAIT = 0, MORE = 1 }; /* what a step leaves */

/* Queue a response.  CLOSED if the connection is done for (c is freed). */
static int respond(struct conn *c, int status, const struct request *rq)
{
    char out[HTTP_RESPONSE_MAX];
    if (loop_stream_write(c->s, out, http_response(out, status, rq)) != 0) {
        loop_stream_close(c->s);
        return CLOSED;
    }
    if (rq->keep_alive)
        return MORE;
    /* The last answer: shut our side once it is sent, then linger. */
    c->lingering = true;
    if (loop_stream_shutdown_write(c->s) != 0 ||
        loop_stream_set_timeout(c->s, LOOP_MS(LINGER_MS)) != 0) {
        loop_stream_close(c->s);
        return CLOSED;
    }
    return MORE;
}

/* Discard what the client still sends; close at its end of file. */
static void linger_read(struct conn *c)
{
    const char *data;
    size_t n;
    int err;
    while ((err = loop_stream_read(c->s, 0, &data, &n)) == 0 && n > 0) {
    }
    if (err != -EAGAIN)
        loop_stream_close(c->s); /* end of file (0), or an error */
}

/* One step: skip a body, or answer one request. */
static int step(struct conn *c)
{
    const char *data;
    size_t n;
    int err;
    if (c->body_left > 0) {
        err = loop_stream_read(c->s, c->body_left < HEAD_MAX ? (size_t)c->body_left : HEAD_MAX,
                               &data, &n);
        if (err == 0 && n > 0) {
            c->body_left -= n;
            return c->body_left > 0 ? MORE : respond(c, 200, &c->pending);
        }
    } else {
        err = loop_stream_read_until(c->s, "\r\n\r\n", 4, &data, &n);
        if (err == 0) {
            size_t skip = http_skip_empty_lines(data, n);
            if (skip == n)
                return MORE;
            struct request rq = {0};
            int status = http_parse_head(data + skip, n - skip, &rq);
            if (status) {
                rq.keep_alive = false;
                return respond(c, status, &rq);
            }
            c->pending = rq;
            c->body_left = rq.content_length;
            return c->body_left > 0 ? MORE : respond(c, 200, &rq);
        }
        if (err == -ENOBUFS)
            return respond(c, 431, &(struct request){0});
    }
    if (err == -EAGAIN)
        return WAIT;
    loop_stream_close(c->s); /* the client is done (end of file), or gone */
    return CLOSED;
}

/* on_data and on_drain: answer what can be answered.  A step that closes
 * the stream frees c: nothing may touch it after. */
static void serve(loop_stream *s, void *arg)
{
    struct conn *c = arg;
    int r = MORE;
    while (!c->lingering && !loop_stream_write_paused(s) && (r = step(c)) == MORE) {
    }
    if (r != CLOSED && c->lingering && !loop_stream_write_paused(s))
        linger_read(c);
}

static void on_error(loop_stream *s, int err, void *arg)
{
    (void)err;
    (void)arg;
    loop_stream_close(s);
}

static void on_conn(loop_server *srv, loop_stream *s, void *arg)
{
    (void)srv;
    (void)arg;
    struct conn *c = calloc(1, sizeof *c);
    loop_stream_callbacks cb = {
        .on_data = serve, .on_drain = serve, .on_error = on_error, .on_close = on_close};
    if (!c) {
        loop_stream_close(s); /* out of memory: refuse this client, keep serving */
        return;
    }
    c->s = s;
    c->next = conns;
    if (c->next)
        c->next->prev = c;
    conns = c;
    if (loop_stream_set_callbacks(s, &cb, c) != 0) {
        on_close(s, c);
        loop_stream_close(s);
    }
}

static void on_signal(loop_t *loop, void *arg)
{
    (void)arg;
    loop_stop(loop);
}

static uint16_t parse_port(const char *s)
{
    char *end;
    unsigned long port;

    if (!s)
        return 8080;
    errno = 0;
    port = strtoul(s, &end, 10);
    if (errno || end == s || *end || port > 65535 || s[0] == '-' || s[0] == '+') {
        fprintf(stderr, "http_hello_cb: bad port '%s' (want 0 to 65535)\n", s);
        exit(2);
    }
    return (uint16_t)port;
}

int main(int argc, char **argv)
{
    const char *port_arg;
    loop_t *loop = example_start(argc, argv, "[--virtual-time] [PORT]", &port_arg);
    uint16_t port = parse_port(port_arg);
    loop_stream_options opts = {.limit = HEAD_MAX, .emfile_wait = true};
    loop_server *srv;

    int err = loop_server_listen(loop, "127.0.0.1", port, &opts, on_conn, NULL, &srv);
    if (err) {
        fprintf(stderr, "http_hello_cb: cannot listen on 127.0.0.1:%u: %s\n", port,
                loop_strerror(err));
        return EXIT_FAILURE;
    }
    example_check(loop_add_signal(loop, SIGINT, on_signal, NULL), "add_signal");
    example_check(loop_add_signal(loop, SIGTERM, on_signal, NULL), "add_signal");
    printf("Serving on http://127.0.0.1:%u/\n", loop_server_port(srv));

    err = loop_run(loop);
    if (err < 0)
        fprintf(stderr, "http_hello_cb: loop_run: %s\n", loop_strerror(err));
    while (conns)
        loop_stream_abort(conns->s); /* on_close unlinks it */
    loop_server_free(srv);
    loop_free(loop);
    return err < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
