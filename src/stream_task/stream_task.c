/*
 * Streams in task form, on the public headers of the stream, task and
 * pool layers only (the pool resolves host names).  A task-form stream's
 * callbacks are this file's; their arg is a `tstream`, which holds the
 * futures that tasks await: one for a reader (asyncio allows one), one
 * per drainer, one for a connect.  The callbacks only complete those
 * futures; each waiting function then looks at the stream again (is the
 * delimiter there now? the queue drained? an error?), so a wake-up never
 * carries data and a spurious one costs a loop turn, never a wrong
 * answer.
 *
 * A tstream is referenced by its stream (dropped in on_close) and by each
 * task inside one of these functions, so a task whose stream is closed
 * under it by another task wakes up to -EBADF and touches only memory it
 * still holds.
 */
#include "loop_stream_task.h"

#include "loop_pool.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

typedef void *realloc_fn(void *ctx, void *ptr, size_t size);

struct tstream {
    loop_stream *s; /* NULL once the program closed it */
    realloc_fn *realloc;
    void *ctx;
    unsigned refs;
    loop_future *reader;
    loop_future *connect;
    loop_future **drainers;
    size_t ndrain, cap;
    loop_stream_handler_fn *handler; /* for start_server's tasks */
    void *arg;
};

struct tserver {
    realloc_fn *realloc;
    void *ctx;
    loop_stream_handler_fn *handler;
    void *arg;
};

static void *mem(struct tstream *t, void *ptr, size_t size)
{
    return t->realloc(t->ctx, ptr, size);
}

static struct tstream *tstream_new(loop_t *loop)
{
    realloc_fn *fn;
    void *ctx;
    if (loop_get_allocator(loop, &fn, &ctx))
        return NULL;
    struct tstream *t = fn(ctx, NULL, sizeof(*t));
    if (t)
        *t = (struct tstream){.realloc = fn, .ctx = ctx, .refs = 1};
    return t;
}

static void tstream_unref(struct tstream *t)
{
    if (--t->refs > 0)
        return;
    mem(t, t->drainers, 0);
    mem(t, t, 0);
}

/* ---- the stream's callbacks: wake whoever waits ------------------------ */

/* Complete f if it is pending.  If that cannot be queued (memory), f
 * stays pending and the next event of the stream tries again. */
static bool wake(loop_future *f, int err)
{
    if (!f || loop_future_done(f))
        return true;
    return (err ? loop_future_set_error(f, err) : loop_future_set_result(f, NULL)) == 0;
}

static void wake_drainers(struct tstream *t, int err)
{
    size_t kept = 0;
    for (size_t i = 0; i < t->ndrain; i++)
        if (!wake(t->drainers[i], err))
            t->drainers[kept++] = t->drainers[i];
    t->ndrain = kept;
}

static void on_data(loop_stream *s, void *arg)
{
    (void)s;
    struct tstream *t = arg;
    wake(t->reader, 0);
}

static void on_drain(loop_stream *s, void *arg)
{
    (void)s;
    wake_drainers(arg, 0);
}

static void on_connect(loop_stream *s, int err, void *arg)
{
    (void)s;
    struct tstream *t = arg;
    wake(t->connect, err);
}

static void on_error(loop_stream *s, int err, void *arg)
{
    (void)s;
    (void)err;
    struct tstream *t = arg;
    wake(t->reader, 0); /* the read call finds the error */
    wake_drainers(t, 0);
}

static void on_close(loop_stream *s, void *arg)
{
    struct tstream *t = arg;
    t->s = NULL;
    if (loop_stream_loop(s)) { /* a husk's loop is gone: wake nobody */
        wake(t->reader, -EBADF);
        wake(t->connect, -EBADF);
        wake_drainers(t, -EBADF);
    }
    tstream_unref(t);
}

static const loop_stream_callbacks task_callbacks = {
    .on_data = on_data,
    .on_drain = on_drain,
    .on_connect = on_connect,
    .on_error = on_error,
    .on_close = on_close,
};

/* ---- entering and waiting --------------------------------------------- */

/* The tstream of s, made a task-form stream if it was not; a reference
 * for the caller.  -EPERM outside a task of s's loop. */
static int enter(loop_stream *s, struct tstream **out)
{
    loop_stream_callbacks cb;
    void *arg;
    int err = loop_stream_get_callbacks(s, &cb, &arg);
    if (err)
        return err;
    loop_t *loop = loop_stream_loop(s);
    if (!loop_task_current(loop))
        return -EPERM;
    struct tstream *t = arg;
    if (cb.on_data != on_data) {
        if (!(t = tstream_new(loop)))
            return -ENOMEM;
        t->s = s;
        err = loop_stream_set_callbacks(s, &task_callbacks, t);
        if (err) {
            tstream_unref(t);
            return err;
        }
    }
    t->refs++;
    *out = t;
    return 0;
}

/* Await a new future held in *slot until a callback completes it. */
static int await_slot(struct tstream *t, loop_t *loop, loop_future **slot)
{
    loop_future *f;
    int err = loop_future_new(loop, &f);
    if (err)
        return err;
    *slot = f;
    err = loop_task_await(f, NULL);
    if (*slot == f)
        *slot = NULL;
    loop_future_unref(f);
    if (!err && !t->s)
        err = -EBADF;
    return err;
}

typedef int read_fn(loop_stream *s, const void *a, size_t n, const char **data, size_t *len);

/* Call read until it stops saying -EAGAIN, waiting for data in between. */
static int read_loop(loop_stream *s, read_fn *read, const void *a, size_t n, const char **data,
                     size_t *len)
{
    struct tstream *t;
    int err = enter(s, &t);
    if (err)
        return err;
    if (t->reader) {
        tstream_unref(t);
        return -EBUSY;
    }
    loop_t *loop = loop_stream_loop(s);
    while ((err = read(s, a, n, data, len)) == -EAGAIN)
        if ((err = await_slot(t, loop, &t->reader)) != 0)
            break;
    tstream_unref(t);
    return err;
}

static int read_some(loop_stream *s, const void *a, size_t n, const char **data, size_t *len)
{
    (void)a;
    return loop_stream_read(s, n, data, len);
}

static int read_until(loop_stream *s, const void *a, size_t n, const char **data, size_t *len)
{
    return loop_stream_read_until(s, a, n, data, len);
}

static int read_exactly(loop_stream *s, const void *a, size_t n, const char **data, size_t *len)
{
    (void)a;
    return loop_stream_read_exactly(s, n, data, len);
}

int loop_stream_task_read(loop_stream *s, size_t max, const char **data, size_t *len)
{
    if (!data || !len)
        return -EINVAL;
    return read_loop(s, read_some, NULL, max, data, len);
}

int loop_stream_task_read_until(loop_stream *s, const void *delim, size_t dlen, const char **data,
                                size_t *len)
{
    if (!delim || !dlen || !data || !len)
        return -EINVAL;
    return read_loop(s, read_until, delim, dlen, data, len);
}

int loop_stream_task_read_exactly(loop_stream *s, size_t n, const char **data, size_t *len)
{
    if (!n || !data || !len)
        return -EINVAL;
    return read_loop(s, read_exactly, NULL, n, data, len);
}

static int add_drainer(struct tstream *t, loop_t *loop, loop_future **f)
{
    if (t->ndrain == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 2;
        loop_future **p = mem(t, t->drainers, cap * sizeof(loop_future *));
        if (!p)
            return -ENOMEM;
        t->drainers = p;
        t->cap = cap;
    }
    int err = loop_future_new(loop, f);
    if (!err)
        t->drainers[t->ndrain++] = *f;
    return err;
}

static void remove_drainer(struct tstream *t, const loop_future *f)
{
    for (size_t i = 0; i < t->ndrain; i++) {
        if (t->drainers[i] == f) {
            t->drainers[i] = t->drainers[--t->ndrain];
            return;
        }
    }
}

int loop_stream_task_drain(loop_stream *s)
{
    struct tstream *t;
    int err = enter(s, &t);
    if (err)
        return err;
    loop_t *loop = loop_stream_loop(s);
    while (!(err = loop_stream_error(s)) && loop_stream_write_paused(s)) {
        loop_future *f;
        if ((err = add_drainer(t, loop, &f)) != 0)
            break;
        err = loop_task_await(f, NULL);
        remove_drainer(t, f);
        loop_future_unref(f);
        if (!err && !t->s)
            err = -EBADF;
        if (err)
            break;
    }
    tstream_unref(t);
    return err;
}

/* ---- names --------------------------------------------------------------- */

/*
 * host:port resolved through the loop's default pool, from a task (asyncio's
 * _ensure_resolved, for the names that need it: the callback form takes
 * numbers and "localhost" without a thread, and says -ENOSYS for the rest).
 * 0 with the list in *out (free it with loop_pool_freeaddrinfo()), or the
 * resolution's error, -ECANCELED, -ENOMEM, ...  The future is cancelled
 * only if the await could not wait: a task that is cancelled cancels it
 * itself, and one that loop_free() unwinds must not touch the pool, which
 * may be freed already.
 */
static int resolve(loop_t *loop, const char *host, uint16_t port, bool passive,
                   struct addrinfo **out)
{
    loop_pool *pool;
    int err = loop_pool_default(loop, &pool);
    if (err)
        return err;
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)};
    loop_future *f;
    if ((err = loop_pool_getaddrinfo(pool, host, service, &hints, &f)) != 0)
        return err;
    void *list = NULL;
    err = loop_task_await(f, &list);
    if (err && loop_future_result(f, &list) == 0) /* a cancel came after it was done */
        loop_pool_freeaddrinfo(loop, list);
    else if (err == -ENOMEM) /* the task could not wait: nobody will read it */
        loop_future_cancel(f);
    loop_future_unref(f);
    *out = err ? NULL : list;
    return err;
}

/* ---- clients ----------------------------------------------------------- */

/* Connect to one host (a number or "localhost"), path or address, and wait
 * until connected. */
static int connect_one(loop_t *loop, const char *host, const char *path, const struct addrinfo *ai,
                       uint16_t port, const loop_stream_options *opts, loop_stream **out)
{
    struct tstream *t = tstream_new(loop);
    if (!t)
        return -ENOMEM;
    loop_stream *s;
    int err = ai     ? loop_stream_connect_addr(loop, ai->ai_addr, ai->ai_addrlen, opts,
                                                &task_callbacks, t, &s)
              : path ? loop_stream_connect_unix(loop, path, opts, &task_callbacks, t, &s)
                     : loop_stream_connect(loop, host, port, opts, &task_callbacks, t, &s);
    if (err) {
        tstream_unref(t);
        return err;
    }
    t->s = s;
    t->refs++;
    err = await_slot(t, loop, &t->connect);
    if (err && t->s)
        loop_stream_close(t->s);
    tstream_unref(t);
    if (!err)
        *out = s;
    return err;
}

/* asyncio's create_connection without happy eyeballs: each address in
 * the resolver's order until one connects; else the last one's error. */
static int connect_by_name(loop_t *loop, const char *host, uint16_t port,
                           const loop_stream_options *opts, loop_stream **out)
{
    struct addrinfo *list;
    int err = resolve(loop, host, port, false, &list);
    if (err)
        return err;
    for (const struct addrinfo *ai = list; ai; ai = ai->ai_next) {
        err = connect_one(loop, NULL, NULL, ai, 0, opts, out);
        if (err == 0 || err == -ECANCELED)
            break;
    }
    loop_pool_freeaddrinfo(loop, list);
    return err;
}

static int open_connection(loop_t *loop, const char *host, const char *path, uint16_t port,
                           const loop_stream_options *opts, loop_stream **out)
{
    if (out)
        *out = NULL;
    if (!loop || !out)
        return -EINVAL;
    if (!loop_task_current(loop))
        return -EPERM;
    int err = connect_one(loop, host, path, NULL, port, opts, out);
    if (err == -ENOSYS && host) /* a name: the callback form leaves it to the pool */
        err = connect_by_name(loop, host, port, opts, out);
    return err;
}

int loop_stream_task_open_connection(loop_t *loop, const char *host, uint16_t port,
                                     const loop_stream_options *opts, loop_stream **out)
{
    return open_connection(loop, host ? host : "", NULL, port, opts, out);
}

int loop_stream_task_open_unix_connection(loop_t *loop, const char *path,
                                          const loop_stream_options *opts, loop_stream **out)
{
    if (!path) {
        if (out)
            *out = NULL;
        return -EINVAL;
    }
    return open_connection(loop, NULL, path, 0, opts, out);
}

/* ---- servers ----------------------------------------------------------- */

static int connection_task(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    struct tstream *t = arg;
    int err = t->s ? t->handler(t->s, t->arg) : -EBADF;
    if (t->s)
        loop_stream_close(t->s);
    tstream_unref(t);
    return err;
}

static void on_conn(loop_server *srv, loop_stream *s, void *arg)
{
    struct tserver *ts = arg;
    loop_t *loop = loop_server_loop(srv);
    struct tstream *t = tstream_new(loop);
    if (!t) {
        loop_stream_close(s);
        return;
    }
    t->s = s;
    t->handler = ts->handler;
    t->arg = ts->arg;
    if (loop_stream_set_callbacks(s, &task_callbacks, t) != 0) {
        tstream_unref(t);
        loop_stream_close(s);
        return;
    }
    t->refs++; /* the task's */
    if (loop_task_spawn(loop, connection_task, t, NULL) != 0) {
        tstream_unref(t);
        loop_stream_close(s); /* on_close drops the stream's */
    }
}

static void tserver_free(void *arg)
{
    struct tserver *ts = arg;
    ts->realloc(ts->ctx, ts, 0);
}

/* The first address of the name that a listener can be bound to (asyncio
 * binds one socket to each: see loop_stream_task_start_server()); else
 * the last one's error.  Waits for the pool: a task only. */
static int listen_by_name(loop_t *loop, const char *host, uint16_t port,
                          const loop_stream_options *opts, struct tserver *ts, loop_server **out)
{
    if (!loop_task_current(loop))
        return -EPERM;
    struct addrinfo *list;
    int err = resolve(loop, host, port, true, &list);
    if (err)
        return err;
    for (const struct addrinfo *ai = list; ai; ai = ai->ai_next)
        if (!(err = loop_server_listen_addr(loop, ai->ai_addr, ai->ai_addrlen, opts, on_conn, ts,
                                            out)))
            break;
    loop_pool_freeaddrinfo(loop, list);
    return err;
}

/* Where start_server() listens: an fd, a Unix path, or a host and port. */
struct where {
    bool by_fd;
    int fd;
    const char *path, *host;
    uint16_t port;
};

static int listen_at(loop_t *loop, const struct where *w, const loop_stream_options *opts,
                     struct tserver *ts, loop_server **out)
{
    if (w->by_fd)
        return loop_server_listen_fd(loop, w->fd, opts, on_conn, ts, out);
    if (w->path)
        return loop_server_listen_unix(loop, w->path, opts, on_conn, ts, out);
    int err = loop_server_listen(loop, w->host, w->port, opts, on_conn, ts, out);
    if (err == -ENOSYS) /* a name: the callback form leaves it to the pool */
        err = listen_by_name(loop, w->host, w->port, opts, ts, out);
    return err;
}

static int start_server(loop_t *loop, const struct where *w, const loop_stream_options *opts,
                        loop_stream_handler_fn *handler, void *arg, loop_server **out)
{
    realloc_fn *fn;
    void *ctx;
    if (out)
        *out = NULL;
    if (!loop || !handler || !out || loop_get_allocator(loop, &fn, &ctx))
        return -EINVAL;
    struct tserver *ts = fn(ctx, NULL, sizeof(*ts));
    if (!ts)
        return -ENOMEM;
    *ts = (struct tserver){.realloc = fn, .ctx = ctx, .handler = handler, .arg = arg};
    int err = listen_at(loop, w, opts, ts, out);
    if (err) {
        tserver_free(ts);
        return err;
    }
    loop_server_on_free(*out, tserver_free, ts);
    return 0;
}

int loop_stream_task_start_server(loop_t *loop, const char *host, uint16_t port,
                                  const loop_stream_options *opts, loop_stream_handler_fn *handler,
                                  void *arg, loop_server **out)
{
    return start_server(loop, &(struct where){.host = host, .port = port}, opts, handler, arg, out);
}

int loop_stream_task_start_unix_server(loop_t *loop, const char *path,
                                       const loop_stream_options *opts,
                                       loop_stream_handler_fn *handler, void *arg,
                                       loop_server **out)
{
    if (!path) {
        if (out)
            *out = NULL;
        return -EINVAL;
    }
    return start_server(loop, &(struct where){.path = path}, opts, handler, arg, out);
}

int loop_stream_task_start_server_fd(loop_t *loop, int fd, const loop_stream_options *opts,
                                     loop_stream_handler_fn *handler, void *arg, loop_server **out)
{
    return start_server(loop, &(struct where){.by_fd = true, .fd = fd}, opts, handler, arg, out);
}

/* The server is closed and so is its last connection.  The waiting task
 * holds f; if it is cancelled first, it removes this callback. */
static void server_closed(loop_server *srv, void *arg)
{
    (void)srv;
    wake(arg, 0);
}

int loop_stream_task_wait_closed(loop_server *srv)
{
    loop_t *loop = loop_server_loop(srv);
    if (!loop)
        return -EINVAL;
    if (!loop_task_current(loop))
        return -EPERM;
    loop_future *f;
    int err = loop_future_new(loop, &f);
    if (err)
        return err;
    err = loop_server_wait_closed(srv, server_closed, f);
    if (!err) {
        err = loop_task_await(f, NULL);
        if (err)
            loop_server_wait_closed(srv, NULL, NULL);
    }
    loop_future_unref(f);
    return err;
}
