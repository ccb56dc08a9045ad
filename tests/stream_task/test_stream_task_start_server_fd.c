/*
 * loop_stream_task_start_server_fd(), asyncio's start_server(sock=...): a
 * task per connection on a socket the program bound and made listen,
 * called from outside any task; the fd is the server's from a success on
 * (closed by loop_server_close(), not before), the program's after a
 * failure, each error as loop_server_listen_fd() documents it; every
 * allocation failed in turn.
 */
#include "../stream/stream_testing.h"

#include "counting_alloc.h"
#include "fdleak.h"
#include "loop_stream_task.h"

#include <fcntl.h>
#include <sys/stat.h>

/* A line back for each line, until end of file. */
static int echo_handler(loop_stream *s, void *arg)
{
    int *served = arg;
    const char *d;
    size_t n;
    int err;
    while ((err = loop_stream_task_read_until(s, "\n", 1, &d, &n)) == 0) {
        if ((err = loop_stream_write(s, d, n)) != 0 || (err = loop_stream_task_drain(s)) != 0)
            break;
    }
    ++*served;
    return err == -EPIPE ? 0 : err;
}

/* A blocking TCP socket on 127.0.0.1, port 0, listening, as a program
 * that knows nothing of the loop makes one.  *port gets the port. */
static int listening_socket(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static ino_t inode_of(int fd)
{
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    return sb.st_ino;
}

/* Is fd still open on the file whose inode is ino? */
static bool open_as(int fd, ino_t ino)
{
    struct stat sb;
    return fstat(fd, &sb) == 0 && sb.st_ino == ino;
}

/* What client fd got: 1 bytes, 0 an end (end of file or reset), -1 nothing yet. */
static int outcome(int fd)
{
    char buf[16];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT | MSG_PEEK);
    if (n > 0)
        return 1;
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
        return 0;
    return -1;
}

static void test_start_server_fd_runs_a_task_per_connection_and_closes_the_fd_at_close(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    uint16_t port;
    int fd = listening_socket(&port);
    ino_t ino = inode_of(fd);
    int served = 0;
    loop_server *srv;
    /* Outside any task: no name to resolve, nothing to wait for. */
    assert_null(loop_task_current(l));
    assert_int_equal(loop_stream_task_start_server_fd(l, fd, NULL, echo_handler, &served, &srv), 0);
    assert_int_equal(loop_server_port(srv), port);
    int c[2] = {raw_connect(port), raw_connect(port)};
    for (int i = 0; i < 2; i++) {
        char buf[8];
        assert_int_equal(write(c[i], "ping\n", 5), 5);
        RUN_UNTIL(l, outcome(c[i]) >= 0);
        assert_int_equal(outcome(c[i]), 1); /* not ended unanswered */
        assert_int_equal(recv(c[i], buf, sizeof buf, 0), 5);
        assert_memory_equal(buf, "ping\n", 5);
        close(c[i]);
    }
    RUN_UNTIL(l, served == 2);
    assert_true(open_as(fd, ino));
    assert_int_equal(loop_server_close(srv), 0);
    assert_false(open_as(fd, ino)); /* the server's to close */
    loop_server_free(srv);
    assert_int_equal(loop_free(l), 0);
}

/* start_server_fd fails with err, leaves *out NULL, fd open and as it
 * was, and no memory held. */
static void expect_refused(int fd, loop_stream_handler_fn *handler, int err)
{
    struct counting_alloc a = {0};
    loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
    int served = 0;
    loop_server *srv = (loop_server *)&served; /* anything but NULL */
    ino_t ino = inode_of(fd);
    int fl = fcntl(fd, F_GETFL);
    assert_int_equal(loop_stream_task_start_server_fd(l, fd, NULL, handler, &served, &srv), err);
    assert_null(srv);
    assert_true(open_as(fd, ino));
    assert_int_equal(fcntl(fd, F_GETFL), fl);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(a.live_blocks, 0);
    close(fd);
}

static void test_start_server_fd_errors_are_listen_fds_and_leave_the_fd_to_the_program(void **state)
{
    (void)state;
    uint16_t port;
    expect_refused(listening_socket(&port), NULL, -EINVAL);
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[1]);
    expect_refused(p[0], echo_handler, -ENOTSOCK);
    expect_refused(socket(AF_INET, SOCK_DGRAM, 0), echo_handler, -EINVAL);
    expect_refused(socket(AF_INET, SOCK_STREAM, 0), echo_handler, -EINVAL); /* not listening */

    loop_t *l = new_real_loop();
    int served = 0;
    loop_server *srv;
    assert_int_equal(loop_stream_task_start_server_fd(l, -1, NULL, echo_handler, &served, &srv),
                     -EBADF);
    assert_null(srv);
    assert_int_equal(loop_stream_task_start_server_fd(NULL, 0, NULL, echo_handler, &served, &srv),
                     -EINVAL);
    assert_int_equal(loop_free(l), 0);
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
        int fd = listening_socket(&port);
        ino_t ino = inode_of(fd);
        int served = 0, answered = -1;
        loop_server *srv;
        int err = loop_stream_task_start_server_fd(l, fd, NULL, echo_handler, &served, &srv);
        if (err) {
            assert_int_equal(err, -ENOMEM);
            assert_null(srv);
            assert_true(open_as(fd, ino));
            assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
            close(fd);
            refused++;
        } else {
            int c = raw_connect(port);
            assert_int_equal(write(c, "x\n", 2), 2);
            uint64_t t0 = mono_ns();
            while ((answered = outcome(c)) < 0) { /* the loop's own -ENOMEM: again */
                int e = loop_run_once(l, LOOP_MS(50));
                assert_true(e == 0 || e == -ENOMEM);
                if (mono_ns() - t0 > LOOP_SEC(20))
                    fail_msg("hangs after allocation %ld failed", at);
            }
            close(c);
            loop_server_free(srv);
            assert_false(open_as(fd, ino));
        }
        /* A handler still waiting is cancelled and its stream closed. */
        assert_int_equal(loop_free(l), 0);
        assert_int_equal(a.live_blocks, 0);
        assert_int_equal(a.bad_frees, 0);
        if (a.failures == 0) {
            assert_int_equal(answered, 1); /* past the last allocation: served */
            break;
        }
        assert_true(at < 500);
    }
    print_message("each of %ld allocations failed in turn; start_server_fd said -ENOMEM %d times\n",
                  at - 1, refused);
    assert_true(refused > 1); /* its own memory and the callback form's */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_start_server_fd_runs_a_task_per_connection_and_closes_the_fd_at_close),
        cmocka_unit_test(
            test_start_server_fd_errors_are_listen_fds_and_leave_the_fd_to_the_program),
        cmocka_unit_test(test_each_failed_allocation_is_enomem_and_the_fd_stays_the_programs),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
