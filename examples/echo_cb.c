/*
 * echo_cb: the line echo server and client of echo_task.c in callback
 * form: no tasks, no coroutines, only libloop_stream.
 *
 *   usage: echo_cb server [PORT]        serve on 127.0.0.1:PORT (0: any)
 *          echo_cb client PORT LINE...  send each line, print its echo
 *
 * The server echoes every whole line (read_until) as it arrives and
 * closes at the client's end of file.  The client sends one line, waits
 * for its echo in on_data, then sends the next.
 */
#include "loop_stream.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the server ---------------------------------------------------------- */

static void server_data(loop_stream *s, void *arg)
{
    (void)arg;
    const char *line;
    size_t n;
    int err;
    while ((err = loop_stream_read_until(s, "\n", 1, &line, &n)) == 0)
        if (loop_stream_write(s, line, n) != 0)
            break;
    if (err != -EAGAIN) /* end of file (-EPIPE), a line over the limit, an error */
        loop_stream_close(s);
}

static void server_error(loop_stream *s, int err, void *arg)
{
    (void)err;
    (void)arg;
    loop_stream_close(s);
}

static void on_conn(loop_server *srv, loop_stream *s, void *arg)
{
    (void)srv;
    (void)arg;
    loop_stream_callbacks cb = {.on_data = server_data, .on_error = server_error};
    if (loop_stream_set_callbacks(s, &cb, NULL) != 0)
        loop_stream_close(s);
}

/* ---- the client ---------------------------------------------------------- */

struct client {
    char **lines;
    int n, next, status;
};

static void send_next(loop_stream *s, struct client *c)
{
    if (c->next == c->n) {
        loop_stream_close(s);
        loop_stop(loop_stream_loop(s));
        return;
    }
    const char *line = c->lines[c->next++];
    if (loop_stream_write(s, line, strlen(line)) || loop_stream_write(s, "\n", 1)) {
        c->status = EXIT_FAILURE;
        c->next = c->n;
        send_next(s, c);
    }
}

static void client_connect(loop_stream *s, int err, void *arg)
{
    struct client *c = arg;
    if (err) {
        fprintf(stderr, "echo_cb: connect: %s\n", loop_strerror(err));
        c->status = EXIT_FAILURE;
        c->next = c->n;
    }
    send_next(s, c);
}

static void client_data(loop_stream *s, void *arg)
{
    struct client *c = arg;
    const char *echo;
    size_t n;
    int err = loop_stream_read_until(s, "\n", 1, &echo, &n);
    if (err == -EAGAIN)
        return;
    if (err == 0) {
        printf("%.*s", (int)n, echo);
    } else {
        fprintf(stderr, "echo_cb: read: %s\n", loop_strerror(err));
        c->status = EXIT_FAILURE;
        c->next = c->n;
    }
    send_next(s, c);
}

static void client_error(loop_stream *s, int err, void *arg)
{
    struct client *c = arg;
    fprintf(stderr, "echo_cb: %s\n", loop_strerror(err));
    c->status = EXIT_FAILURE;
    c->next = c->n;
    send_next(s, c);
}

static void on_signal(loop_t *loop, void *arg)
{
    (void)arg;
    loop_stop(loop);
}

int main(int argc, char **argv)
{
    loop_t *loop;
    setvbuf(stdout, NULL, _IOLBF, 0);
    bool server = argc >= 2 && strcmp(argv[1], "server") == 0 && argc <= 3;
    if (!server && (argc < 4 || strcmp(argv[1], "client") != 0)) {
        fprintf(stderr, "usage: echo_cb server [PORT]\n       echo_cb client PORT LINE...\n");
        return 2;
    }
    uint16_t port = argc >= 3 ? (uint16_t)atoi(argv[2]) : 8888;
    int err = loop_new(&loop);
    if (!err && server) {
        loop_server *srv;
        err = loop_server_listen(loop, "127.0.0.1", port, NULL, on_conn, NULL, &srv);
        if (!err) {
            loop_add_signal(loop, SIGINT, on_signal, NULL);
            loop_add_signal(loop, SIGTERM, on_signal, NULL);
            printf("Serving on 127.0.0.1:%u\n", loop_server_port(srv));
            err = loop_run(loop);
            loop_server_free(srv);
        }
    } else if (!err) {
        struct client c = {.lines = argv + 3, .n = argc - 3};
        loop_stream_callbacks cb = {
            .on_data = client_data, .on_connect = client_connect, .on_error = client_error};
        loop_stream *s;
        err = loop_stream_connect(loop, "127.0.0.1", port, NULL, &cb, &c, &s);
        if (!err)
            err = loop_run(loop);
        if (!err && c.status)
            err = -EIO;
    }
    if (err)
        fprintf(stderr, "echo_cb: %s\n", loop_strerror(err));
    loop_free(loop); /* connections still open are closed (their husks are let go at exit) */
    return err ? EXIT_FAILURE : EXIT_SUCCESS;
}
