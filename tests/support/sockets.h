/*
 * fds to watch: socketpairs and pipes (non-blocking, close-on-exec), bytes
 * written to them, readiness seen from outside the loop, and room for many
 * of them under the fd limit.  Include after fixtures.h (they assert).
 */
#ifndef LOOP_TESTS_SOCKETS_H
#define LOOP_TESTS_SOCKETS_H

#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static inline void make_socketpair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static inline void make_pipe(int p[2])
{
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static inline void close_pair(int sv[2])
{
    close(sv[0]);
    close(sv[1]);
}

/* Write all of s to fd, at once. */
static inline void put(int fd, const char *s)
{
    assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Is fd readable right now?  (poll() without waiting.) */
static inline bool fd_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, 0);
    assert_true(n >= 0);
    return n == 1 && (p.revents & POLLIN);
}

/* An fd handler that reads what is there and counts the reads that got data. */
static inline void drain_io(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)events;
    char buf[64];
    if (read(fd, buf, sizeof(buf)) > 0)
        (*(int *)arg)++;
}

/*
 * Raise the soft fd limit towards want (as far as the hard limit allows);
 * returns the soft limit then in force.
 */
static inline size_t raise_fd_limit(size_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
            return 0;
    }
    return rl.rlim_cur;
}

#endif /* LOOP_TESTS_SOCKETS_H */
