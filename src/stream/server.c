/*
 * Listeners.  Each readiness accepts at most `accepts` connections, so a
 * listener under a flood takes its turn with everything else the loop
 * serves.  Running out of fds (EMFILE, ENFILE) is the classic trap of a
 * level-triggered listener: the pending connection keeps it readable and
 * the loop spins.  The loop's streams keep one reserve fd; on EMFILE the
 * listener gives it up, accepts the connection and closes it at once
 * (the client sees its connection closed rather than hanging), and takes
 * the reserve back.  If even that fails (the reserve was taken by
 * someone else, or the kernel is short of memory), or the listener was
 * asked to keep clients waiting (emfile_wait), it stops watching its fd
 * until one of its connections closes or ACCEPT_RETRY has passed.
 */
#include "stream_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPT_RETRY LOOP_MS(100)

static void on_accept(loop_t *loop, int fd, unsigned events, void *arg);

static void unlink_server(loop_server *srv)
{
    struct loop__stream_state *st = srv->st;
    if (srv->prev)
        srv->prev->next = srv->next;
    else
        st->servers = srv->next;
    if (srv->next)
        srv->next->prev = srv->prev;
    srv->prev = srv->next = NULL;
    st->live--;
}

static void free_server(loop_server *srv)
{
    struct loop__stream_state *st = srv->st;
    if (srv->release)
        srv->release(srv->release_arg);
    unlink_server(srv);
    loop__stream_mem(st, srv, 0);
    loop__stream_release(st);
}

static void take_reserve(struct loop__stream_state *st)
{
    if (st->reserve_fd < 0)
        st->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* ---- accepting --------------------------------------------------------- */

static void retry_accept(loop_t *loop, void *arg)
{
    loop_server *srv = arg;
    srv->retry = (loop_handle){0};
    take_reserve(srv->st);
    if (srv->fd >= 0 && loop_add_reader(loop, srv->fd, on_accept, srv) == 0)
        srv->accepting = true;
    else if (srv->fd >= 0)
        (void)loop_call_later(loop, ACCEPT_RETRY, retry_accept, srv, &srv->retry);
}

/* Stop watching for a while; the clients wait in the backlog. */
static void pause_accepting(loop_server *srv)
{
    if (srv->accepting)
        loop_remove_reader(srv->loop, srv->fd);
    srv->accepting = false;
    if (!srv->retry.id &&
        loop_call_later(srv->loop, ACCEPT_RETRY, retry_accept, srv, &srv->retry) != 0)
        retry_accept(srv->loop, srv); /* cannot wait: watch again (it may spin) */
}

/* Out of fds: refuse one connection with the reserve fd.  false if that
 * could not be done. */
static bool refuse_one(loop_server *srv)
{
    struct loop__stream_state *st = srv->st;
    if (st->reserve_fd < 0)
        return false;
    close(st->reserve_fd);
    st->reserve_fd = -1;
    int fd = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        srv->refused++;
    }
    take_reserve(st);
    return fd >= 0 || errno == EAGAIN || errno == EWOULDBLOCK;
}

/* Hand a new connection to the program; false if the server went. */
static bool hand_over(loop_server *srv, int fd)
{
    int one = 1;
    if (srv->tcp && !srv->nagle)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    loop_stream *s;
    if (loop__stream_new(srv->loop, fd, S_SOCKET, srv->limit, srv->high, srv->low, &s) != 0) {
        close(fd);
        srv->refused++;
        return true;
    }
    if (loop__stream_update(s) != 0) {
        s->flags |= S_CLOSED;
        loop__stream_finish_close(s);
        srv->refused++;
        return true;
    }
    s->srv = srv;
    srv->connections++;
    srv->accepted++;
    srv->depth++;
    srv->on_conn(srv, s, srv->arg);
    srv->depth--;
    if (srv->freed && srv->depth == 0) {
        free_server(srv);
        return false;
    }
    return srv->fd >= 0;
}

static void on_accept(loop_t *loop, int lfd, unsigned events, void *arg)
{
    (void)loop;
    (void)events;
    loop_server *srv = arg;
    for (unsigned i = 0; i < srv->accepts; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            if (!hand_over(srv, fd))
                return;
            continue;
        }
        switch (errno) {
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
            return;
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
        case EPERM:
            continue; /* that client is gone or was refused: the next */
        case EMFILE:
        case ENFILE:
            if (!srv->emfile_wait && refuse_one(srv))
                continue;
            pause_accepting(srv);
            return;
        default: /* ENOBUFS, ENOMEM, and network errors of the new connection */
            pause_accepting(srv);
            return;
        }
    }
}

/* ---- listening --------------------------------------------------------- */

/* A listener with the options, not yet on any fd (srv->fd is -1). */
static int server_new(loop_t *loop, const loop_stream_options *opts, loop_server_fn *on_conn,
                      void *arg, loop_server **out)
{
    size_t limit, high, low;
    struct loop__stream_state *st = loop__stream_state(loop);
    if (!st)
        return -ENOMEM;
    loop_server *srv = loop__stream_mem(st, NULL, sizeof(*srv));
    if (!srv)
        return -ENOMEM;
    (void)loop__stream_options(opts, &limit, &high, &low); /* checked by the caller */
    memset(srv, 0, sizeof(*srv));
    *srv = (loop_server){.st = st,
                         .loop = loop,
                         .fd = -1,
                         .limit = limit,
                         .high = high,
                         .low = low,
                         .on_conn = on_conn,
                         .arg = arg,
                         .accepts = LOOP_STREAM_ACCEPTS_DEFAULT};
    if (opts && opts->accepts_per_wakeup)
        srv->accepts = opts->accepts_per_wakeup;
    srv->nagle = opts && opts->nagle;
    srv->emfile_wait = opts && opts->emfile_wait;
    *out = srv;
    return 0;
}

/* srv->fd listens: watch it and count srv among the loop's listeners. */
static void server_start(loop_server *srv)
{
    struct loop__stream_state *st = srv->st;
    srv->accepting = true;
    srv->next = st->servers;
    if (srv->next)
        srv->next->prev = srv;
    st->servers = srv;
    st->live++;
    take_reserve(st);
}

/* A server_new() that could not be started: freed, its fd left open. */
static int server_discard(loop_server *srv, int err)
{
    loop__stream_mem(srv->st, srv, 0);
    return err;
}

/* *out made NULL; true if missing (a NULL loop or on_conn), out or opts is
 * bad. */
static bool bad_args(bool missing, const loop_stream_options *opts, loop_server **out)
{
    size_t limit, high, low;
    if (out)
        *out = NULL;
    return missing || !out || loop__stream_options(opts, &limit, &high, &low);
}

int loop_server_listen_addr(loop_t *loop, const struct sockaddr *addr, socklen_t len,
                            const loop_stream_options *opts, loop_server_fn *on_conn, void *arg,
                            loop_server **out)
{
    loop_server *srv;
    if (bad_args(!loop || !on_conn, opts, out) || loop__stream_check_addr(addr, len))
        return -EINVAL;
    int err = server_new(loop, opts, on_conn, arg, &srv);
    if (err)
        return err;
    srv->tcp = addr->sa_family != AF_UNIX;
    int one = 1;
    srv->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (srv->fd < 0 ||
        (srv->tcp && setsockopt(srv->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) ||
        (opts && opts->reuse_port &&
         setsockopt(srv->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        bind(srv->fd, addr, len) < 0 ||
        listen(srv->fd, opts && opts->backlog ? opts->backlog : SOMAXCONN) < 0)
        err = -errno;
    if (!err)
        err = loop_add_reader(loop, srv->fd, on_accept, srv);
    if (err) {
        if (srv->fd >= 0)
            close(srv->fd);
        return server_discard(srv, err);
    }
    server_start(srv);
    *out = srv;
    return 0;
}

/* fd is a listening stream socket; *domain gets its family. */
static int check_listening(int fd, int *domain)
{
    int type = 0, listening = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return -errno; /* EBADF (negative or not open), ENOTSOCK */
    len = sizeof listening;
    if (type != SOCK_STREAM || getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 ||
        !listening)
        return -EINVAL;
    len = sizeof *domain;
    return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, domain, &len) < 0 ? -errno : 0;
}

/* Non-blocking and close-on-exec, as the layer's own listeners are. */
static int set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    if (fl < 0 || fdfl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) ||
        (!(fdfl & FD_CLOEXEC) && fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0))
        return -errno;
    return 0;
}

int loop_server_listen_fd(loop_t *loop, int fd, const loop_stream_options *opts,
                          loop_server_fn *on_conn, void *arg, loop_server **out)
{
    loop_server *srv;
    int domain = AF_UNSPEC;
    if (bad_args(!loop || !on_conn, opts, out))
        return -EINVAL;
    int err = check_listening(fd, &domain);
    if (!err)
        err = server_new(loop, opts, on_conn, arg, &srv);
    if (err)
        return err;
    srv->tcp = domain == AF_INET || domain == AF_INET6;
    srv->fd = fd;
    err = loop_add_reader(loop, fd, on_accept, srv);
    if (!err && (err = set_flags(fd)) != 0)
        loop_remove_reader(loop, fd);
    if (err)
        return server_discard(srv, err);
    server_start(srv);
    *out = srv;
    return 0;
}

int loop_server_listen(loop_t *loop, const char *host, uint16_t port,
                       const loop_stream_options *opts, loop_server_fn *on_conn, void *arg,
                       loop_server **out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (out)
        *out = NULL;
    int err = loop__stream_resolve(host, port, true, &ss, &len);
    if (err)
        return err;
    return loop_server_listen_addr(loop, (struct sockaddr *)&ss, len, opts, on_conn, arg, out);
}

int loop_server_listen_unix(loop_t *loop, const char *path, const loop_stream_options *opts,
                            loop_server_fn *on_conn, void *arg, loop_server **out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (out)
        *out = NULL;
    int err = loop__stream_unix_addr(path, &ss, &len);
    if (err)
        return err;
    return loop_server_listen_addr(loop, (struct sockaddr *)&ss, len, opts, on_conn, arg, out);
}

/* ---- reading its state ------------------------------------------------- */

int loop_server_addr(const loop_server *srv, struct sockaddr_storage *addr, socklen_t *len)
{
    if (!srv || !addr || !len)
        return -EINVAL;
    if (srv->fd < 0)
        return -EBADF;
    *len = sizeof(*addr);
    return getsockname(srv->fd, (struct sockaddr *)addr, len) < 0 ? -errno : 0;
}

loop_t *loop_server_loop(const loop_server *srv)
{
    return srv && !srv->freed ? srv->loop : NULL;
}

uint16_t loop_server_port(const loop_server *srv)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (!srv || !srv->tcp || loop_server_addr(srv, &ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 in6;
        memcpy(&in6, &ss, sizeof in6);
        return ntohs(in6.sin6_port);
    }
    struct sockaddr_in in;
    memcpy(&in, &ss, sizeof in);
    return ntohs(in.sin_port);
}

int loop_server_info(const loop_server *srv, loop_server_info_t *out)
{
    if (!srv || !out)
        return -EINVAL;
    *out = (loop_server_info_t){.accepted = srv->accepted,
                                .refused = srv->refused,
                                .connections = srv->connections,
                                .listening = srv->fd >= 0};
    return 0;
}

/* ---- closing ----------------------------------------------------------- */

static void closed_now(loop_t *loop, void *arg)
{
    (void)loop;
    loop_server *srv = arg;
    srv->closed_soon = (loop_handle){0};
    loop_server_closed_fn *fn = srv->closed_fn;
    srv->closed_fn = NULL;
    if (fn)
        fn(srv, srv->closed_arg);
}

static void maybe_closed(loop_server *srv)
{
    if (srv->fd < 0 && srv->connections == 0 && srv->closed_fn && !srv->closed_soon.id && srv->loop)
        (void)loop_call_soon(srv->loop, closed_now, srv, &srv->closed_soon);
}

void loop__server_conn_gone(loop_server *srv)
{
    srv->connections--;
    maybe_closed(srv);
    /* An fd came free: a listener waiting for one tries again now. */
    if (srv->retry.id && srv->fd >= 0 && srv->loop) {
        loop_cancel(srv->loop, srv->retry);
        srv->retry = (loop_handle){0};
        retry_accept(srv->loop, srv);
    }
}

static void close_fd(loop_server *srv)
{
    if (srv->fd < 0)
        return;
    if (srv->accepting && srv->loop)
        loop_remove_reader(srv->loop, srv->fd);
    srv->accepting = false;
    if (srv->loop)
        loop_cancel(srv->loop, srv->retry);
    srv->retry = (loop_handle){0};
    close(srv->fd);
    srv->fd = -1;
}

int loop_server_close(loop_server *srv)
{
    if (!srv || srv->freed)
        return -EINVAL;
    close_fd(srv);
    maybe_closed(srv);
    return 0;
}

int loop_server_wait_closed(loop_server *srv, loop_server_closed_fn *fn, void *arg)
{
    if (!srv || srv->freed)
        return -EINVAL;
    if (!srv->loop)
        return -EBADF;
    if (!fn) {
        loop_cancel(srv->loop, srv->closed_soon);
        srv->closed_soon = (loop_handle){0};
        srv->closed_fn = NULL;
        return 0;
    }
    loop_server_closed_fn *old_fn = srv->closed_fn;
    void *old_arg = srv->closed_arg;
    srv->closed_fn = fn;
    srv->closed_arg = arg;
    if (srv->fd < 0 && srv->connections == 0 && !srv->closed_soon.id) {
        int err = loop_call_soon(srv->loop, closed_now, srv, &srv->closed_soon);
        if (err) {
            srv->closed_fn = old_fn;
            srv->closed_arg = old_arg;
            return err;
        }
    }
    return 0;
}

int loop_server_on_free(loop_server *srv, void (*release)(void *arg), void *arg)
{
    if (!srv || srv->freed)
        return -EINVAL;
    srv->release = release;
    srv->release_arg = arg;
    return 0;
}

void loop_server_free(loop_server *srv)
{
    if (!srv || srv->freed)
        return;
    close_fd(srv);
    if (srv->loop)
        loop_cancel(srv->loop, srv->closed_soon);
    srv->closed_soon = (loop_handle){0};
    srv->closed_fn = NULL;
    for (loop_stream *s = srv->st->streams; s; s = s->next)
        if (s->srv == srv)
            s->srv = NULL;
    srv->connections = 0;
    srv->freed = true;
    if (srv->depth == 0)
        free_server(srv);
}

/* loop_free(): the listener becomes a husk that only loop_server_free()
 * releases. */
void loop__server_release(loop_server *srv)
{
    close_fd(srv);
    loop_cancel(srv->loop, srv->closed_soon);
    srv->closed_soon = (loop_handle){0};
    srv->closed_fn = NULL;
    srv->loop = NULL;
}
