/*
 * loop_hiredis.h: run hiredis's asynchronous API on a libloop loop.
 *
 * A header-only adapter in the shape of hiredis's own (adapters/libev.h,
 * adapters/libuv.h, ...): include it, create a context with
 * redisAsyncConnect(), attach it to a loop, and the loop runs the
 * connection.
 *
 *     redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", 6379);
 *     if (ac == NULL || ac->err)
 *         ...report ac->errstr, redisAsyncFree(ac)...
 *     if (loop_hiredis_attach(loop, ac) < 0)
 *         ...redisAsyncFree(ac)...
 *     redisAsyncSetConnectCallback(ac, on_connect);
 *     redisAsyncSetDisconnectCallback(ac, on_disconnect);
 *     redisAsyncCommand(ac, on_reply, NULL, "INCR %s", key);
 *     loop_run(loop);
 *
 * What a user must know:
 *
 *  - One thread.  The context belongs to the thread that runs the loop.
 *    Issue commands, disconnect and free it only from that thread: from
 *    the loop's callbacks, or before loop_run().  Neither hiredis nor this
 *    adapter locks anything.
 *  - Attach first.  Call loop_hiredis_attach() right after
 *    redisAsyncConnect(), before setting the connect callback and before
 *    issuing any command.  hiredis asks its event library to watch the
 *    socket at those moments; a request made before the adapter is
 *    attached is lost, and the connection then waits for nothing.
 *  - No detach.  The adapter lets go of the socket and frees itself when
 *    hiredis tears the connection down: after redisAsyncFree(), after
 *    redisAsyncDisconnect() once the last reply has arrived, or after an
 *    error.  Do not call the hooks it installs in ac->ev yourself.  Until
 *    then the context keeps loop_run() running, as a watched fd does.  Free
 *    or disconnect every attached context before loop_free().
 *  - Errors.  Connection errors reach hiredis's callbacks, never a return
 *    value: a failed connect calls the connect callback with REDIS_ERR (and
 *    no disconnect callback follows); a connection lost later calls the
 *    disconnect callback with REDIS_ERR.  Either way ac->errstr says why,
 *    and the reply callbacks of commands still waiting are called with a
 *    NULL reply first.  If the loop cannot watch the socket (it is out of
 *    memory), the adapter fails the connection the same way, with an
 *    errstr that starts with "libloop: ".
 *  - SIGPIPE.  hiredis writes to its socket with write(2) or send(2)
 *    without MSG_NOSIGNAL, so a write to a connection the server has just
 *    closed raises SIGPIPE.  Ignore it (signal(SIGPIPE, SIG_IGN)) and the
 *    write fails with EPIPE, which hiredis reports as above.
 *  - Timeouts.  With hiredis 1.0 or later, the timeouts set with
 *    redisAsyncSetTimeout() or the connect options run on the loop's
 *    clock: one libloop timer per context, moved each time hiredis pushes
 *    the deadline back (and scheduled anew only after it fired).  hiredis
 *    0.14 has no timeouts.
 *
 * loop_hiredis_attach() returns 0 or a negative errno code, as libloop's
 * own functions do; loop_strerror() gives its message.
 */
#ifndef LOOP_HIREDIS_H
#define LOOP_HIREDIS_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "loop.h"

/* hiredis 1.0 added the timer hook (ac->ev.scheduleTimer). */
#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
#define LOOP_HIREDIS_TIMERS 1
#else
#define LOOP_HIREDIS_TIMERS 0
#endif

/* The adapter's state for one context: what ac->ev.data points to. */
struct loop_hiredis {
    loop_t *loop;
    redisAsyncContext *ac;
    int fd;
    unsigned mask;         /* LOOP_READABLE | LOOP_WRITABLE: what the loop watches */
    loop_handle timer;     /* hiredis's timeout, once it asked for one */
    loop_handle surfacing; /* reports a failure to hiredis: see loop_hiredis__fail() */
    bool busy;             /* inside hiredis, called from the loop */
    bool dead;             /* hiredis cleaned up while busy: free on the way out */
};

static inline void loop_hiredis__io(loop_t *loop, int fd, unsigned events, void *arg);

/*
 * Make the loop watch exactly `mask`, with one handler for both ways: the
 * loop then calls it once per iteration with every event, and a change of
 * the mask costs no system call until the loop next polls.  On failure the
 * loop watches what it watched before, and so does the mask.
 */
static inline int loop_hiredis__update(struct loop_hiredis *s, unsigned mask)
{
    if (mask == s->mask)
        return 0;
    int err = loop_watch_fd(s->loop, s->fd, mask, loop_hiredis__io, s);
    if (!err)
        s->mask = mask;
    return err;
}

/*
 * Leave hiredis.  If it cleaned up meanwhile (cleanup found us busy), the
 * state is ours to free, and the caller must not touch it any more.
 */
static inline bool loop_hiredis__leave(struct loop_hiredis *s)
{
    s->busy = false;
    if (!s->dead)
        return true;
    free(s);
    return false;
}

/* Report the context's error (see loop_hiredis__fail()). */
static inline void loop_hiredis__surface(loop_t *loop, void *arg)
{
    struct loop_hiredis *s = arg;

    s->surfacing = (loop_handle){0};
    s->busy = true;
    /* The context's error is set, so hiredis's read fails and disconnects. */
    redisAsyncHandleRead(s->ac);
    /* Unless a connect is still in progress: hiredis waits for it to end
     * before it reads, so ask again shortly. */
    if (loop_hiredis__leave(s))
        loop_call_later(loop, LOOP_MS(10), loop_hiredis__surface, s, &s->surfacing);
}

/*
 * The hooks return nothing, so a failure of the loop (out of memory) is
 * given to hiredis as the context's error, and reported from a callback of
 * its own: hiredis may be in the middle of a command here.  That callback
 * was scheduled by loop_hiredis_attach(), at the end of time; moving it to
 * now needs no memory, so even an out-of-memory failure gets reported.
 */
static inline void loop_hiredis__fail(struct loop_hiredis *s, int err)
{
    redisContext *c = &s->ac->c;

    if (!c->err) {
        c->err = REDIS_ERR_OTHER;
        snprintf(c->errstr, sizeof(c->errstr), "libloop: %s", loop_strerror(err));
    }
    loop_reschedule_at(s->loop, s->surfacing, 0);
}

static inline void loop_hiredis__set(void *privdata, unsigned mask)
{
    struct loop_hiredis *s = privdata;
    int err = loop_hiredis__update(s, mask);

    if (err)
        loop_hiredis__fail(s, err);
}

static inline void loop_hiredis__add_read(void *privdata)
{
    struct loop_hiredis *s = privdata;
    loop_hiredis__set(s, s->mask | LOOP_READABLE);
}

static inline void loop_hiredis__del_read(void *privdata)
{
    struct loop_hiredis *s = privdata;
    loop_hiredis__set(s, s->mask & ~LOOP_READABLE);
}

static inline void loop_hiredis__add_write(void *privdata)
{
    struct loop_hiredis *s = privdata;
    loop_hiredis__set(s, s->mask | LOOP_WRITABLE);
}

static inline void loop_hiredis__del_write(void *privdata)
{
    struct loop_hiredis *s = privdata;
    loop_hiredis__set(s, s->mask & ~LOOP_WRITABLE);
}

/*
 * One handler for both directions, dispatching on the event bits (the loop
 * calls it once per iteration with all of them).  A hang-up or an error
 * goes to the read handler: hiredis finds the cause there (a refused
 * connect, a closed connection) and reports it.
 */
static inline void loop_hiredis__io(loop_t *loop, int fd, unsigned events, void *arg)
{
    struct loop_hiredis *s = arg;

    (void)loop;
    (void)fd;
    s->busy = true;
    if ((events & (LOOP_HUP | LOOP_ERROR)) || ((events & s->mask) & LOOP_READABLE))
        redisAsyncHandleRead(s->ac);
    /* The read may have ended the connection, or hiredis may have dropped
     * its interest in writing meanwhile. */
    if (!s->dead && ((events & s->mask) & LOOP_WRITABLE))
        redisAsyncHandleWrite(s->ac);
    loop_hiredis__leave(s);
}

#if LOOP_HIREDIS_TIMERS
static inline void loop_hiredis__timeout(loop_t *loop, void *arg)
{
    struct loop_hiredis *s = arg;

    (void)loop;
    s->busy = true;
    redisAsyncHandleTimeout(s->ac);
    loop_hiredis__leave(s);
}

/*
 * hiredis calls this each time it pushes its deadline back (at every read
 * or write it asks for): move the timer, keeping its handle, and only when
 * it already fired (the handle is stale) schedule a new one.
 */
static inline void loop_hiredis__schedule_timer(void *privdata, struct timeval tv)
{
    struct loop_hiredis *s = privdata;
    uint64_t ns = 0;
    int err;

    if (tv.tv_sec > 0)
        ns = (uint64_t)tv.tv_sec * 1000000000u;
    if (tv.tv_usec > 0)
        ns += (uint64_t)tv.tv_usec * 1000u;
    err = loop_reschedule(s->loop, s->timer, ns);
    if (err == -ENOENT)
        err = loop_call_later(s->loop, ns, loop_hiredis__timeout, s, &s->timer);
    if (err)
        loop_hiredis__fail(s, err);
}
#endif

/*
 * hiredis is tearing the connection down; it closes the socket after this
 * returns.  Stop watching it, drop the timers, and unhook from the context
 * so that nothing can reach the freed state through it.
 */
static inline void loop_hiredis__cleanup(void *privdata)
{
    struct loop_hiredis *s = privdata;

    if (s == NULL)
        return;
    loop_hiredis__update(s, 0);
    loop_cancel(s->loop, s->timer);
    loop_cancel(s->loop, s->surfacing);
    s->ac->ev.data = NULL;
    s->ac->ev.addRead = NULL;
    s->ac->ev.delRead = NULL;
    s->ac->ev.addWrite = NULL;
    s->ac->ev.delWrite = NULL;
    s->ac->ev.cleanup = NULL;
#if LOOP_HIREDIS_TIMERS
    s->ac->ev.scheduleTimer = NULL;
#endif
    if (s->busy)
        s->dead = true;
    else
        free(s);
}

/*
 * Attach a context made by redisAsyncConnect() (or its variants) to loop.
 * Nothing is watched yet: hiredis asks for that when a command or the
 * connect callback is set.  Returns 0; -EINVAL if loop or ac is NULL;
 * -EBADF if the context has no socket (its connect failed at once: see
 * ac->errstr); -EEXIST if it is already attached to an event library
 * (ac->ev.data is set); -ENOMEM.  On failure nothing changed.
 */
static inline int loop_hiredis_attach(loop_t *loop, redisAsyncContext *ac)
{
    struct loop_hiredis *s;
    int err;

    if (loop == NULL || ac == NULL)
        return -EINVAL;
    if (ac->c.fd < 0)
        return -EBADF;
    if (ac->ev.data != NULL)
        return -EEXIST;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    err = loop_call_at(loop, UINT64_MAX, loop_hiredis__surface, s, &s->surfacing);
    if (err) {
        free(s);
        return err;
    }
    s->loop = loop;
    s->ac = ac;
    s->fd = ac->c.fd;

    ac->ev.addRead = loop_hiredis__add_read;
    ac->ev.delRead = loop_hiredis__del_read;
    ac->ev.addWrite = loop_hiredis__add_write;
    ac->ev.delWrite = loop_hiredis__del_write;
    ac->ev.cleanup = loop_hiredis__cleanup;
#if LOOP_HIREDIS_TIMERS
    ac->ev.scheduleTimer = loop_hiredis__schedule_timer;
#endif
    ac->ev.data = s;
    return 0;
}

#endif /* LOOP_HIREDIS_H */
