/*
 * loop_cares.h: run c-ares on a libloop loop.
 *
 * A header-only adapter: loop_cares_new() makes a c-ares channel whose
 * sockets the loop watches (ARES_OPT_SOCK_STATE_CB), calls
 * ares_process_fd() when one is ready, and runs c-ares's timeouts on a
 * loop timer (ares_timeout()).  Queries are c-ares's own calls on the
 * channel; their callbacks run on the loop.
 *
 *     ares_library_init(ARES_LIB_INIT_ALL);
 *     loop_cares *lc;
 *     loop_cares_new(loop, NULL, 0, &lc);
 *     ares_channel ch = loop_cares_channel(lc);
 *     ares_set_servers_ports_csv(ch, "127.0.0.1:5353");
 *     ares_getaddrinfo(ch, "example.test", NULL, &hints, on_addrinfo, arg);
 *     loop_run(loop);              // returns when every query has ended
 *     loop_cares_free(lc);
 *
 * Written for c-ares 1.18 (Debian 12) and later.  What a user must know:
 *
 *  - Ownership.  The adapter owns the channel: free it with
 *    loop_cares_free(), never with ares_destroy().  Leave the channel's
 *    socket-state callback and its socket-create callback
 *    (ares_set_socket_callback()) alone: the adapter uses both.  Other
 *    options (servers, timeouts, tries, flags) are the caller's.
 *  - Sockets.  c-ares opens and closes its sockets itself.  The adapter
 *    starts watching a socket when c-ares creates it and stops when c-ares
 *    reports it closed (readable and writable both 0, which c-ares says
 *    before it closes it).  Without ARES_FLAG_STAYOPEN, c-ares closes its
 *    sockets once no query is pending, so loop_run() returns when every
 *    query has ended; with it, the open sockets keep loop_run() running
 *    until loop_cares_free().
 *  - Timeouts.  One loop timer per channel, while c-ares has a socket
 *    open: at c-ares's next deadline (ares_timeout()), and at least once
 *    per base timeout (ARES_OPT_TIMEOUTMS), so that a query sent on a
 *    socket already open is never timed late.  c-ares reads its own clock:
 *    use a loop on the real clock, as on a virtual one the timer would
 *    fire at once until real time caught up.
 *  - Errors reach the query's callback as c-ares's status, never a return
 *    value: ARES_ENOTFOUND for a name that does not exist (NXDOMAIN),
 *    ARES_ETIMEOUT when no server answered in time (after ARES_OPT_TRIES
 *    tries), ARES_ECONNREFUSED when the server's port is closed (a server
 *    that died), ARES_EDESTRUCTION when the channel is freed.  If the loop
 *    cannot watch a new socket (it is out of memory), the adapter refuses
 *    the socket and c-ares treats it as one it could not open: it tries
 *    the next server, and the query ends with ARES_ECONNREFUSED when none
 *    is left.
 *  - One thread, no re-entry.  The channel belongs to the loop's thread.
 *    Query callbacks may start new queries, but may not free the channel
 *    (c-ares cannot be destroyed from its own callback): run from the
 *    loop, or from loop_cares_free(), loop_cares_free() returns -EBUSY
 *    there; defer it with loop_call_soon().  (A callback that c-ares
 *    calls at once, from inside the query call that started it, is the
 *    caller's to keep from freeing the channel.)
 *  - loop_free() frees the channel as loop_cares_free() would: pending
 *    queries' callbacks run with ARES_EDESTRUCTION (and must not start
 *    new queries); do not call loop_cares_free() after it.
 *  - Call ares_library_init() once, before any thread starts, as c-ares
 *    asks.
 *
 * The functions return 0 or a negative errno code, as libloop's own do;
 * loop_strerror() gives its message.
 */
#ifndef LOOP_CARES_H
#define LOOP_CARES_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>

#include <ares.h>

#include "loop.h"

typedef struct loop_cares {
    loop_t *loop;
    ares_channel channel;
    uint64_t base_ns;  /* the channel's timeout for a first try */
    loop_handle timer; /* repeating, every base_ns, while a socket is open */
    int sockets;       /* c-ares's sockets open (and watched) */
    bool in_ares;      /* inside ares_process_fd() */
    bool released;     /* loop_free() is freeing the channel */
} loop_cares;

/* Move the timer to c-ares's next deadline, if sooner than a period away. */
static inline void loop_cares__rearm(loop_cares *lc)
{
    struct timeval max, tv, *next;
    uint64_t ns;

    if (lc->sockets == 0)
        return;
    max.tv_sec = (time_t)(lc->base_ns / 1000000000u);
    max.tv_usec = (suseconds_t)(lc->base_ns % 1000000000u / 1000u);
    next = ares_timeout(lc->channel, &max, &tv); /* &max or &tv, whichever is sooner */
    ns = (uint64_t)next->tv_sec * 1000000000u + (uint64_t)next->tv_usec * 1000u;
    /*
     * A waiting timer moves without memory.  Only a run already queued in
     * this iteration can make it fail: that run comes anyway, and arms
     * the timer again.
     */
    loop_reschedule(lc->loop, lc->timer, ns);
}

static inline void loop_cares__process(loop_cares *lc, ares_socket_t r, ares_socket_t w)
{
    lc->in_ares = true;
    ares_process_fd(lc->channel, r, w); /* also ends the queries that timed out */
    lc->in_ares = false;
    loop_cares__rearm(lc);
}

static inline void loop_cares__io(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    /* An error or a hang-up is for reading: c-ares finds the cause there. */
    loop_cares__process(arg,
                        (events & (LOOP_READABLE | LOOP_HUP | LOOP_ERROR)) ? fd : ARES_SOCKET_BAD,
                        (events & LOOP_WRITABLE) ? fd : ARES_SOCKET_BAD);
}

static inline void loop_cares__on_timer(loop_t *loop, void *arg)
{
    (void)loop;
    loop_cares__process(arg, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

/*
 * c-ares made a socket: watch it, and start the timer with the first one.
 * Everything that needs memory happens here, where a failure can still
 * be reported: c-ares closes a socket this callback refuses.
 */
static inline int loop_cares__created(ares_socket_t fd, int type, void *data)
{
    loop_cares *lc = data;
    int err;

    (void)type;
    err = loop_watch_fd(lc->loop, fd, LOOP_READABLE, loop_cares__io, lc);
    if (err)
        return -1;
    if (lc->sockets == 0) {
        err = loop_call_every(lc->loop, lc->base_ns, loop_cares__on_timer, lc, &lc->timer);
        if (err) {
            loop_watch_fd(lc->loop, fd, 0, NULL, NULL);
            return -1;
        }
    }
    lc->sockets++;
    return 0;
}

/* c-ares's interest in a socket changed; both 0: it is about to close it. */
static inline void loop_cares__state(void *data, ares_socket_t fd, int readable, int writable)
{
    loop_cares *lc = data;
    unsigned mask = (readable ? LOOP_READABLE : 0) | (writable ? LOOP_WRITABLE : 0);

    /* Only the mask changes here: fd is in the loop's table already. */
    loop_watch_fd(lc->loop, fd, mask, loop_cares__io, lc);
    if (mask == 0 && --lc->sockets == 0) {
        loop_cancel(lc->loop, lc->timer);
        lc->timer = (loop_handle){0};
    }
}

static inline void loop_cares__destroy(loop_cares *lc)
{
    loop_t *loop = lc->loop;

    lc->in_ares = true;        /* its callbacks cannot free it a second time */
    ares_destroy(lc->channel); /* callbacks: ARES_EDESTRUCTION; sockets: closed */
    loop_cancel(loop, lc->timer);
    if (!lc->released)
        loop_detach(loop, lc);
    loop_realloc(loop, lc, 0);
}

static inline void loop_cares__release(loop_t *loop, void *data)
{
    loop_cares *lc = data;

    (void)loop;
    lc->released = true;
    loop_cares__destroy(lc);
}

/* The channel's base timeout (the first try's), in ns; 0 if unknown. */
static inline uint64_t loop_cares__base_timeout(ares_channel channel)
{
    struct ares_options o;
    int mask;
    uint64_t ns = 0;

    if (ares_save_options(channel, &o, &mask) != ARES_SUCCESS)
        return 0;
    if ((mask & ARES_OPT_TIMEOUTMS) && o.timeout > 0)
        ns = LOOP_MS(o.timeout);
    else if ((mask & ARES_OPT_TIMEOUT) && o.timeout > 0)
        ns = LOOP_SEC(o.timeout);
    ares_destroy_options(&o);
    return ns;
}

/*
 * Make a channel with ares_init_options(options, optmask) (options may be
 * NULL with optmask 0: c-ares's defaults and /etc/resolv.conf), run by
 * loop, and store the adapter in *out.  Returns 0; -EINVAL if loop or out
 * is NULL, options is NULL with optmask not 0, or optmask has
 * ARES_OPT_SOCK_STATE_CB (the adapter's); -ENOMEM; -EIO if c-ares failed
 * otherwise (ares_library_init() was not called, resolv.conf is
 * unreadable, ...).  On failure *out is NULL.
 */
static inline int loop_cares_new(loop_t *loop, const struct ares_options *options, int optmask,
                                 loop_cares **out)
{
    struct ares_options o;
    loop_cares *lc;
    int status, err;

    if (loop == NULL || out == NULL || (options == NULL && optmask != 0) ||
        (optmask & ARES_OPT_SOCK_STATE_CB))
        return -EINVAL;
    *out = NULL;
    lc = loop_realloc(loop, NULL, sizeof(*lc));
    if (lc == NULL)
        return -ENOMEM;
    memset(lc, 0, sizeof(*lc));
    lc->loop = loop;
    if (options != NULL)
        o = *options;
    else
        memset(&o, 0, sizeof(o));
    o.sock_state_cb = loop_cares__state;
    o.sock_state_cb_data = lc;
    status = ares_init_options(&lc->channel, &o, optmask | ARES_OPT_SOCK_STATE_CB);
    if (status != ARES_SUCCESS) {
        loop_realloc(loop, lc, 0);
        return status == ARES_ENOMEM ? -ENOMEM : -EIO;
    }
    lc->base_ns = loop_cares__base_timeout(lc->channel);
    err = lc->base_ns == 0 ? -ENOMEM : loop_attach(loop, lc, lc, loop_cares__release);
    if (err) {
        ares_destroy(lc->channel);
        loop_realloc(loop, lc, 0);
        return err;
    }
    ares_set_socket_callback(lc->channel, loop_cares__created, lc);
    *out = lc;
    return 0;
}

/* The adapter's channel, for c-ares's calls; NULL for a NULL adapter. */
static inline ares_channel loop_cares_channel(const loop_cares *lc)
{
    return lc != NULL ? lc->channel : NULL;
}

/*
 * Free the channel: every pending query's callback runs with
 * ARES_EDESTRUCTION, c-ares closes its sockets and the loop stops watching
 * them.  Returns 0; -EINVAL for NULL; -EBUSY from inside a c-ares callback
 * (a query's), where nothing is freed.
 */
static inline int loop_cares_free(loop_cares *lc)
{
    if (lc == NULL)
        return -EINVAL;
    if (lc->in_ares)
        return -EBUSY;
    loop_cares__destroy(lc);
    return 0;
}

#endif /* LOOP_CARES_H */
