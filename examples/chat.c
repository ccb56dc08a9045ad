/*
 * chat: a line-based chat server as tasks on streams, to show
 * backpressure: every line a client sends goes to every other client, and
 * a client that reads slowly (or not at all) slows down the senders
 * instead of growing the server's memory.
 *
 *   usage: chat [PORT]      serve on 127.0.0.1:PORT (0: any port)
 *
 * How: a sender's task writes its line to every other client (writes
 * never block: they queue), then, for each recipient whose queue is above
 * the high watermark (64 KiB), awaits its drain.  While it waits it reads
 * nothing more, so its own input buffer fills to the read limit, reading
 * pauses, and TCP's window pushes back on the sending client.  Each
 * recipient's queue stays under the high watermark plus one line per
 * sender; the server's memory is bounded however fast the senders are.
 * (A production server would also drop a client that stays paused for
 * too long: loop_stream_set_timeout() does that.)
 *
 * A client that sends "/stats" gets one line back:
 * "queued NOW MOST clients N": the bytes queued for every client now, the
 * most ever queued for one client, and how many are connected.  The
 * tests read it.  Lines are at most 4 KiB; a longer one ends that
 * client's connection.  SIGINT or SIGTERM ends the server (exit 0).
 */
#include "loop_stream_task.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES 4096

struct client {
    loop_stream *s;
    struct client *prev, *next;
};

static struct client *clients;
static size_t nclients, most_queued;

static void join(struct client *c)
{
    c->next = clients;
    if (c->next)
        c->next->prev = c;
    clients = c;
    nclients++;
}

static void leave(struct client *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    nclients--;
}

static size_t queued(loop_stream *s)
{
    loop_stream_info_t info;
    return loop_stream_info(s, &info) == 0 ? info.queued : 0;
}

static int stats(struct client *me)
{
    size_t now = 0;
    for (struct client *c = clients; c; c = c->next)
        now += queued(c->s);
    char line[128];
    int n = snprintf(line, sizeof line, "queued %zu %zu clients %zu\n", now, most_queued, nclients);
    return loop_stream_write(me->s, line, (size_t)n);
}

/* Queue the line for every other client, then wait until none of them
 * is above its high watermark.  The list may change while we wait, so
 * look again after every wait. */
static int broadcast(struct client *me, const char *line, size_t n)
{
    for (struct client *c = clients; c; c = c->next) {
        if (c == me)
            continue;
        loop_stream_write(c->s, line, n); /* a failed client is its own task's to end */
        size_t q = queued(c->s);
        if (q > most_queued)
            most_queued = q;
    }
    for (;;) {
        struct client *c = clients;
        while (c && (c == me || !loop_stream_write_paused(c->s)))
            c = c->next;
        if (!c)
            return 0;
        int err = loop_stream_task_drain(c->s);
        if (err == -ECANCELED)
            return err;
    }
}

static int handle_client(loop_stream *s, void *arg)
{
    (void)arg;
    struct client me = {.s = s};
    const char *line;
    size_t n;
    int err;
    join(&me);
    while ((err = loop_stream_task_read_until(s, "\n", 1, &line, &n)) == 0) {
        if (n == 7 && memcmp(line, "/stats\n", 7) == 0)
            err = stats(&me);
        else
            err = broadcast(&me, line, n);
        if (err)
            break;
    }
    leave(&me);
    return err == -EPIPE ? 0 : err;
}

static void on_signal(loop_t *loop, void *arg)
{
    (void)arg;
    loop_stop(loop);
}

int main(int argc, char **argv)
{
    loop_t *loop;
    loop_server *srv;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 2) {
        fprintf(stderr, "usage: chat [PORT]\n");
        return 2;
    }
    loop_stream_options opts = {.limit = LINE_MAX_BYTES};
    int err = loop_new(&loop);
    if (!err)
        err = loop_stream_task_start_server(loop, "127.0.0.1",
                                            argc == 2 ? (uint16_t)atoi(argv[1]) : 8888, &opts,
                                            handle_client, NULL, &srv);
    if (err) {
        fprintf(stderr, "chat: %s\n", loop_strerror(err));
        return EXIT_FAILURE;
    }
    loop_add_signal(loop, SIGINT, on_signal, NULL);
    loop_add_signal(loop, SIGTERM, on_signal, NULL);
    printf("Serving on 127.0.0.1:%u\n", loop_server_port(srv));
    err = loop_run(loop);
    loop_server_close(srv);
    loop_free(loop); /* cancels every client's task; each leaves and closes */
    loop_server_free(srv);
    if (err)
        fprintf(stderr, "chat: %s\n", loop_strerror(err));
    return err ? EXIT_FAILURE : EXIT_SUCCESS;
}
