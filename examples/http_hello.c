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
 *   usage: http_hello [--virtual-time] [PORT]
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
 */
#include "example.h"
#include "http_parse.h"
#include "loop_stream_task.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEAD_MAX 8192  /* the read limit: a longer request head gets 431 */
#define LINGER_MS 2000 /* lingering close: how long to wait for the client */

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

/* The seed's handle_request(reader, writer), for every request of a
 * connection; the connection is closed when it returns. */
static int handle_request(loop_stream *s, void *arg)
{
    (void)arg;
    for (;;) {
        const char *head;
        size_t n;
        struct request rq = {0};
        int status;
        int err = loop_stream_task_read_until(s, "\r\n\r\n", 4, &head, &n);
        if (err == -ENOBUFS) {
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
        char out[HTTP_RESPONSE_MAX];
        err = loop_stream_write(s, out, http_response(out, status ? status : 200, &rq));
        if (!err)
            err = loop_stream_task_drain(s);
        if (err)
            return err;
        if (!rq.keep_alive)
            return linger(s);
    }
}

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
    loop_t *loop = example_start(argc, argv, "[--virtual-time] [PORT]", &port_arg);
    uint16_t port = parse_port(port_arg);
    loop_stream_options opts = {.limit = HEAD_MAX, .emfile_wait = true};
    loop_server *srv;

    int err =
        loop_stream_task_start_server(loop, "127.0.0.1", port, &opts, handle_request, NULL, &srv);
    if (err) {
        fprintf(stderr, "http_hello: cannot listen on 127.0.0.1:%u: %s\n", port,
                loop_strerror(err));
        return EXIT_FAILURE;
    }
    example_check(loop_add_signal(loop, SIGINT, on_signal, NULL), "add_signal");
    example_check(loop_add_signal(loop, SIGTERM, on_signal, NULL), "add_signal");
    /* Printed last: once it is out, the server is ready and holds all its fds. */
    printf("Serving on http://127.0.0.1:%u/\n", loop_server_port(srv));

    err = loop_run(loop);
    if (err < 0)
        fprintf(stderr, "http_hello: loop_run: %s\n", loop_strerror(err));
    /* server.close(); freeing the loop cancels the handlers, which close
     * their connections. */
    loop_server_close(srv);
    loop_free(loop);
    loop_server_free(srv);
    return err < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
