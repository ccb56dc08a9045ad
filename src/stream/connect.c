/*
 * Addresses and connects.  Hosts are numbers (or "localhost"), parsed
 * here without a thread; names wait for the thread pool (-ENOSYS).  A
 * connect never blocks: connect() on a non-blocking socket, then the fd
 * turns writable when it is done and SO_ERROR says how it went.  A
 * connect that ends inside the call (a Unix socket) is reported from the
 * loop all the same, so on_connect never runs inside the call.
 */
#include "stream_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- addresses --------------------------------------------------------- */

/* Could host be a DNS name?  Labels of letters, digits and inner
 * hyphens, at least one letter (all digits and dots is a malformed IPv4
 * address). */
static bool is_name(const char *host)
{
    size_t n = strlen(host), label = 0;
    bool letter = false;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c == '.' || c == 0) {
            if (label == 0 ? c == '.' || i == 0 : host[i - 1] == '-')
                return false;
            label = 0;
        } else if (isalnum(c) || (c == '-' && label > 0)) {
            letter = letter || isalpha(c);
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return letter;
}

int loop__stream_resolve(const char *host, uint16_t port, bool passive, struct sockaddr_storage *ss,
                         socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    *len = sizeof(*in);
    if (!host || !*host) {
        if (!passive)
            return -EINVAL;
        in->sin_addr.s_addr = htonl(INADDR_ANY);
        return 0;
    }
    if (strcasecmp(host, "localhost") == 0) {
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return 0;
    }
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1)
        return 0;
    char buf[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof buf) {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = 0;
        host = buf;
    }
    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *len = sizeof(*in6);
        return 0;
    }
    return is_name(host) ? -ENOSYS : -EINVAL;
}

int loop__stream_unix_addr(const char *path, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_un *un = (struct sockaddr_un *)ss;
    if (!path)
        return -EINVAL;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof un->sun_path)
        return -EINVAL;
    memset(ss, 0, sizeof(*ss));
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, n + 1);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

int loop__stream_check_addr(const struct sockaddr *addr, socklen_t len)
{
    if (!addr)
        return -EINVAL;
    switch (addr->sa_family) {
    case AF_INET:
        return len >= (socklen_t)sizeof(struct sockaddr_in) ? 0 : -EINVAL;
    case AF_INET6:
        return len >= (socklen_t)sizeof(struct sockaddr_in6) ? 0 : -EINVAL;
    case AF_UNIX:
        return len > (socklen_t)offsetof(struct sockaddr_un, sun_path) &&
                       len <= (socklen_t)sizeof(struct sockaddr_un)
                   ? 0
                   : -EINVAL;
    default:
        return -EINVAL;
    }
}

/* ---- connecting -------------------------------------------------------- */

/* The fd turned writable (or failed) while connecting. */
void loop__stream_connected(loop_stream *s)
{
    int soerr = 0;
    socklen_t l = sizeof soerr;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &l) < 0)
        soerr = errno;
    if (soerr == EINPROGRESS || soerr == EALREADY)
        return;
    if (soerr) {
        loop__stream_fail(s, -soerr, true); /* on_connect(err) */
        return;
    }
    s->flags &= ~S_CONNECTING;
    loop_cancel(s->loop, s->conn_timer);
    s->conn_timer = (loop_handle){0};
    int err = loop__stream_update(s);
    if (err) {
        s->flags |= S_CONNECTING; /* report it through on_connect */
        loop__stream_fail(s, err, true);
        return;
    }
    if (s->cb.on_connect)
        s->cb.on_connect(s, 0, s->arg);
    if (loop__stream_gone(s) || s->err)
        return;
    if (s->wlen > 0)
        loop__stream_flush(s);
    else if ((s->flags & (S_SHUT_ASKED | S_SHUT_DONE)) == S_SHUT_ASKED)
        loop__stream_shut(s);
}

static void connect_timed_out(loop_t *loop, void *arg)
{
    (void)loop;
    loop_stream *s = arg;
    s->conn_timer = (loop_handle){0};
    s->depth++;
    loop__stream_fail(s, -ETIMEDOUT, true);
    loop__stream_leave(s);
}

/* Undo a stream made by a call that then failed: no callback ran. */
static int discard(loop_stream *s, int err, bool close_fd)
{
    if (!close_fd)
        s->fd = -1;
    s->flags |= S_CLOSED;
    loop__stream_finish_close(s);
    return err;
}

int loop_stream_connect_addr(loop_t *loop, const struct sockaddr *addr, socklen_t len,
                             const loop_stream_options *opts, const loop_stream_callbacks *cb,
                             void *arg, loop_stream **out)
{
    size_t limit, high, low;
    if (out)
        *out = NULL;
    if (!loop || !out || loop__stream_check_addr(addr, len) ||
        loop__stream_options(opts, &limit, &high, &low))
        return -EINVAL;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (addr->sa_family != AF_UNIX && !(opts && opts->nagle))
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int r = connect(fd, addr, len);
    if (r < 0 && errno != EINPROGRESS && errno != EINTR) {
        int err = -errno;
        close(fd);
        return err;
    }
    loop_stream *s;
    int err =
        loop__stream_new(loop, fd, S_SOCKET | (r < 0 ? S_CONNECTING : 0), limit, high, low, &s);
    if (err) {
        close(fd);
        return err;
    }
    if (cb)
        s->cb = *cb;
    s->arg = arg;
    err = loop__stream_update(s);
    if (!err && r < 0 && opts && opts->connect_timeout_ns)
        err = loop_call_later(loop, opts->connect_timeout_ns, connect_timed_out, s, &s->conn_timer);
    if (!err && r == 0)
        err = loop__stream_owe_connect(s);
    if (err)
        return discard(s, err, true);
    *out = s;
    return 0;
}

int loop_stream_connect(loop_t *loop, const char *host, uint16_t port,
                        const loop_stream_options *opts, const loop_stream_callbacks *cb, void *arg,
                        loop_stream **out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (out)
        *out = NULL;
    int err = loop__stream_resolve(host, port, false, &ss, &len);
    if (err)
        return err;
    return loop_stream_connect_addr(loop, (struct sockaddr *)&ss, len, opts, cb, arg, out);
}

int loop_stream_connect_unix(loop_t *loop, const char *path, const loop_stream_options *opts,
                             const loop_stream_callbacks *cb, void *arg, loop_stream **out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (out)
        *out = NULL;
    int err = loop__stream_unix_addr(path, &ss, &len);
    if (err)
        return err;
    return loop_stream_connect_addr(loop, (struct sockaddr *)&ss, len, opts, cb, arg, out);
}

int loop_stream_open_fd(loop_t *loop, int fd, const loop_stream_options *opts,
                        const loop_stream_callbacks *cb, void *arg, loop_stream **out)
{
    size_t limit, high, low;
    struct stat sb;
    if (out)
        *out = NULL;
    if (!loop || !out || loop__stream_options(opts, &limit, &high, &low))
        return -EINVAL;
    if (fd < 0 || fstat(fd, &sb) < 0)
        return -EBADF;
    if (S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode))
        return -EPERM;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
        return -errno;
    loop_stream *s;
    int err = loop__stream_new(loop, fd, S_ISSOCK(sb.st_mode) ? S_SOCKET : 0, limit, high, low, &s);
    if (err)
        return err;
    if (cb)
        s->cb = *cb;
    s->arg = arg;
    err = loop__stream_update(s);
    if (err)
        return discard(s, err, false);
    *out = s;
    return 0;
}
