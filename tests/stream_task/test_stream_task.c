/*
 * Streams in task form: start_server with a task per connection,
 * open_connection, read / read_until / read_exactly that wait, drain
 * (two drainers at once, a dead peer), one reader at a time, cancels,
 * a stream closed under a waiting task, wait_closed, and loop_free()
 * with handlers still waiting.
 */
#include "../stream/stream_testing.h"

#include "fdleak.h"
#include "loop_stream_task.h"

#include <signal.h>
#include <stdio.h>

/* ---- an echo server in task form: lines back, until end of file ---- */

static int echo_handler(loop_stream *s, void *arg)
{
    int *served = arg;
    const char *d;
    size_t n;
    int err;
    while ((err = loop_stream_task_read(s, 0, &d, &n)) == 0 && n > 0) {
        if ((err = loop_stream_write(s, d, n)) != 0)
            break;
        if ((err = loop_stream_task_drain(s)) != 0)
            break;
    }
    ++*served;
    return err;
}

struct client_job {
    uint16_t port;
    int err;
    char got[256];
};

static int echo_client(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct client_job *j = arg;
    loop_stream *s;
    j->err = loop_stream_task_open_connection(loop, "127.0.0.1", j->port, NULL, &s);
    if (j->err)
        return j->err;
    const char *d;
    size_t n;
    for (int i = 0; i < 3 && !j->err; i++) {
        char line[32];
        int len = snprintf(line, sizeof line, "line %d\n", i);
        loop_stream_write(s, line, (size_t)len);
        j->err = loop_stream_task_read_until(s, "\n", 1, &d, &n);
        if (!j->err)
            strncat(j->got, d, n);
    }
    loop_stream_shutdown_write(s);
    if (!j->err)
        j->err = loop_stream_task_read(s, 0, &d, &n); /* end of file: 0 bytes */
    if (!j->err && n != 0)
        j->err = -EPROTO;
    loop_stream_close(s);
    return j->err;
}

static void
test_start_server_runs_a_task_per_connection_and_open_connection_talks_to_it(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    int served = 0;
    loop_server *srv;
    assert_int_equal(
        loop_stream_task_start_server(l, "127.0.0.1", 0, NULL, echo_handler, &served, &srv), 0);
    struct client_job jobs[3] = {0};
    loop_task *t[3];
    for (int i = 0; i < 3; i++) {
        jobs[i].port = loop_server_port(srv);
        assert_int_equal(loop_task_spawn(l, echo_client, &jobs[i], &t[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(loop_run_until_complete(l, loop_task_future(t[i]), NULL), 0);
        assert_string_equal(jobs[i].got, "line 0\nline 1\nline 2\n");
        loop_task_unref(t[i]);
    }
    RUN_UNTIL(l, served == 3);
    loop_server_free(srv);
    assert_int_equal(loop_free(l), 0);
}

/* ---- the limit and end of file --------------------------------------- */

struct reads {
    int until_err, exactly_err;
    size_t exactly_len, after_len;
    char after[16];
};

static int limited_handler(loop_stream *s, void *arg)
{
    struct reads *r = arg;
    const char *d;
    size_t n;
    r->until_err = loop_stream_task_read_until(s, "\n", 1, &d, &n); /* 150 bytes, no \n */
    if (loop_stream_task_read(s, 0, &d, &n) == 0)                   /* the bytes were kept */
        r->after_len = n;
    r->exactly_err = loop_stream_task_read_exactly(s, 100, &d, &n);
    r->exactly_len = n;
    if (n <= sizeof r->after)
        memcpy(r->after, d, n);
    return 0;
}

static void test_read_until_overrun_keeps_data_and_read_exactly_reports_partial_at_eof(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    struct reads r = {0};
    loop_server *srv;
    loop_stream_options o = {.limit = 100};
    assert_int_equal(
        loop_stream_task_start_server(l, "127.0.0.1", 0, &o, limited_handler, &r, &srv), 0);
    int fd = raw_connect(loop_server_port(srv));
    char junk[150];
    memset(junk, 'j', sizeof junk);
    assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    RUN_UNTIL(l, r.after_len > 0);
    assert_int_equal(r.until_err, -ENOBUFS);
    assert_int_equal(r.after_len, sizeof junk);
    assert_int_equal(write(fd, "tail", 4), 4);
    shutdown(fd, SHUT_WR);
    RUN_UNTIL(l, r.exactly_err != 0);
    assert_int_equal(r.exactly_err, -EPIPE);
    assert_int_equal(r.exactly_len, 4);
    assert_memory_equal(r.after, "tail", 4);
    close(fd);
    loop_server_free(srv);
    assert_int_equal(loop_free(l), 0);
}

/* ---- drain ------------------------------------------------------------ */

struct drainers {
    loop_stream *s;
    int done, err[2];
};

static int drainer(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    struct drainers *d = arg;
    int err = loop_stream_task_drain(d->s);
    d->err[d->done++] = err; /* in the order they return */
    return 0;
}

static loop_stream *accepted;

static void grab(loop_server *srv, loop_stream *s, void *arg)
{
    (void)srv;
    (void)arg;
    accepted = s;
}

static void fill_until_paused(loop_stream *s)
{
    static char chunk[8192];
    while (!loop_stream_write_paused(s))
        assert_int_equal(loop_stream_write(s, chunk, sizeof chunk), 0);
}

static void test_two_tasks_draining_one_stream_both_return_when_it_drains(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    loop_server *srv;
    accepted = NULL;
    assert_int_equal(loop_server_listen(l, "127.0.0.1", 0, NULL, grab, NULL, &srv), 0);
    int fd = raw_connect(loop_server_port(srv));
    RUN_UNTIL(l, accepted != NULL);
    int small = 4096;
    setsockopt(loop_stream_fd(accepted), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    fill_until_paused(accepted);
    struct drainers d = {.s = accepted};
    loop_task *t1 = NULL, *t2 = NULL;
    assert_int_equal(loop_task_spawn(l, drainer, &d, &t1), 0);
    assert_int_equal(loop_task_spawn(l, drainer, &d, &t2), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(d.done, 0); /* both wait: nothing was read */
    char buf[65536];
    uint64_t t0 = mono_ns();
    while (d.done < 2) {
        (void)recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
        if (mono_ns() - t0 > LOOP_SEC(20))
            fail_msg("%d of 2 drainers returned after 20 s", d.done);
    }
    assert_int_equal(d.err[0], 0);
    assert_int_equal(d.err[1], 0);
    loop_task_unref(t1);
    loop_task_unref(t2);
    loop_stream_close(accepted);
    close(fd);
    loop_server_free(srv);
    assert_int_equal(loop_free(l), 0);
}

static void test_drain_on_a_dead_peer_fails_at_once_and_waiting_drainers_wake(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would end the test */
    loop_t *l = new_real_loop();
    loop_server *srv;
    accepted = NULL;
    assert_int_equal(loop_server_listen(l, "127.0.0.1", 0, NULL, grab, NULL, &srv), 0);
    int fd = raw_connect(loop_server_port(srv));
    RUN_UNTIL(l, accepted != NULL);
    int small = 4096;
    setsockopt(loop_stream_fd(accepted), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    fill_until_paused(accepted);
    struct drainers d = {.s = accepted};
    loop_task *t1 = NULL;
    assert_int_equal(loop_task_spawn(l, drainer, &d, &t1), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    raw_reset(fd); /* the peer dies while a task drains */
    RUN_UNTIL(l, d.done == 1);
    assert_true(d.err[0] == -ECONNRESET || d.err[0] == -EPIPE);
    loop_stats_t before, after;
    loop_stats(l, &before);
    /* A later drain returns the error at once, without an iteration. */
    loop_task *t2 = NULL;
    assert_int_equal(loop_task_spawn(l, drainer, &d, &t2), 0);
    assert_int_equal(loop_run_until_complete(l, loop_task_future(t2), NULL), 0);
    loop_stats(l, &after);
    assert_int_equal(d.err[1], d.err[0]);
    assert_true(after.iterations - before.iterations <= 2);
    loop_task_unref(t1);
    loop_task_unref(t2);
    loop_stream_close(accepted);
    loop_server_free(srv);
    assert_int_equal(loop_free(l), 0);
}

/* ---- one reader, cancels, closes under a reader ------------------------ */

struct reader {
    loop_stream *s;
    int err;
    bool ended;
};

static int read_line(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    struct reader *r = arg;
    const char *d;
    size_t n;
    r->err = loop_stream_task_read_until(r->s, "\n", 1, &d, &n);
    r->ended = true;
    return 0;
}

static int close_it(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    loop_stream_close(arg);
    return 0;
}

static void test_one_reader_at_a_time_cancel_consumes_nothing_close_wakes_with_ebadf(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    loop_server *srv;
    accepted = NULL;
    assert_int_equal(loop_server_listen(l, "127.0.0.1", 0, NULL, grab, NULL, &srv), 0);
    int fd = raw_connect(loop_server_port(srv));
    RUN_UNTIL(l, accepted != NULL);
    struct reader a = {.s = accepted}, b = {.s = accepted};
    loop_task *ta = NULL, *tb = NULL;
    assert_int_equal(loop_task_spawn(l, read_line, &a, &ta), 0);
    assert_int_equal(loop_task_spawn(l, read_line, &b, &tb), 0);
    RUN_UNTIL(l, b.ended);
    assert_int_equal(b.err, -EBUSY); /* a reads already */
    assert_false(a.ended);
    assert_int_equal(write(fd, "part", 4), 4);
    loop_stream_info_t info;
    RUN_UNTIL(l, loop_stream_info(accepted, &info) == 0 && info.buffered == 4);
    assert_int_equal(loop_task_cancel(ta), 1);
    RUN_UNTIL(l, a.ended);
    assert_int_equal(a.err, -ECANCELED);
    const char *d;
    size_t n;
    assert_int_equal(loop_stream_peek(accepted, &d, &n), 0);
    assert_int_equal(n, 4); /* nothing consumed */
    loop_task_unref(ta);
    loop_task_unref(tb);
    /* Another task closes the stream while one reads: -EBADF. */
    struct reader c = {.s = accepted};
    loop_task *tc = NULL, *tx = NULL;
    assert_int_equal(loop_task_spawn(l, read_line, &c, &tc), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(loop_task_spawn(l, close_it, accepted, &tx), 0);
    RUN_UNTIL(l, c.ended);
    assert_int_equal(c.err, -EBADF);
    loop_task_unref(tc);
    loop_task_unref(tx);
    close(fd);
    loop_server_free(srv);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_start_server_runs_a_task_per_connection_and_open_connection_talks_to_it),
        cmocka_unit_test(
            test_read_until_overrun_keeps_data_and_read_exactly_reports_partial_at_eof),
        cmocka_unit_test(test_two_tasks_draining_one_stream_both_return_when_it_drains),
        cmocka_unit_test(test_drain_on_a_dead_peer_fails_at_once_and_waiting_drainers_wake),
        cmocka_unit_test(test_one_reader_at_a_time_cancel_consumes_nothing_close_wakes_with_ebadf),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
