/*
 * Streams in callback form, end to end on one loop: echo over TCP (IPv4,
 * IPv6) and a Unix socket, addresses, half-close, a server that closes
 * and waits for its connections, and loop_free() with streams open.
 */
#include "stream_testing.h"

#include "fdleak.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/un.h>

static void echo_round_trip(loop_t *l, loop_stream *c, struct rec *r)
{
    RUN_UNTIL(l, r->connects == 1);
    assert_int_equal(r->connect_err, 0);
    assert_int_equal(loop_stream_write(c, "hello, ", 7), 0);
    assert_int_equal(loop_stream_write(c, "world", 5), 0);
    RUN_UNTIL(l, r->len == 12);
    assert_string_equal(r->buf, "hello, world");
}

static void test_tcp_echo_round_trip_then_server_sees_eof_and_closes(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    struct echo_server e = {0};
    uint16_t port = echo_listen(l, &e, NULL);
    struct rec r = {.consume = true};
    loop_stream *c;
    assert_int_equal(loop_stream_connect(l, "127.0.0.1", port, NULL, &rec_cb, &r, &c), 0);
    echo_round_trip(l, c, &r);
    assert_int_equal(e.conns, 1);
    assert_int_equal(loop_stream_shutdown_write(c), 0);
    RUN_UNTIL(l, e.closed == 1 && r.eof);
    assert_int_equal(loop_stream_close(c), 0);
    loop_server_free(e.srv);
    assert_int_equal(loop_free(l), 0);
}

static void test_ipv6_and_localhost_and_bracketed_hosts_connect(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    struct echo_server e = {0};
    assert_int_equal(loop_server_listen(l, "::1", 0, NULL, echo_on_conn, &e, &e.srv), 0);
    uint16_t port = loop_server_port(e.srv);
    struct rec r = {.consume = true};
    loop_stream *c;
    assert_int_equal(loop_stream_connect(l, "[::1]", port, NULL, &rec_cb, &r, &c), 0);
    echo_round_trip(l, c, &r);
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(loop_stream_peer_addr(c, &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), port);
    loop_stream_close(c);
    RUN_UNTIL(l, e.closed == 1); /* the server's side, at end of file */
    loop_server_free(e.srv);

    struct echo_server e4 = {0};
    assert_int_equal(loop_server_listen(l, "localhost", 0, NULL, echo_on_conn, &e4, &e4.srv), 0);
    struct rec r4 = {.consume = true};
    assert_int_equal(
        loop_stream_connect(l, "LOCALHOST", loop_server_port(e4.srv), NULL, &rec_cb, &r4, &c), 0);
    echo_round_trip(l, c, &r4);
    assert_int_equal(loop_stream_local_addr(c, &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), INADDR_LOOPBACK);
    loop_stream_close(c);
    RUN_UNTIL(l, e4.closed == 1);
    loop_server_free(e4.srv);
    assert_int_equal(loop_free(l), 0);
}

static void test_unix_socket_echo_and_no_tcp_port(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/tmp/loop_stream_test.%d.sock", (int)getpid());
    unlink(path);
    loop_t *l = new_real_loop();
    struct echo_server e = {0};
    assert_int_equal(loop_server_listen_unix(l, path, NULL, echo_on_conn, &e, &e.srv), 0);
    assert_int_equal(loop_server_port(e.srv), 0);
    struct rec r = {.consume = true};
    loop_stream *c;
    assert_int_equal(loop_stream_connect_unix(l, path, NULL, &rec_cb, &r, &c), 0);
    assert_int_equal(r.connects, 0); /* never inside the call, even when done at once */
    echo_round_trip(l, c, &r);
    loop_stream_close(c);
    RUN_UNTIL(l, e.closed == 1);
    loop_server_free(e.srv);
    unlink(path);
    assert_int_equal(loop_free(l), 0);
}

static void test_bad_addresses_are_einval_and_names_are_enosys(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    loop_stream *c = (loop_stream *)1;
    loop_server *srv = (loop_server *)1;
    const char *bad[] = {"1.2.3.999", "1.2.3", "::g", "[::1", "a b", "", "-", "..", "::1]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(loop_stream_connect(l, bad[i], 80, NULL, NULL, NULL, &c), -EINVAL);
        assert_null(c);
    }
    assert_int_equal(loop_stream_connect(l, NULL, 80, NULL, NULL, NULL, &c), -EINVAL);
    assert_int_equal(loop_stream_connect(l, "example.com", 80, NULL, NULL, NULL, &c), -ENOSYS);
    assert_int_equal(loop_server_listen(l, "my-host", 0, NULL, echo_on_conn, NULL, &srv), -ENOSYS);
    assert_null(srv);
    assert_int_equal(loop_server_listen(l, "1.2.3.4.5", 0, NULL, echo_on_conn, NULL, &srv),
                     -EINVAL);
    char longpath[200];
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = 0;
    assert_int_equal(loop_stream_connect_unix(l, longpath, NULL, NULL, NULL, &c), -EINVAL);
    assert_int_equal(loop_stream_connect_unix(l, "", NULL, NULL, NULL, &c), -EINVAL);
    struct sockaddr_in short_addr = {.sin_family = AF_INET};
    assert_int_equal(
        loop_stream_connect_addr(l, (struct sockaddr *)&short_addr, 4, NULL, NULL, NULL, &c),
        -EINVAL);
    short_addr.sin_family = AF_APPLETALK;
    assert_int_equal(loop_stream_connect_addr(l, (struct sockaddr *)&short_addr, sizeof short_addr,
                                              NULL, NULL, NULL, &c),
                     -EINVAL);
    loop_stream_options o = {.high_water = 10, .low_water = 20};
    assert_int_equal(loop_stream_connect(l, "127.0.0.1", 1, &o, NULL, NULL, &c), -EINVAL);
    assert_int_equal(loop_server_listen(l, "127.0.0.1", 0, NULL, NULL, NULL, &srv), -EINVAL);
    assert_int_equal(loop_stream_connect(NULL, "127.0.0.1", 1, NULL, NULL, NULL, &c), -EINVAL);
    assert_int_equal(loop_stream_connect(l, "127.0.0.1", 1, NULL, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(loop_stream_write(NULL, "x", 1), -EINVAL);
    assert_int_equal(loop_stream_close(NULL), -EINVAL);
    assert_int_equal(loop_free(l), 0);
}

static void test_connect_to_a_closed_port_is_econnrefused(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    uint16_t port;
    int lfd = raw_listen(1, &port);
    close(lfd); /* nothing listens there now */
    struct rec r = {0};
    loop_stream *c;
    int err = loop_stream_connect(l, "127.0.0.1", port, NULL, &rec_cb, &r, &c);
    if (err == 0) {
        RUN_UNTIL(l, r.connects == 1);
        assert_int_equal(r.connect_err, -ECONNREFUSED);
        assert_int_equal(loop_stream_error(c), -ECONNREFUSED);
        assert_int_equal(loop_stream_write(c, "x", 1), -ECONNREFUSED);
        assert_int_equal(r.errors, 0); /* reported once, by on_connect */
        loop_stream_close(c);
    } else {
        assert_int_equal(err, -ECONNREFUSED);
    }
    char path[64];
    snprintf(path, sizeof path, "/tmp/loop_stream_none.%d.sock", (int)getpid());
    assert_int_equal(loop_stream_connect_unix(l, path, NULL, &rec_cb, &r, &c), -ENOENT);
    assert_int_equal(loop_free(l), 0);
}

static void test_half_close_peer_reads_eof_and_still_gets_the_reply(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    struct rec srv_side = {.consume = true};
    struct echo_server e = {0};
    uint16_t port = echo_listen(l, &e, NULL);
    int fd = raw_connect(port);
    RUN_UNTIL(l, e.last != NULL);
    loop_stream *s = e.last;
    assert_int_equal(loop_stream_set_callbacks(s, &rec_cb, &srv_side), 0);
    assert_int_equal(write(fd, "question", 8), 8);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    RUN_UNTIL(l, srv_side.eof);
    assert_string_equal(srv_side.buf, "question");
    /* Our side is still open for writing after the peer's end of file. */
    assert_int_equal(loop_stream_write(s, "answer", 6), 0);
    assert_int_equal(loop_stream_shutdown_write(s), 0);
    assert_int_equal(loop_stream_write(s, "more", 4), -EPIPE);
    char buf[16];
    ssize_t n = read(fd, buf, sizeof buf);
    assert_int_equal(n, 6);
    assert_memory_equal(buf, "answer", 6);
    assert_int_equal(read(fd, buf, sizeof buf), 0); /* then our FIN */
    close(fd);
    loop_stream_close(s);
    loop_server_free(e.srv);
    assert_int_equal(loop_free(l), 0);
}

static void test_abort_resets_the_connection_and_close_sends_the_queue_first(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    struct echo_server e = {0};
    uint16_t port = echo_listen(l, &e, NULL);
    /* close: what is queued still arrives, then the end of file. */
    int fd = raw_connect(port);
    RUN_UNTIL(l, e.last != NULL);
    loop_stream *s = e.last;
    loop_stream_set_callbacks(s, NULL, NULL);
    int small = 4096; /* the kernel takes little at once: the rest is queued */
    setsockopt(loop_stream_fd(s), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    static char big[1 << 20];
    memset(big, 'c', sizeof big);
    assert_int_equal(loop_stream_write(s, big, sizeof big), 0);
    loop_stream_info_t info;
    loop_stream_info(s, &info);
    assert_true(info.queued > 0); /* more than the kernel took at once */
    assert_int_equal(loop_stream_close(s), 0);
    size_t got = 0;
    char buf[65536];
    ssize_t n;
    uint64_t t0 = mono_ns();
    while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) != 0) {
        if (n > 0)
            got += (size_t)n;
        assert_int_equal(loop_run_once(l, n > 0 ? 0 : LOOP_MS(10)), 0);
        assert_true(mono_ns() - t0 < LOOP_SEC(20));
    }
    assert_int_equal(got, sizeof big);
    close(fd);
    /* abort: the queue is dropped and the peer sees a reset. */
    e.last = NULL;
    fd = raw_connect(port);
    RUN_UNTIL(l, e.last != NULL);
    s = e.last;
    setsockopt(loop_stream_fd(s), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    assert_int_equal(loop_stream_write(s, big, sizeof big), 0);
    assert_int_equal(loop_stream_abort(s), 0);
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {
    }
    assert_int_equal(n, -1);
    assert_int_equal(errno, ECONNRESET);
    close(fd);
    loop_server_free(e.srv);
    assert_int_equal(loop_free(l), 0);
}

static void closed_cb(loop_server *srv, void *arg)
{
    (void)srv;
    ++*(int *)arg;
}

static void test_server_close_stops_accepting_and_wait_closed_waits_for_connections(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    struct echo_server e = {0};
    uint16_t port = echo_listen(l, &e, NULL);
    int fd = raw_connect(port);
    RUN_UNTIL(l, e.conns == 1);
    int closed = 0;
    assert_int_equal(loop_server_wait_closed(e.srv, closed_cb, &closed), 0);
    assert_int_equal(loop_server_close(e.srv), 0);
    loop_server_info_t info;
    assert_int_equal(loop_server_info(e.srv, &info), 0);
    assert_false(info.listening);
    assert_int_equal(info.connections, 1);
    /* Nobody listens any more. */
    int fd2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd2, (struct sockaddr *)&a, sizeof a), -1);
    assert_int_equal(errno, ECONNREFUSED);
    close(fd2);
    for (int i = 0; i < 5; i++)
        assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(closed, 0); /* a connection is still open */
    close(fd);                   /* the echo server closes on end of file */
    RUN_UNTIL(l, closed == 1);
    assert_int_equal(loop_server_info(e.srv, &info), 0);
    assert_int_equal(info.connections, 0);
    assert_int_equal(info.accepted, 1);
    loop_server_free(e.srv);
    assert_int_equal(loop_free(l), 0);
}

static void test_open_fd_makes_streams_of_a_pipe_and_refuses_files(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0); /* blocking: open_fd makes it not */
    struct rec r = {.consume = true};
    loop_stream *in, *out;
    assert_int_equal(loop_stream_open_fd(l, p[0], NULL, &rec_cb, &r, &in), 0);
    assert_int_equal(loop_stream_open_fd(l, p[1], NULL, NULL, NULL, &out), 0);
    assert_true(fcntl(p[0], F_GETFL) & O_NONBLOCK);
    assert_int_equal(loop_stream_write(out, "through a pipe", 14), 0);
    assert_int_equal(loop_stream_shutdown_write(out), -ENOTSOCK);
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(loop_stream_peer_addr(out, &ss, &len), -ENOTSOCK);
    assert_int_equal(loop_stream_close(out), 0); /* the writer's end of file */
    RUN_UNTIL(l, r.eof);
    assert_string_equal(r.buf, "through a pipe");
    assert_int_equal(loop_stream_close(in), 0);
    assert_int_equal(fcntl(p[0], F_GETFD), -1); /* the stream owned it */

    char path[64];
    snprintf(path, sizeof path, "/tmp/loop_stream_file.%d", (int)getpid());
    int fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    unlink(path);
    assert_int_equal(loop_stream_open_fd(l, fd, NULL, NULL, NULL, &in), -EPERM);
    assert_null(in);
    close(fd); /* still the program's */
    assert_int_equal(loop_stream_open_fd(l, fd, NULL, NULL, NULL, &in), -EBADF);
    assert_int_equal(loop_stream_open_fd(l, -1, NULL, NULL, NULL, &in), -EBADF);
    assert_int_equal(loop_free(l), 0);
}

static void test_loop_free_closes_fds_and_leaves_husks_that_close_releases(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    struct echo_server e = {0};
    uint16_t port = echo_listen(l, &e, NULL);
    struct rec r = {.consume = true};
    loop_stream *c;
    assert_int_equal(loop_stream_connect(l, "127.0.0.1", port, NULL, &rec_cb, &r, &c), 0);
    echo_round_trip(l, c, &r);
    int fd = loop_stream_fd(c);
    assert_true(fd >= 0);
    assert_int_equal(loop_free(l), 0);
    /* The fd is gone; the husk answers -EBADF, and close releases it. */
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(loop_stream_write(c, "x", 1), -EBADF);
    assert_null(loop_stream_loop(c));
    assert_int_equal(loop_server_close(e.srv), 0);
    assert_int_equal(loop_stream_close(c), 0);
    loop_server_free(e.srv);
    /* e.last (the server's side) was a husk too, never closed by the
     * program: release it so the suite leaks nothing. */
    assert_non_null(e.last);
    assert_int_equal(loop_stream_close(e.last), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_echo_round_trip_then_server_sees_eof_and_closes),
        cmocka_unit_test(test_ipv6_and_localhost_and_bracketed_hosts_connect),
        cmocka_unit_test(test_unix_socket_echo_and_no_tcp_port),
        cmocka_unit_test(test_bad_addresses_are_einval_and_names_are_enosys),
        cmocka_unit_test(test_connect_to_a_closed_port_is_econnrefused),
        cmocka_unit_test(test_half_close_peer_reads_eof_and_still_gets_the_reply),
        cmocka_unit_test(test_abort_resets_the_connection_and_close_sends_the_queue_first),
        cmocka_unit_test(test_server_close_stops_accepting_and_wait_closed_waits_for_connections),
        cmocka_unit_test(test_open_fd_makes_streams_of_a_pipe_and_refuses_files),
        cmocka_unit_test(test_loop_free_closes_fds_and_leaves_husks_that_close_releases),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
