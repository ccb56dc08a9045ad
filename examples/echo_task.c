/*
 * echo_task: a line echo server and its client, as tasks on streams
 * (asyncio's echo example with start_server and open_connection):
 *
 *   usage: echo_task server [PORT]        serve on 127.0.0.1:PORT (0: any)
 *          echo_task client PORT LINE...  send each line, print its echo
 *
 * The server prints "Serving on 127.0.0.1:PORT" and runs until SIGINT or
 * SIGTERM (then exits 0).  The client prints each line that comes back.
 * echo_cb.c is the same pair in callback form; each talks to the other.
 */
#include "loop_stream_task.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* async def handle_echo(reader, writer): a line back for every line. */
static int handle_echo(loop_stream *s, void *arg)
{
    (void)arg;
    const char *line;
    size_t n;
    int err;
    while ((err = loop_stream_task_read_until(s, "\n", 1, &line, &n)) == 0) {
        if ((err = loop_stream_write(s, line, n)) != 0 || (err = loop_stream_task_drain(s)) != 0)
            return err;
    }
    return err == -EPIPE ? 0 : err; /* end of file: the client is done */
}

struct job {
    uint16_t port;
    char **lines;
    int n;
};

/* async def tcp_echo_client(): open, write, readuntil, close. */
static int echo_client(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct job *j = arg;
    loop_stream *s;
    int err = loop_stream_task_open_connection(loop, "127.0.0.1", j->port, NULL, &s);
    if (err)
        return err;
    for (int i = 0; i < j->n && !err; i++) {
        const char *echo;
        size_t n;
        if (!(err = loop_stream_write(s, j->lines[i], strlen(j->lines[i]))))
            err = loop_stream_write(s, "\n", 1);
        if (!err)
            err = loop_stream_task_read_until(s, "\n", 1, &echo, &n);
        if (!err)
            printf("%.*s", (int)n, echo);
    }
    loop_stream_close(s);
    return err;
}

static void on_signal(loop_t *loop, void *arg)
{
    (void)arg;
    loop_stop(loop);
}

static int fail(const char *what, int err)
{
    fprintf(stderr, "echo_task: %s: %s\n", what, loop_strerror(err));
    return EXIT_FAILURE;
}

int main(int argc, char **argv)
{
    loop_t *loop;
    setvbuf(stdout, NULL, _IOLBF, 0);
    bool server = argc >= 2 && strcmp(argv[1], "server") == 0 && argc <= 3;
    if (!server && (argc < 4 || strcmp(argv[1], "client") != 0)) {
        fprintf(stderr, "usage: echo_task server [PORT]\n       echo_task client PORT LINE...\n");
        return 2;
    }
    uint16_t port = argc >= 3 ? (uint16_t)atoi(argv[2]) : 8888;
    int err = loop_new(&loop);
    if (err)
        return fail("loop_new", err);
    if (server) {
        loop_server *srv;
        if ((err = loop_stream_task_start_server(loop, "127.0.0.1", port, NULL, handle_echo, NULL,
                                                 &srv)) != 0)
            return fail("start_server", err);
        loop_add_signal(loop, SIGINT, on_signal, NULL);
        loop_add_signal(loop, SIGTERM, on_signal, NULL);
        printf("Serving on 127.0.0.1:%u\n", loop_server_port(srv));
        err = loop_run(loop);
        loop_server_close(srv);
        loop_free(loop); /* cancels the handlers; they close their connections */
        loop_server_free(srv);
        return err ? fail("loop_run", err) : EXIT_SUCCESS;
    }
    struct job j = {.port = port, .lines = argv + 3, .n = argc - 3};
    loop_task *t;
    if ((err = loop_task_spawn(loop, echo_client, &j, &t)) != 0)
        return fail("spawn", err);
    err = loop_run_until_complete(loop, loop_task_future(t), NULL);
    loop_task_unref(t);
    loop_free(loop);
    return err ? fail("client", err) : EXIT_SUCCESS;
}
