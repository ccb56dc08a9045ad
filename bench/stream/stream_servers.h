/*
 * W7 and W8 on libloop's stream layers, for bench_libloop (workloads w7s,
 * w7t, w8s, w8t): the same echo and HTTP protocol as the other columns,
 * written the way a program using the layer would write it.
 *
 *   w7s, w8s  callback form (loop_stream.h): on_data reads what is
 *             buffered, writes the answer (loop_stream_write), takes it
 *   w7t, w8t  task form (loop_stream_task.h): a task per connection,
 *             read / read_until, write, drain, as asyncio's StreamReader
 *             and StreamWriter
 *
 * Included by bench_libloop.c after common.h (it uses its stats, result
 * line and HTTP response), like the helpers there.
 */
#ifndef BENCH_STREAM_SERVERS_H
#define BENCH_STREAM_SERVERS_H

#include "loop_stream_task.h"

static struct server_stats sst;

/* ---- callback form ---------------------------------------------------- */

static void scb_data(loop_stream *s, void *arg)
{
    bool http = arg != NULL;
    const char *d;
    size_t n;
    int err;
    if (!http) {
        while ((err = loop_stream_read(s, 0, &d, &n)) == 0 && n > 0) {
            sst.bytes += n;
            CHECK(loop_stream_write(s, d, n));
        }
    } else {
        while ((err = loop_stream_read_until(s, "\r\n\r\n", 4, &d, &n)) == 0) {
            sst.bytes += n;
            sst.requests++;
            CHECK(loop_stream_write(s, http_response, HTTP_RESPONSE_LEN));
        }
        if (err == -EPIPE)
            err = 0;
    }
    if (loop_stream_eof(s) || (err && err != -EAGAIN)) {
        sst.closed++;
        loop_stream_close(s);
    }
}

static void scb_error(loop_stream *s, int err, void *arg)
{
    UNUSED(err);
    UNUSED(arg);
    sst.closed++;
    loop_stream_close(s);
}

static void scb_conn(loop_server *srv, loop_stream *s, void *arg)
{
    UNUSED(srv);
    loop_stream_callbacks cb = {.on_data = scb_data, .on_error = scb_error};
    CHECK(loop_stream_set_callbacks(s, &cb, arg));
    sst.accepted++;
}

/* ---- task form ---------------------------------------------------------- */

static int stask_echo(loop_stream *s, void *arg)
{
    UNUSED(arg);
    const char *d;
    size_t n;
    int err;
    sst.accepted++;
    while ((err = loop_stream_task_read(s, 0, &d, &n)) == 0 && n > 0) {
        sst.bytes += n;
        if ((err = loop_stream_write(s, d, n)) || (err = loop_stream_task_drain(s)))
            break;
    }
    sst.closed++;
    return 0;
}

static int stask_http(loop_stream *s, void *arg)
{
    UNUSED(arg);
    const char *d;
    size_t n;
    int err;
    sst.accepted++;
    while ((err = loop_stream_task_read_until(s, "\r\n\r\n", 4, &d, &n)) == 0) {
        sst.bytes += n;
        sst.requests++;
        if ((err = loop_stream_write(s, http_response, HTTP_RESPONSE_LEN)) ||
            (err = loop_stream_task_drain(s)))
            break;
    }
    sst.closed++;
    return 0;
}

/* ---- the server ---------------------------------------------------------- */

static void sstdin_cb(loop_t *loop, int fd, unsigned events, void *arg)
{
    UNUSED(events);
    UNUSED(arg);
    char buf[64];
    if (read(fd, buf, sizeof buf) <= 0)
        loop_stop(loop);
}

static void stream_server(bool http, bool task)
{
    loop_t *loop = new_loop(false);
    loop_server *srv;
    if (task)
        CHECK(loop_stream_task_start_server(loop, "127.0.0.1", 0, NULL,
                                            http ? stask_http : stask_echo, NULL, &srv));
    else
        CHECK(loop_server_listen(loop, "127.0.0.1", 0, NULL, scb_conn, http ? &sst : NULL, &srv));
    printf("PORT %u\n", loop_server_port(srv));
    fflush(stdout);
    CHECK(loop_add_reader(loop, 0, sstdin_cb, NULL));
    sst.cpu0 = cpu_ns();
    CHECK(loop_run(loop));
    server_report(&sst);
    CHECK(loop_remove_reader(loop, 0));
    loop_server_close(srv);
    CHECK(loop_free(loop));
    loop_server_free(srv);
}

#endif /* BENCH_STREAM_SERVERS_H */
