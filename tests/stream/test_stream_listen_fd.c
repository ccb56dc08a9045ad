/*
 * loop_server_listen_fd(): serving on a socket the program bound and made
 * listen itself (TCP over IPv4 and IPv6, Unix), with the listener's
 * options; the clients already waiting in its backlog are served; the
 * documented errors for what cannot be served; the fd is the server's
 * from a success on (closed by close, free or loop_free, and by nothing
 * else), the program's after a failure; a copy kept elsewhere keeps the
 * socket and its backlog; every allocation failed in turn.
 */
#include "stream_testing.h"

#include "counting_alloc.h"
#include "fdleak.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/un.h>

/* ---- sockets made by the test ----------------------------------------- */

/* A TCP socket of family af bound to its loopback, port 0, made to
 * listen if asked; blocking and without close-on-exec, as a program that
 * knows nothing of the loop makes one.  *port gets the port. */
static int tcp_socket(int af, bool listening, uint16_t *port)
{
    struct sockaddr_storage ss = {.ss_family = (sa_family_t)af};
    socklen_t len = af == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (af == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
    int fd = socket(af, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&ss, len), 0);
    if (listening)
        assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    *port = ntohs(af == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

static struct sockaddr_un unix_path(void)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "/tmp/loop-listen-fd-%d.sock", (int)getpid());
    return a;
}

static int unix_socket(int type)
{
    struct sockaddr_un a = unix_path();
    unlink(a.sun_path);
    int fd = socket(AF_UNIX, type, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0);
    return fd;
}

static int unix_connect(void)
{
    struct sockaddr_un a = unix_path();
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static int tcp_connect(int af, uint16_t port)
{
    if (af == AF_INET)
        return raw_connect(port);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    a.sin6_addr = in6addr_loopback;
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* The identity of the file fd is open on, to tell later whether fd is
 * still that file (not closed, and not a new file with the same number). */
static ino_t inode_of(int fd)
{
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    return sb.st_ino;
}

static bool open_as(int fd, ino_t ino)
{
    struct stat sb;
    return fstat(fd, &sb) == 0 && sb.st_ino == ino;
}

/* Send text on client fd and wait for the echo server to send it back. */
static void expect_echo(loop_t *l, int fd, const char *text)
{
    size_t n = strlen(text);
    char buf[64];
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    RUN_UNTIL(l, recv(fd, buf, sizeof buf, MSG_DONTWAIT | MSG_PEEK) == (ssize_t)n);
    assert_int_equal(recv(fd, buf, n, 0), (ssize_t)n);
    assert_memory_equal(buf, text, n);
}

/* ---- serving ------------------------------------------------------------ */

static void test_listen_fd_serves_a_tcp_socket_made_nonblocking_and_cloexec(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    uint16_t port;
    int fd = tcp_socket(AF_INET, true, &port);
    assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_false(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    struct echo_server e = {0};
    assert_int_equal(loop_server_listen_fd(l, fd, NULL, echo_on_conn, &e, &e.srv), 0);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(loop_server_port(e.srv), port);
    loop_server_info_t info;
    assert_int_equal(loop_server_info(e.srv, &info), 0);
    assert_true(info.listening);
    int c = raw_connect(port);
    expect_echo(l, c, "hello");
    int nodelay = 0;
    socklen_t len = sizeof nodelay;
    assert_int_equal(getsockopt(loop_stream_fd(e.last), IPPROTO_TCP, TCP_NODELAY, &nodelay, &len),
                     0);
    assert_true(nodelay); /* as loop_server_listen()'s connections */
    close(c);
    RUN_UNTIL(l, e.closed == 1);
    assert_int_equal(loop_server_info(e.srv, &info), 0);
    assert_int_equal(info.accepted, 1);
    loop_server_free(e.srv);
    assert_int_equal(loop_free(l), 0);
}

static void test_listen_fd_passes_its_options_on_to_each_connection(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    uint16_t port;
    int fd = tcp_socket(AF_INET, true, &port);
    loop_stream_options o = {.nagle = true, .limit = 8};
    struct echo_server e = {0};
    assert_int_equal(loop_server_listen_fd(l, fd, &o, echo_on_conn, &e, &e.srv), 0);
    int c = raw_connect(port);
    RUN_UNTIL(l, e.last != NULL);
    int nodelay = 1;
    socklen_t len = sizeof nodelay;
    assert_int_equal(getsockopt(loop_stream_fd(e.last), IPPROTO_TCP, TCP_NODELAY, &nodelay, &len),
                     0);
    assert_false(nodelay); /* Nagle was asked for */
    /* The read limit of 8: read_until gives up past it. */
    loop_stream_set_callbacks(e.last, NULL, NULL);
    assert_int_equal(write(c, "0123456789abcdef", 16), 16);
    const char *d;
    size_t n;
    RUN_UNTIL(l, loop_stream_read_until(e.last, "\n", 1, &d, &n) == -ENOBUFS);
    loop_stream_close(e.last);
    close(c);
    loop_server_free(e.srv);
    assert_int_equal(loop_free(l), 0);
}

static void test_listen_fd_serves_ipv6_and_unix_sockets(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    uint16_t port;
    struct echo_server e6 = {0}, eu = {0};
    int fd6 = tcp_socket(AF_INET6, true, &port);
    assert_int_equal(loop_server_listen_fd(l, fd6, NULL, echo_on_conn, &e6, &e6.srv), 0);
    assert_int_equal(loop_server_port(e6.srv), port);
    int fdu = unix_socket(SOCK_STREAM);
    assert_int_equal(loop_server_listen_fd(l, fdu, NULL, echo_on_conn, &eu, &eu.srv), 0);
    assert_int_equal(loop_server_port(eu.srv), 0); /* not TCP */
    int c6 = tcp_connect(AF_INET6, port), cu = unix_connect();
    expect_echo(l, c6, "over ipv6");
    expect_echo(l, cu, "over a unix socket");
    close(c6);
    close(cu);
    RUN_UNTIL(l, e6.closed == 1 && eu.closed == 1);
    loop_server_free(e6.srv);
    loop_server_free(eu.srv);
    struct sockaddr_un a = unix_path();
    assert_int_equal(unlink(a.sun_path), 0); /* the path is the program's to remove */
    assert_int_equal(loop_free(l), 0);
}

/* The supervisor's case: clients connected before any server took the
 * socket wait in its backlog, and are served once one does. */
static void test_clients_already_in_the_backlog_are_served(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    uint16_t port;
    int fd = tcp_socket(AF_INET, true, &port);
    int c[3];
    for (int i = 0; i < 3; i++)
        c[i] = raw_connect(port); /* the kernel completes them: backlog 16 */
    struct echo_server e = {0};
    assert_int_equal(loop_server_listen_fd(l, fd, NULL, echo_on_conn, &e, &e.srv), 0);
    for (int i = 0; i < 3; i++) {
        expect_echo(l, c[i], "waited");
        close(c[i]);
    }
    RUN_UNTIL(l, e.closed == 3);
    loop_server_free(e.srv);
    assert_int_equal(loop_free(l), 0);
}

/* ---- what cannot be served -------------------------------------------- */

/* listen_fd fails with err; *out is NULL; fd is still the program's, as
 * it was (still open on the same file, still blocking). */
static void expect_refused(loop_t *l, int fd, const loop_stream_options *o, int err)
{
    struct echo_server e = {0};
    loop_server *srv = (loop_server *)&e; /* anything but NULL */
    ino_t ino = inode_of(fd);
    int fl = fcntl(fd, F_GETFL);
    assert_int_equal(loop_server_listen_fd(l, fd, o, echo_on_conn, &e, &srv), err);
    assert_null(srv);
    assert_true(open_as(fd, ino));
    assert_int_equal(fcntl(fd, F_GETFL), fl);
    close(fd);
}

static void test_listen_fd_errors_are_documented_and_leave_the_fd_to_the_program(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    uint16_t port;
    loop_server *srv = NULL;
    int fd = tcp_socket(AF_INET, true, &port);
    assert_int_equal(loop_server_listen_fd(NULL, fd, NULL, echo_on_conn, NULL, &srv), -EINVAL);
    assert_int_equal(loop_server_listen_fd(l, fd, NULL, NULL, NULL, &srv), -EINVAL);
    assert_int_equal(loop_server_listen_fd(l, fd, NULL, echo_on_conn, NULL, NULL), -EINVAL);
    expect_refused(l, fd, &(loop_stream_options){.high_water = 10, .low_water = 20}, -EINVAL);

    assert_int_equal(loop_server_listen_fd(l, -1, NULL, echo_on_conn, NULL, &srv), -EBADF);
    assert_null(srv);
    int closed = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(closed >= 0);
    close(closed);
    assert_int_equal(loop_server_listen_fd(l, closed, NULL, echo_on_conn, NULL, &srv), -EBADF);

    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[1]);
    expect_refused(l, p[0], NULL, -ENOTSOCK);
    expect_refused(l, open("/dev/null", O_RDONLY), NULL, -ENOTSOCK);

    expect_refused(l, socket(AF_INET, SOCK_DGRAM, 0), NULL, -EINVAL);    /* UDP */
    expect_refused(l, tcp_socket(AF_INET, false, &port), NULL, -EINVAL); /* bound only */
    expect_refused(l, socket(AF_INET6, SOCK_STREAM, 0), NULL, -EINVAL);  /* new */
    /* Listening, but not a byte stream. */
    expect_refused(l, unix_socket(SOCK_SEQPACKET), NULL, -EINVAL);
    struct sockaddr_un a = unix_path();
    unlink(a.sun_path);
    /* A connected stream socket: one end of a connection, not a listener. */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    expect_refused(l, sv[0], NULL, -EINVAL);
    assert_int_equal(loop_free(l), 0);
}

/* ---- whose fd ----------------------------------------------------------- */

static void test_the_server_closes_the_fd_at_close_and_at_free_and_not_before(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    uint16_t port;
    int fd = tcp_socket(AF_INET, true, &port);
    ino_t ino = inode_of(fd);
    struct echo_server e = {0};
    assert_int_equal(loop_server_listen_fd(l, fd, NULL, echo_on_conn, &e, &e.srv), 0);
    int c = raw_connect(port);
    expect_echo(l, c, "served");
    assert_true(open_as(fd, ino)); /* serving does not close it */
    assert_int_equal(loop_server_close(e.srv), 0);
    assert_false(open_as(fd, ino)); /* close does */
    assert_int_equal(loop_server_close(e.srv), 0);
    close(c);
    RUN_UNTIL(l, e.closed == 1);
    loop_server_free(e.srv);

    fd = tcp_socket(AF_INET, true, &port); /* free without close */
    ino = inode_of(fd);
    assert_int_equal(loop_server_listen_fd(l, fd, NULL, echo_on_conn, &e, &e.srv), 0);
    loop_server_free(e.srv);
    assert_false(open_as(fd, ino));

    fd = tcp_socket(AF_INET, true, &port); /* loop_free leaves a husk, fd closed */
    ino = inode_of(fd);
    assert_int_equal(loop_server_listen_fd(l, fd, NULL, echo_on_conn, &e, &e.srv), 0);
    assert_int_equal(loop_free(l), 0);
    assert_false(open_as(fd, ino));
    loop_server_free(e.srv);
}

/* The supervisor keeps a copy: a worker's server that closes its own
 * leaves the socket listening, and the clients that come meanwhile wait
 * in its backlog for the next server. */
static void test_a_copy_kept_elsewhere_keeps_the_socket_and_its_backlog(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    uint16_t port;
    int kept = tcp_socket(AF_INET, true, &port);
    int fd = dup(kept);
    assert_true(fd >= 0);
    struct echo_server e = {0}, e2 = {0};
    assert_int_equal(loop_server_listen_fd(l, fd, NULL, echo_on_conn, &e, &e.srv), 0);
    int c = raw_connect(port);
    expect_echo(l, c, "first");
    loop_server_free(e.srv);
    int waiting = raw_connect(port); /* into the backlog of the kept copy */
    assert_int_equal(loop_server_listen_fd(l, kept, NULL, echo_on_conn, &e2, &e2.srv), 0);
    expect_echo(l, waiting, "second");
    close(waiting);
    close(c);
    RUN_UNTIL(l, e.closed == 1 && e2.closed == 1);
    loop_server_free(e2.srv);
    assert_int_equal(loop_free(l), 0);
}

/* ---- allocation failure --------------------------------------------------- */

/* echo_on_conn(), but a failure to set the callbacks (memory) is an
 * answer too: the connection is closed. */
static void echo_or_close(loop_server *srv, loop_stream *s, void *arg)
{
    (void)srv;
    struct echo_server *e = arg;
    loop_stream_callbacks cb = {.on_data = echo_on_data, .on_error = echo_on_error};
    if (loop_stream_set_callbacks(s, &cb, e) != 0) {
        loop_stream_close(s);
        return;
    }
    e->last = s;
}

/* The client's connection was answered (1), or ended by the server (0). */
static int outcome(int fd)
{
    char buf[8];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0)
        return 1;
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
        return 0;
    return -1;
}

static void test_each_failed_allocation_is_enomem_and_the_fd_stays_the_programs(void **state)
{
    (void)state;
    long at = 1;
    int refused = 0;
    for (;; at++) {
        struct counting_alloc a = {0};
        loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
        a.fail_at = a.calls + at;
        uint16_t port;
        int fd = tcp_socket(AF_INET, true, &port);
        ino_t ino = inode_of(fd);
        struct echo_server e = {0};
        int err = loop_server_listen_fd(l, fd, NULL, echo_or_close, &e, &e.srv);
        int answered = -1;
        if (err) {
            assert_int_equal(err, -ENOMEM);
            assert_null(e.srv);
            assert_true(open_as(fd, ino));
            assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
            close(fd);
            refused++;
        } else {
            int c = raw_connect(port);
            assert_int_equal(write(c, "x", 1), 1);
            uint64_t t0 = mono_ns();
            while ((answered = outcome(c)) < 0) { /* the loop's own -ENOMEM: again */
                int e2 = loop_run_once(l, LOOP_MS(50));
                assert_true(e2 == 0 || e2 == -ENOMEM);
                if (mono_ns() - t0 > LOOP_SEC(20))
                    fail_msg("hangs after allocation %ld failed", at);
            }
            close(c);
            if (e.last)
                loop_stream_close(e.last);
            loop_server_free(e.srv);
            assert_false(open_as(fd, ino));
        }
        assert_int_equal(loop_free(l), 0);
        assert_int_equal(a.live_blocks, 0);
        assert_int_equal(a.bad_frees, 0);
        if (a.failures == 0) {
            assert_int_equal(answered, 1); /* past the last allocation: served whole */
            break;
        }
        assert_true(at < 200);
    }
    print_message("each of %ld allocations failed in turn; listen_fd said -ENOMEM %d times\n",
                  at - 1, refused);
    assert_true(refused > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_fd_serves_a_tcp_socket_made_nonblocking_and_cloexec),
        cmocka_unit_test(test_listen_fd_passes_its_options_on_to_each_connection),
        cmocka_unit_test(test_listen_fd_serves_ipv6_and_unix_sockets),
        cmocka_unit_test(test_clients_already_in_the_backlog_are_served),
        cmocka_unit_test(test_listen_fd_errors_are_documented_and_leave_the_fd_to_the_program),
        cmocka_unit_test(test_the_server_closes_the_fd_at_close_and_at_free_and_not_before),
        cmocka_unit_test(test_a_copy_kept_elsewhere_keeps_the_socket_and_its_backlog),
        cmocka_unit_test(test_each_failed_allocation_is_enomem_and_the_fd_stays_the_programs),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
