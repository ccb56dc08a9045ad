/*
 * Streams: lifetime, the fd watch, the I/O dispatch, failing and closing.
 *
 * One handler per fd (loop_watch_fd()), with a mask that follows the
 * stream's state: readable while reading is neither paused nor over,
 * writable while connecting or while bytes are queued.  The loop batches
 * mask changes until its next poll, so pausing and resuming cost no
 * system call of their own.
 *
 * A callback of the program may close the stream it is called for; the
 * dispatch counts itself in s->depth, and a stream closed under it is
 * freed by the dispatch when it unwinds (loop__stream_gone() tells each
 * step to stop).
 */
#include "stream_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const int state_key;

static void release_state(loop_t *loop, void *data);

void *loop__stream_mem(struct loop__stream_state *st, void *ptr, size_t size)
{
    return st->realloc(st->ctx, ptr, size);
}

struct loop__stream_state *loop__stream_state(loop_t *loop)
{
    struct loop__stream_state *st = loop_attach_new(loop, &state_key, sizeof(*st), release_state);
    if (st && !st->realloc) {
        loop_get_allocator(loop, &st->realloc, &st->ctx);
        st->loop = loop;
        st->reserve_fd = -1;
    }
    return st;
}

/* Free the state once the loop is gone and nothing refers to it. */
void loop__stream_release(struct loop__stream_state *st)
{
    if (st->loop || st->live > 0)
        return;
    loop__stream_mem(st, st, 0);
}

int loop__stream_options(const loop_stream_options *o, size_t *limit, size_t *high, size_t *low)
{
    loop_stream_options none = {0};
    if (!o)
        o = &none;
    *limit = o->limit ? o->limit : LOOP_STREAM_LIMIT_DEFAULT;
    *high = o->high_water ? o->high_water : LOOP_STREAM_HIGH_WATER_DEFAULT;
    if (o->low_water)
        *low = o->low_water;
    else
        *low = *high < LOOP_STREAM_LOW_WATER_DEFAULT ? *high : LOOP_STREAM_LOW_WATER_DEFAULT;
    if (*low > *high || o->backlog < 0)
        return -EINVAL;
    return 0;
}

int loop__stream_new(loop_t *loop, int fd, unsigned flags, size_t limit, size_t high, size_t low,
                     loop_stream **out)
{
    struct loop__stream_state *st = loop__stream_state(loop);
    if (!st)
        return -ENOMEM;
    loop_stream *s = loop__stream_mem(st, NULL, sizeof(*s));
    if (!s)
        return -ENOMEM;
    memset(s, 0, sizeof(*s));
    s->st = st;
    s->loop = loop;
    s->fd = fd;
    s->flags = flags;
    s->limit = limit;
    s->high = high;
    s->low = low;
    s->next = st->streams;
    if (s->next)
        s->next->prev = s;
    st->streams = s;
    st->live++;
    *out = s;
    return 0;
}

static void unlink_stream(loop_stream *s)
{
    struct loop__stream_state *st = s->st;
    if (s->prev)
        s->prev->next = s->next;
    else
        st->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    st->live--;
}

/* Free the struct itself (and the state, if that was the last user). */
static void free_stream(loop_stream *s)
{
    struct loop__stream_state *st = s->st;
    unlink_stream(s);
    loop__stream_mem(st, s, 0);
    loop__stream_release(st);
}

/* ---- the fd watch ------------------------------------------------------ */

static unsigned wanted_mask(const loop_stream *s)
{
    if (s->fd < 0 || s->err)
        return 0;
    if (s->flags & S_CONNECTING)
        return LOOP_WRITABLE;
    unsigned m = 0;
    if (!(s->flags & (S_EOF | S_CLOSED)) && s->rlen < loop__stream_pause_at(s))
        m |= LOOP_READABLE;
    if (s->wlen > 0)
        m |= LOOP_WRITABLE;
    return m;
}

/* Make the watch follow the state.  Only a first registration can fail
 * (memory for the fd table, or the kernel); the caller decides. */
int loop__stream_update(loop_stream *s)
{
    unsigned m = wanted_mask(s);
    if (m == s->mask)
        return 0;
    int err = loop_watch_fd(s->loop, s->fd, m, m ? loop__stream_io : NULL, s);
    if (err)
        return err;
    s->mask = m;
    return 0;
}

/* ---- failing ----------------------------------------------------------- */

static void drop_queue(loop_stream *s)
{
    loop__stream_mem(s->st, s->wbuf, 0);
    s->wbuf = NULL;
    s->wcap = s->woff = s->wlen = 0;
    s->flags &= ~S_PAUSED;
}

static void deferred(loop_t *loop, void *arg);

/* Run `deferred` soon, unless it is scheduled already. */
static int schedule(loop_stream *s)
{
    if (s->soon.id)
        return 0;
    return loop_call_soon(s->loop, deferred, s, &s->soon);
}

/*
 * The connection failed: keep the first error, drop the queue, stop
 * watching, and tell the owner (on_connect while connecting, else
 * on_error), directly from a dispatch or soon from an API call.  A closed
 * stream that was still flushing is finished.
 */
void loop__stream_fail(loop_stream *s, int err, bool direct)
{
    if (s->err)
        return;
    s->err = err;
    drop_queue(s);
    loop_cancel(s->loop, s->conn_timer);
    s->conn_timer = (loop_handle){0};
    bool connecting = s->flags & S_CONNECTING;
    s->flags &= ~S_CONNECTING;
    (void)loop__stream_update(s); /* to 0: a removal does not fail */
    if (s->flags & S_CLOSED) {
        loop__stream_finish_close(s);
        return;
    }
    if (!direct) {
        s->flags |= connecting ? S_CONN_OWED : S_ERR_OWED;
        (void)schedule(s); /* if even that fails, the calls still return err */
    } else if (connecting && s->cb.on_connect) {
        s->cb.on_connect(s, err, s->arg);
    } else if (!connecting && s->cb.on_error) {
        s->cb.on_error(s, err, s->arg);
    }
}

/* What a stream owes its owner when the loop comes back to it: a connect
 * that ended inside the call that began it, an error found inside a
 * call, data for a late owner. */
static void deferred(loop_t *loop, void *arg)
{
    (void)loop;
    loop_stream *s = arg;
    s->soon = (loop_handle){0};
    s->depth++;
    if (s->flags & S_CONN_OWED) {
        s->flags &= ~S_CONN_OWED;
        if (s->cb.on_connect)
            s->cb.on_connect(s, s->err, s->arg);
    } else if (s->flags & S_ERR_OWED) {
        s->flags &= ~S_ERR_OWED;
        if (s->cb.on_error)
            s->cb.on_error(s, s->err, s->arg);
    }
    if (!loop__stream_gone(s) && !s->err && s->cb.on_data &&
        (s->rlen > 0 || ((s->flags & S_EOF) && !(s->flags & S_EOF_TOLD)))) {
        if (s->flags & S_EOF)
            s->flags |= S_EOF_TOLD;
        s->cb.on_data(s, s->arg);
    }
    loop__stream_leave(s);
}

/* Schedule `deferred` for a connect that ended at once (a Unix socket). */
int loop__stream_owe_connect(loop_stream *s)
{
    s->flags |= S_CONN_OWED;
    int err = schedule(s);
    if (err)
        s->flags &= ~S_CONN_OWED;
    return err;
}

/* A dispatch of s unwinds: free s if it was closed under it. */
void loop__stream_leave(loop_stream *s)
{
    if (--s->depth == 0 && (s->flags & S_CLOSED) && s->fd < 0)
        free_stream(s);
}

bool loop__stream_gone(const loop_stream *s)
{
    return (s->flags & S_CLOSED) != 0;
}

/* ---- the dispatch ------------------------------------------------------ */

void loop__stream_io(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    loop_stream *s = arg;
    s->depth++;
    if (s->flags & S_CONNECTING) {
        loop__stream_connected(s);
    } else {
        if ((events & (LOOP_WRITABLE | LOOP_ERROR | LOOP_HUP)) && s->wlen > 0)
            loop__stream_flush(s);
        if ((events & (LOOP_READABLE | LOOP_ERROR | LOOP_HUP)) && (s->mask & LOOP_READABLE) &&
            !loop__stream_gone(s) && !s->err)
            loop__stream_on_readable(s);
    }
    loop__stream_leave(s);
}

/* ---- closing ----------------------------------------------------------- */

/* The fd goes; the struct goes too unless a dispatch of it is unwinding. */
void loop__stream_finish_close(loop_stream *s)
{
    if (s->fd >= 0) {
        if (s->mask)
            loop_watch_fd(s->loop, s->fd, 0, NULL, NULL);
        s->mask = 0;
        close(s->fd);
        s->fd = -1;
    }
    loop_cancel(s->loop, s->watchdog);
    loop_cancel(s->loop, s->conn_timer);
    loop_cancel(s->loop, s->soon);
    s->watchdog = s->conn_timer = s->soon = (loop_handle){0};
    drop_queue(s);
    loop__stream_mem(s->st, s->rbuf, 0);
    s->rbuf = NULL;
    s->rlen = s->rcap = 0;
    if (s->srv) {
        loop_server *srv = s->srv;
        s->srv = NULL;
        loop__server_conn_gone(srv);
    }
    if (s->depth == 0)
        free_stream(s);
}

/* The program lets go: on_close is the last word to the owner. */
static void tell_close(loop_stream *s)
{
    void (*on_close)(loop_stream *, void *) = s->cb.on_close;
    memset(&s->cb, 0, sizeof s->cb);
    if (on_close)
        on_close(s, s->arg);
}

int loop_stream_close(loop_stream *s)
{
    if (!s)
        return -EINVAL;
    if (!s->loop) { /* a husk left by loop_free() */
        if (s->flags & S_CLOSED)
            return -EINVAL;
        s->flags |= S_CLOSED;
        tell_close(s);
        free_stream(s);
        return 0;
    }
    if (s->flags & S_CLOSED)
        return -EINVAL;
    s->flags |= S_CLOSED;
    tell_close(s);
    loop_cancel(s->loop, s->soon);
    s->soon = (loop_handle){0};
    if (s->wlen > 0 && !s->err && !(s->flags & S_CONNECTING) && loop__stream_update(s) == 0)
        return 0; /* the dispatch finishes it once the queue is sent */
    loop__stream_finish_close(s);
    return 0;
}

int loop_stream_abort(loop_stream *s)
{
    if (!s)
        return -EINVAL;
    if (s->loop && !(s->flags & S_CLOSED) && s->fd >= 0 && (s->flags & S_SOCKET)) {
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        (void)setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    if (s->loop)
        drop_queue(s);
    return loop_stream_close(s);
}

/* loop_free(): every stream becomes a husk (fd closed, buffers freed,
 * nothing scheduled); those the program closed already go for good. */
static void release_state(loop_t *loop, void *data)
{
    (void)loop;
    struct loop__stream_state *st = data;
    for (loop_server *srv = st->servers; srv; srv = srv->next)
        loop__server_release(srv); /* first: no wait_closed is scheduled now */
    for (loop_stream *s = st->streams, *next; s; s = next) {
        next = s->next;
        bool closed = s->flags & S_CLOSED;
        s->depth = 1; /* keep the struct */
        s->flags |= S_CLOSED;
        loop__stream_finish_close(s);
        s->depth = 0;
        s->loop = NULL;
        if (closed)
            free_stream(s);
        else
            s->flags &= ~S_CLOSED; /* a husk: its owner still closes it */
    }
    if (st->reserve_fd >= 0)
        close(st->reserve_fd);
    st->reserve_fd = -1;
    loop__stream_mem(st, st->scratch, 0);
    st->scratch = NULL;
    st->loop = NULL;
    loop__stream_release(st);
}

/* ---- callbacks and state ----------------------------------------------- */

int loop_stream_set_callbacks(loop_stream *s, const loop_stream_callbacks *cb, void *arg)
{
    if (!s || (s->flags & S_CLOSED))
        return -EINVAL;
    if (!s->loop)
        return -EBADF;
    bool owed = cb && cb->on_data && !s->err &&
                (s->rlen > 0 || ((s->flags & S_EOF) && !(s->flags & S_EOF_TOLD)));
    if (owed && !(s->flags & S_SCRATCH)) {
        int err = schedule(s);
        if (err)
            return err;
    }
    if (cb)
        s->cb = *cb;
    else
        memset(&s->cb, 0, sizeof s->cb);
    s->arg = arg;
    return 0;
}

int loop_stream_get_callbacks(const loop_stream *s, loop_stream_callbacks *cb, void **arg)
{
    if (!s || (s->flags & S_CLOSED))
        return -EINVAL;
    if (!s->loop)
        return -EBADF;
    if (cb)
        *cb = s->cb;
    if (arg)
        *arg = s->arg;
    return 0;
}

loop_t *loop_stream_loop(const loop_stream *s)
{
    return s ? s->loop : NULL;
}

int loop_stream_fd(const loop_stream *s)
{
    return s ? s->fd : -1;
}

bool loop_stream_eof(const loop_stream *s)
{
    return s && (s->flags & S_EOF);
}

int loop_stream_error(const loop_stream *s)
{
    return s ? s->err : -EINVAL;
}

bool loop_stream_write_paused(const loop_stream *s)
{
    return s && (s->flags & S_PAUSED) && !s->err;
}

static int addr_of(const loop_stream *s, struct sockaddr_storage *addr, socklen_t *len, bool peer)
{
    if (!s || !addr || !len || (s->flags & S_CLOSED))
        return -EINVAL;
    if (!s->loop || s->fd < 0)
        return -EBADF;
    if (!(s->flags & S_SOCKET))
        return -ENOTSOCK;
    *len = sizeof(*addr);
    int r = peer ? getpeername(s->fd, (struct sockaddr *)addr, len)
                 : getsockname(s->fd, (struct sockaddr *)addr, len);
    return r < 0 ? -errno : 0;
}

int loop_stream_peer_addr(const loop_stream *s, struct sockaddr_storage *addr, socklen_t *len)
{
    return addr_of(s, addr, len, true);
}

int loop_stream_local_addr(const loop_stream *s, struct sockaddr_storage *addr, socklen_t *len)
{
    return addr_of(s, addr, len, false);
}

int loop_stream_info(const loop_stream *s, loop_stream_info_t *out)
{
    if (!s || !out)
        return -EINVAL;
    *out = (loop_stream_info_t){
        .buffered = s->rlen,
        .queued = s->wlen,
        .memory = sizeof(*s) + s->rcap + s->wcap,
        .bytes_in = s->bytes_in,
        .bytes_out = s->bytes_out,
        .reads = s->reads,
        .writes = s->writes,
        .reading = (s->mask & LOOP_READABLE) != 0,
        .write_paused = loop_stream_write_paused(s),
    };
    return 0;
}

static void watchdog_fired(loop_t *loop, void *arg)
{
    (void)loop;
    loop_stream *s = arg;
    s->watchdog = (loop_handle){0};
    s->depth++;
    loop__stream_fail(s, -ETIMEDOUT, true);
    loop__stream_leave(s);
}

int loop_stream_set_timeout(loop_stream *s, uint64_t ns)
{
    if (!s || (s->flags & S_CLOSED))
        return -EINVAL;
    if (!s->loop)
        return -EBADF;
    if (ns == 0) {
        loop_cancel(s->loop, s->watchdog);
        s->watchdog = (loop_handle){0};
        return 0;
    }
    return loop_arm(s->loop, &s->watchdog, ns, watchdog_fired, s);
}
