/*
 * The write side: a write sends at once when nothing is queued (most
 * writes end there: no copy, no memory), and queues what the kernel did
 * not take.  The queue is one buffer, sent by the dispatch when the fd is
 * writable, whole, in one system call; it is freed as soon as it is
 * empty.  A peer that has gone is an error code, never SIGPIPE: sockets
 * are written with MSG_NOSIGNAL, other fds as write_nosignal() says.
 */
#include "stream_internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * A pipe (or FIFO) has no MSG_NOSIGNAL: a write whose reader is gone
 * fails with EPIPE and raises SIGPIPE at the writing thread, whose
 * default action ends the program.  So SIGPIPE is blocked in this thread
 * around the write, and the one the write raised is taken back before
 * the mask is restored.  A SIGPIPE pending already is the program's
 * (raised while it blocked SIGPIPE) and is not ours to take; the write's
 * is then left too, as the two cannot be told apart (a standard signal
 * does not queue).  Three more system calls per write, on pipes only:
 * sockets keep their one.
 */
static ssize_t write_nosignal(int fd, const void *buf, size_t len)
{
    sigset_t pipe_only, old, pending;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    bool was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    ssize_t n = write(fd, buf, len);
    int err = errno;
    if (n < 0 && err == EPIPE && !was_pending) {
        /* Zero timeout: a device may say EPIPE without raising SIGPIPE. */
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_only, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return n;
}

static ssize_t send_fd(loop_stream *s, const void *buf, size_t len)
{
    ssize_t n;
    do {
        s->writes++;
        n = (s->flags & S_SOCKET) ? send(s->fd, buf, len, MSG_NOSIGNAL)
                                  : write_nosignal(s->fd, buf, len);
    } while (n < 0 && errno == EINTR);
    if (n > 0)
        s->bytes_out += (uint64_t)n;
    return n;
}

int loop__stream_shut(loop_stream *s)
{
    s->flags |= S_SHUT_DONE;
    if (shutdown(s->fd, SHUT_WR) < 0 && errno != ENOTCONN)
        return -errno;
    return 0;
}

/* After the queue shrank: drained, shut down, or closed for good. */
static void after_send(loop_stream *s)
{
    if (s->wlen == 0 && s->wbuf) {
        loop__stream_mem(s->st, s->wbuf, 0);
        s->wbuf = NULL;
        s->wcap = s->woff = 0;
    }
    if (s->wlen == 0 && (s->flags & S_CLOSED)) {
        loop__stream_finish_close(s);
        return;
    }
    if (s->wlen == 0 && (s->flags & (S_SHUT_ASKED | S_SHUT_DONE)) == S_SHUT_ASKED) {
        int err = loop__stream_shut(s);
        if (err) {
            loop__stream_fail(s, err, true);
            return;
        }
    }
    (void)loop__stream_update(s); /* writable off: a change in place */
    if ((s->flags & S_PAUSED) && s->wlen <= s->low) {
        s->flags &= ~S_PAUSED;
        if (s->cb.on_drain)
            s->cb.on_drain(s, s->arg);
    }
}

/* The fd is writable: send the whole queue, once. */
void loop__stream_flush(loop_stream *s)
{
    ssize_t n = send_fd(s, s->wbuf + s->woff, s->wlen);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            loop__stream_fail(s, -errno, true);
        return;
    }
    s->woff += (size_t)n;
    s->wlen -= (size_t)n;
    after_send(s);
}

static int append(loop_stream *s, const char *data, size_t len)
{
    if (len > SIZE_MAX - s->wlen)
        return -ENOMEM;
    if (s->wcap - s->woff - s->wlen < len) {
        if (s->woff > 0) {
            memmove(s->wbuf, s->wbuf + s->woff, s->wlen);
            s->woff = 0;
        }
        if (s->wcap - s->wlen < len) {
            size_t cap = s->wcap > SIZE_MAX / 2 ? SIZE_MAX : s->wcap * 2;
            if (cap < s->wlen + len)
                cap = s->wlen + len;
            if (cap < 1024)
                cap = 1024;
            char *p = loop__stream_mem(s->st, s->wbuf, cap);
            if (!p)
                return -ENOMEM;
            s->wbuf = p;
            s->wcap = cap;
        }
    }
    memcpy(s->wbuf + s->woff + s->wlen, data, len);
    s->wlen += len;
    return 0;
}

int loop_stream_write(loop_stream *s, const void *data, size_t len)
{
    if (!s || (!data && len) || (s->flags & S_CLOSED))
        return -EINVAL;
    if (!s->loop)
        return -EBADF;
    if (s->err)
        return s->err;
    if (s->flags & S_SHUT_ASKED)
        return -EPIPE;
    if (len == 0)
        return 0;
    const char *p = data;
    bool sent = false;
    if (s->wlen == 0 && !(s->flags & S_CONNECTING)) {
        ssize_t n = send_fd(s, p, len);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            int err = -errno;
            loop__stream_fail(s, err, false);
            return err;
        }
        if (n == (ssize_t)len)
            return 0;
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            sent = true;
        }
    }
    int err = append(s, p, len);
    if (err) {
        if (sent)
            loop__stream_fail(s, err, false); /* never leave a hole */
        return err;
    }
    err = loop__stream_update(s);
    if (err) {
        loop__stream_fail(s, err, false);
        return err;
    }
    if (s->wlen > s->high)
        s->flags |= S_PAUSED;
    return 0;
}

int loop_stream_shutdown_write(loop_stream *s)
{
    if (!s || (s->flags & S_CLOSED))
        return -EINVAL;
    if (!s->loop)
        return -EBADF;
    if (s->err)
        return s->err;
    if (!(s->flags & S_SOCKET))
        return -ENOTSOCK;
    if (s->flags & S_SHUT_ASKED)
        return 0;
    s->flags |= S_SHUT_ASKED;
    if (s->wlen > 0 || (s->flags & S_CONNECTING))
        return 0; /* after the queue (or the connect) */
    int err = loop__stream_shut(s);
    if (err)
        loop__stream_fail(s, err, false);
    return err;
}
