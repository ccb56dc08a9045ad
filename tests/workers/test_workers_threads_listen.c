/*
 * loop_workers_listen_reuseport(): what it accepts, the socket it gives,
 * a port in use, and worker threads each accepting on a listener of its
 * own in one SO_REUSEPORT group, which the kernel spreads connections over.
 */
#include "workers_testing.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int family(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    return ss.ss_family;
}

static int sockopt(int fd, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    assert_int_equal(getsockopt(fd, SOL_SOCKET, name, &v, &len), 0);
    return v;
}

/* A plain listener (no SO_REUSEPORT) on 127.0.0.1, any port. */
static int plain_listener(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 8), 0);
    return fd;
}

static void test_listen_rejects_what_is_not_a_numeric_address_or_a_port(void **state)
{
    (void)state;
    assert_int_equal(loop_workers_listen_reuseport(NULL, 0, 0), -EINVAL);
    assert_int_equal(loop_workers_listen_reuseport("", 0, 0), -EINVAL);
    assert_int_equal(loop_workers_listen_reuseport("example.com", 0, 0), -EINVAL);
    assert_int_equal(loop_workers_listen_reuseport("127.0.0", 0, 0), -EINVAL);
    assert_int_equal(loop_workers_listen_reuseport("[127.0.0.1]", 0, 0), -EINVAL);
    assert_int_equal(loop_workers_listen_reuseport("[::1", 0, 0), -EINVAL);
    assert_int_equal(loop_workers_listen_reuseport("127.0.0.1", -1, 0), -EINVAL);
    assert_int_equal(loop_workers_listen_reuseport("127.0.0.1", 65536, 0), -EINVAL);
    assert_int_equal(loop_workers_listen_reuseport("127.0.0.1", 0, -1), -EINVAL);
}

static void test_listen_gives_a_nonblocking_cloexec_reuseport_listener(void **state)
{
    (void)state;
    int fd = loop_workers_listen_reuseport("127.0.0.1", 0, 0);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(sockopt(fd, SO_REUSEPORT), 1);
    assert_int_equal(sockopt(fd, SO_REUSEADDR), 1);
    assert_int_equal(sockopt(fd, SO_ACCEPTCONN), 1);
    assert_int_equal(family(fd), AF_INET);

    /* A second one on the same port joins the group. */
    int port = bound_port(fd);
    int fd2 = loop_workers_listen_reuseport("localhost", port, 16);
    assert_true(fd2 >= 0);
    assert_int_equal(bound_port(fd2), port);
    assert_int_equal(family(fd2), AF_INET);
    close(fd2);
    close(fd);
}

static void test_listen_takes_ipv6_with_or_without_brackets(void **state)
{
    (void)state;
    int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) {
        skip(); /* no IPv6 here */
        return;
    }
    close(probe);
    int fd = loop_workers_listen_reuseport("::1", 0, 0);
    if (fd == -EADDRNOTAVAIL) {
        skip(); /* IPv6 without a loopback address */
        return;
    }
    assert_true(fd >= 0);
    assert_int_equal(family(fd), AF_INET6);
    int fd2 = loop_workers_listen_reuseport("[::1]", bound_port(fd), 0);
    assert_true(fd2 >= 0);
    assert_int_equal(bound_port(fd2), bound_port(fd));
    close(fd2);
    close(fd);
}

static void test_listen_on_a_port_held_without_reuseport_is_eaddrinuse(void **state)
{
    (void)state;
    int held = plain_listener();
    assert_int_equal(loop_workers_listen_reuseport("127.0.0.1", bound_port(held), 0), -EADDRINUSE);
    close(held);
}

static int listen_on_port(loop_t *loop, unsigned index, void *arg)
{
    (void)loop;
    (void)index;
    int fd = loop_workers_listen_reuseport("127.0.0.1", *(int *)arg, 0);
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

static void test_a_setup_whose_port_is_in_use_fails_the_start_with_eaddrinuse(void **state)
{
    (void)state;
    int held = plain_listener();
    int port = bound_port(held);
    loop_workers_options o = {
        .mode = LOOP_WORKERS_THREADS, .count = 2, .setup = listen_on_port, .arg = &port};
    loop_workers *w = NULL;

    assert_int_equal(loop_workers_start(&w, &o), -EADDRINUSE);
    assert_null(w);
    close(held);
    assert_int_equal(extra_threads_settled(), 0);
}

/* ---- workers accepting ------------------------------------------------------ */

#define WORKERS 2
#define CLIENTS 64

struct server {
    loop_workers *w;
    int port;
    int lfd[WORKERS];
    int accepted[WORKERS]; /* each worker's own */
    int total;             /* atomic */
};

static void on_accept(loop_t *loop, int fd, unsigned events, void *arg)
{
    struct server *s = arg;
    int i = loop_workers_index(loop);
    (void)events;
    for (int c; (c = accept4(fd, NULL, NULL, SOCK_CLOEXEC)) >= 0;) {
        close(c);
        s->accepted[i]++;
        if (__atomic_add_fetch(&s->total, 1, __ATOMIC_ACQ_REL) == CLIENTS)
            loop_workers_stop(s->w);
    }
}

static int open_listener(loop_t *loop, unsigned index, void *arg)
{
    struct server *s = arg;
    int fd = loop_workers_listen_reuseport("127.0.0.1", s->port, 0);
    if (fd < 0)
        return fd;
    s->lfd[index] = fd;
    int err = loop_add_reader(loop, fd, on_accept, s);
    if (err)
        close(fd);
    return err;
}

static void stop_accepting(loop_t *loop, unsigned index, void *arg)
{
    struct server *s = arg;
    loop_remove_reader(loop, s->lfd[index]);
}

static void close_listener(loop_t *loop, unsigned index, void *arg)
{
    struct server *s = arg;
    (void)loop;
    close(s->lfd[index]);
}

static void test_each_worker_accepts_on_its_own_listener_and_the_kernel_spreads_them(void **state)
{
    (void)state;
    struct server s = {0};
    loop_workers_options o = {.mode = LOOP_WORKERS_THREADS,
                              .count = WORKERS,
                              .setup = open_listener,
                              .drain = stop_accepting,
                              .teardown = close_listener,
                              .arg = &s};
    /* Port 0 gives each listener a port of its own: learn one first. */
    int probe = loop_workers_listen_reuseport("127.0.0.1", 0, 0);
    assert_true(probe >= 0);
    s.port = bound_port(probe);
    assert_int_equal(loop_workers_start(&s.w, &o), 0);
    close(probe); /* before any client: none waits in its backlog */

    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)s.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < CLIENTS; i++) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(c >= 0);
        assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof a), 0);
        close(c);
    }
    assert_int_equal(loop_workers_wait(s.w), 0);
    assert_int_equal(s.accepted[0] + s.accepted[1], CLIENTS);
    /* Each connection's 4-tuple hash picks a listener: with 64 of them,
     * one listener getting none has a chance of 2^-63. */
    assert_true(s.accepted[0] > 0);
    assert_true(s.accepted[1] > 0);
    assert_int_equal(loop_workers_free(s.w), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_rejects_what_is_not_a_numeric_address_or_a_port),
        cmocka_unit_test(test_listen_gives_a_nonblocking_cloexec_reuseport_listener),
        cmocka_unit_test(test_listen_takes_ipv6_with_or_without_brackets),
        cmocka_unit_test(test_listen_on_a_port_held_without_reuseport_is_eaddrinuse),
        cmocka_unit_test(test_a_setup_whose_port_is_in_use_fails_the_start_with_eaddrinuse),
        cmocka_unit_test(test_each_worker_accepts_on_its_own_listener_and_the_kernel_spreads_them),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, threads_suite_setup, NULL);
}
