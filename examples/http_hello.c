/*
 * http_hello: seed 002's asyncio server, which answers "Hello, world!",
 * as tasks on libloop's streams, in the seed's own shape:
 *
 *   async def handle_request(reader, writer):
 *       data = await reader.readuntil(b'\r\n')
 *       ...
 *       writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: ...\r\n\r\n...")
 *       await writer.drain()
 *       writer.close()
 *
 *   coro = asyncio.start_server(handle_request, 'localhost', 8080, loop=loop)
 *
 * handle_request() below is that coroutine: a task per connection, started
 * by loop_stream_task_start_server(), reading with
 * loop_stream_task_read_until(), answering with loop_stream_write() and
 * loop_stream_task_drain().  Unlike the seed (whose Content-Length is
 * wrong and which answers one request per connection), every request gets
 * a correct response and connections are kept alive:
 *
 *   usage: http_hello [--virtual-time] [--workers N] [--mode threads|processes]
 *                     [PORT]
 *
 * It listens on 127.0.0.1, PORT (default 8080; 0 picks a free port), and
 * prints the address it got.  It runs until SIGINT or SIGTERM, then closes
 * every connection and exits 0.  With --virtual-time the loop runs on its
 * virtual clock; the only effect is that its timeouts (lingering close,
 * the accept back-off when out of fds) expire as soon as the loop goes
 * idle.  http_hello_cb.c is the same server in callback form.
 *
 * What the stream layer does for it:
 *
 *   - split and pipelined requests: read_until waits for a whole head and
 *     leaves what follows buffered; a head over HEAD_MAX is refused (431);
 *   - a client that sends without reading: drain() waits while more than
 *     64 KiB of responses are queued, so the task stops reading, the
 *     input buffer fills to its limit and reading pauses: the server's
 *     memory stays bounded;
 *   - out of fds: the listener waits (emfile_wait) until a connection
 *     closes, and the clients wait in the backlog.
 *
 * "Connection: close", HTTP/1.0 without keep-alive and bad requests end
 * the connection once the response is sent: the server shuts down its
 * side and discards input until the client closes (at most LINGER_MS), so
 * that unread input never turns the close into a reset that would destroy
 * the last response.
 *
 * Every core: with --workers N, N loops serve (the workers layer,
 * loop_workers.h), each with a listener of its own on the same port
 * (SO_REUSEPORT: the kernel spreads the connections over them), each
 * running handle_request.  --mode processes, the default, is nginx's model:
 * N forked worker processes under a supervisor, where a worker that crashes
 * takes only its own connections with it and is started again; --mode
 * threads runs N threads of this process.  It prints "worker I pid P ready"
 * for each worker, then "Serving on http://127.0.0.1:PORT/ with N
 * processes" (or threads).  SIGINT or SIGTERM stops it gracefully: each
 * worker prints "worker I draining", stops accepting, answers every request
 * it has received (the last one of a connection with "Connection: close"),
 * ends its idle connections, prints "worker I: N requests", and the
 * program exits 0 (1 if a drain took over 10 s and was cut short).
 * The listeners are all opened before the start, as nginx (and
 * http_workers.c, a server of the same shape on raw fd callbacks) opens
 * them, and each worker serves its own with
 * loop_stream_task_start_server_fd() (asyncio's start_server(sock=...)).
 * In processes mode the supervisor keeps them all open, so the
 * connections the kernel accepted for a worker that crashes wait in its
 * listener's backlog, and the restarted worker serves them.  The glue
 * (options, the listeners, the reports) is in http_hello_workers.c.
 */
#include "example.h"
#include "http_hello_workers.h"
#include "http_parse.h"
#include "loop_stream_task.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define HEAD_MAX 8192  /* the read limit: a longer request head gets 431 */
#define LINGER_MS 2000 /* lingering close: how long to wait for the client */

/* One loop's server: its listener and the connections it is serving. */
struct server {
    loop_server *srv;
    struct conn *conns;
    bool draining; /* stopping: answer what came, then end */
    unsigned long long answered;
};

/* A connection, on its task's stack, known to its server so that a drain
 * can end it while it waits for a request. */
struct conn {
    struct server *sv;
    struct conn *prev, *next;
    loop_stream *s;
    loop_task *task;
    bool waiting; /* for the head of a request */
    bool ended;   /* by the drain, while it waited with nothing received */
};

/* The answer is sent and no more requests will be read: end politely. */
static int linger(loop_stream *s)
{
    const char *data;
    size_t n;
    if (loop_stream_shutdown_write(s) != 0 || loop_stream_set_timeout(s, LOOP_MS(LINGER_MS)) != 0)
        return 0;
    while (loop_stream_task_read(s, 0, &data, &n) == 0 && n > 0) {
    }
    return 0;
}

/* A request's body is not used: read it and let it go. */
static int skip_body(loop_stream *s, uint64_t left)
{
    while (left > 0) {
        const char *data;
        size_t n;
        int err = loop_stream_task_read(s, left < HEAD_MAX ? (size_t)left : HEAD_MAX, &data, &n);
        if (err)
            return err;
        if (n == 0)
            return -EPIPE;
        left -= n;
    }
    return 0;
}

/* Has the client sent bytes not read yet, by the stream or by the kernel? */
static bool has_input(loop_stream *s)
{
    loop_stream_info_t info;
    int queued = 0;
    if (loop_stream_info(s, &info) == 0 && info.buffered > 0)
        return true;
    return ioctl(loop_stream_fd(s), FIONREAD, &queued) == 0 && queued > 0;
}

/* The seed's handle_request(reader, writer), for every request of a
 * connection; the connection is closed when it returns. */
static int handle_request(struct conn *c)
{
    loop_stream *s = c->s;
    for (;;) {
        const char *head;
        size_t n;
        struct request rq = {0};
        int status;
        if (c->sv->draining && !has_input(s))
            return linger(s); /* stopping, and every request it sent is answered */
        c->waiting = true;
        int err = loop_stream_task_read_until(s, "\r\n\r\n", 4, &head, &n);
        c->waiting = false;
        if (c->ended) {
            return linger(s);
        } else if (err == -ENOBUFS) {
            status = 431;
        } else if (err) {
            return err == -EPIPE ? 0 : err; /* the client is done, or gone */
        } else {
            size_t skip = http_skip_empty_lines(head, n);
            if (skip == n)
                continue; /* only empty lines so far */
            status = http_parse_head(head + skip, n - skip, &rq);
        }
        if (status)
            rq.keep_alive = false;
        else if ((err = skip_body(s, rq.content_length)) != 0)
            return err == -EPIPE ? 0 : err;
        if (c->sv->draining && !has_input(s))
            rq.keep_alive = false; /* stopping: the last request it sent ends it */
        char out[HTTP_RESPONSE_MAX];
        err = loop_stream_write(s, out, http_response(out, status ? status : 200, &rq));
        if (!err) {
            c->sv->answered++;
            err = loop_stream_task_drain(s);
        }
        if (err)
            return err;
        if (!rq.keep_alive)
            return linger(s);
    }
}

/* A connection's task: handle_request, with the connection in its server's
 * list while it runs. */
static int serve_connection(loop_stream *s, void *arg)
{
    struct server *sv = arg;
    struct conn c = {.sv = sv, .s = s, .task = loop_task_current(loop_stream_loop(s))};

    c.next = sv->conns;
    if (c.next)
        c.next->prev = &c;
    sv->conns = &c;
    int err = handle_request(&c);
    if (c.prev)
        c.prev->next = c.next;
    else
        sv->conns = c.next;
    if (c.next)
        c.next->prev = c.prev;
    return err;
}

static const loop_stream_options serve_options = {.limit = HEAD_MAX, .emfile_wait = true};

/* asyncio.start_server(handle_request, '127.0.0.1', port) on this loop. */
static int start_serving(loop_t *loop, uint16_t port, struct server *sv)
{
    *sv = (struct server){0};
    return loop_stream_task_start_server(loop, "127.0.0.1", port, &serve_options, serve_connection,
                                         sv, &sv->srv);
}

/*
 * A graceful stop: accept no more, and end each connection that waits for
 * a request with nothing received (a task cancelled in read_until has
 * consumed nothing); the others end after answering what they received.
 */
static void drain(struct server *sv)
{
    sv->draining = true;
    loop_server_close(sv->srv);
    for (struct conn *c = sv->conns; c; c = c->next) {
        if (c->waiting && !has_input(c->s)) {
            c->ended = true;
            loop_task_cancel(c->task); /* it resumes later: the list stays as it is */
        }
    }
}

/* ---- --workers N: one server per worker, all on the same port -------------- */

static struct server *servers; /* worker i's, used on its loop only */

/* asyncio.start_server(handle_request, sock=listener) on worker index's
 * loop: the listener the supervisor opened for it before the start. */
static int worker_setup(loop_t *loop, unsigned index, void *arg)
{
    struct server *sv = &servers[index];
    (void)arg;
    *sv = (struct server){0};
    return loop_stream_task_start_server_fd(loop, hello_workers_listener(index), &serve_options,
                                            serve_connection, sv, &sv->srv);
}

static void worker_drain(loop_t *loop, unsigned index, void *arg)
{
    (void)loop;
    (void)arg;
    printf("worker %u draining\n", index);
    drain(&servers[index]);
}

static void worker_teardown(loop_t *loop, unsigned index, void *arg)
{
    struct server *sv = &servers[index];
    (void)loop;
    (void)arg;
    loop_server_free(sv->srv); /* connections a cut drain left end with the loop */
    sv->srv = NULL;
    printf("worker %u: %llu requests\n", index, sv->answered);
}

static int serve_on_workers(const hello_workers_args *wa, uint16_t port)
{
    loop_workers_options o = {.mode = wa->mode,
                              .count = wa->count,
                              .setup = worker_setup,
                              .drain = worker_drain,
                              .teardown = worker_teardown,
                              .stop_on_signals = true,
                              .loop_options = &wa->loop_options};
    servers = calloc(wa->count, sizeof *servers);
    if (!servers) {
        fprintf(stderr, "http_hello: out of memory\n");
        return EXIT_FAILURE;
    }
    int status = hello_workers_run(&o, port);
    free(servers);
    return status;
}

/* ---- main ---------------------------------------------------------------- */

/* SIGINT or SIGTERM, delivered on the loop thread: stop, then clean up. */
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
        fprintf(stderr, "http_hello: bad port '%s' (want 0 to 65535)\n", s);
        exit(2);
    }
    return (uint16_t)port;
}

int main(int argc, char **argv)
{
    const char *port_arg;
    hello_workers_args wa;
    hello_workers_take_args(&argc, argv, &wa); /* --workers N, --mode M */
    loop_t *loop = example_start(
        argc, argv, "[--virtual-time] [--workers N] [--mode threads|processes] [PORT]", &port_arg);
    uint16_t port = parse_port(port_arg);
    struct server sv;

    if (wa.count > 0) {
        loop_free(loop); /* each worker has a loop of its own */
        return serve_on_workers(&wa, port);
    }
    int err = start_serving(loop, port, &sv);
    if (err) {
        fprintf(stderr, "http_hello: cannot listen on 127.0.0.1:%u: %s\n", port,
                loop_strerror(err));
        return EXIT_FAILURE;
    }
    example_check(loop_add_signal(loop, SIGINT, on_signal, NULL), "add_signal");
    example_check(loop_add_signal(loop, SIGTERM, on_signal, NULL), "add_signal");
    /* Printed last: once it is out, the server is ready and holds all its fds. */
    printf("Serving on http://127.0.0.1:%u/\n", loop_server_port(sv.srv));

    err = loop_run(loop);
    if (err < 0)
        fprintf(stderr, "http_hello: loop_run: %s\n", loop_strerror(err));
    /* server.close(); freeing the loop cancels the handlers, which close
     * their connections. */
    loop_server_close(sv.srv);
    loop_free(loop);
    loop_server_free(sv.srv);
    return err < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
