/*
 * loop_curl.h: run libcurl's multi-socket interface on a libloop loop.
 *
 * A header-only adapter: one loop_curl owns one CURLM multi handle, watches
 * the sockets libcurl asks it to watch (CURLMOPT_SOCKETFUNCTION), runs
 * libcurl's timer on the loop's clock (CURLMOPT_TIMERFUNCTION), calls
 * curl_multi_socket_action() when either fires, and hands each finished
 * transfer to the callback it was added with.
 *
 *     curl_global_init(CURL_GLOBAL_DEFAULT);
 *     loop_curl *lc;
 *     loop_curl_new(loop, &lc);
 *     CURL *easy = curl_easy_init();
 *     curl_easy_setopt(easy, CURLOPT_URL, "http://127.0.0.1:8080/");
 *     loop_curl_add(lc, easy, on_done, my_arg);  // on_done(lc, easy, result, my_arg)
 *     loop_run(loop);                             // returns when every transfer is done
 *     loop_curl_free(lc);
 *
 * What a user must know:
 *
 *  - Ownership.  The adapter owns the multi handle (loop_curl_multi() lends
 *    it, to set options such as CURLMOPT_MAX_TOTAL_CONNECTIONS; leave
 *    CURLMOPT_SOCKETFUNCTION, CURLMOPT_TIMERFUNCTION and their data alone).
 *    The caller owns every easy handle: the adapter adds it to the multi
 *    handle, removes it when the transfer ends, and never frees it.  It
 *    uses the easy handle's CURLOPT_PRIVATE while the transfer runs: keep
 *    your data in the callback's arg instead.
 *  - Exactly one completion.  Each transfer that loop_curl_add() accepted
 *    ends in exactly one call of its done callback, unless it is taken back
 *    with loop_curl_remove() first.  When done runs, the easy handle is no
 *    longer in the multi handle: done may free it, reuse it (add it again),
 *    add other transfers, or free the adapter.
 *  - Errors.  A transfer's errors reach done as its CURLcode, never a
 *    return value: CURLE_COULDNT_CONNECT for a refused connection,
 *    CURLE_RECV_ERROR, CURLE_PARTIAL_FILE or CURLE_GOT_NOTHING for a
 *    server that went away mid-transfer, CURLE_OPERATION_TIMEDOUT for
 *    CURLOPT_TIMEOUT_MS, and so on (curl_easy_strerror() says which).  If
 *    the loop cannot watch a socket or schedule libcurl's timer (it is out
 *    of memory), the transfers concerned end with CURLE_OUT_OF_MEMORY, at
 *    the loop's next iteration, and everything else goes on.  (libcurl's
 *    own allocations use its allocator, not the loop's.)
 *  - The timer.  libcurl asks for one timer per multi handle; a timeout of
 *    -1 means "delete the timer" (the adapter cancels it), 0 means "call
 *    curl_multi_socket_action(CURL_SOCKET_TIMEOUT) as soon as possible"
 *    (the adapter runs it at the loop's next iteration, never from inside
 *    libcurl's call).  libcurl reads its own clock: use a loop on the real
 *    clock, as on a virtual one the timer would fire at once, again and
 *    again, until real time caught up.
 *  - Liveness.  While a transfer is in progress, loop_run() does not
 *    return; once every transfer is done, the adapter holds nothing in the
 *    loop (connections libcurl keeps for reuse are not watched), so
 *    loop_run() returns when nothing else is scheduled.
 *  - One thread.  The adapter, its multi handle and its easy handles belong
 *    to the loop's thread.  Call curl_global_init() once, before any thread
 *    starts (curl_multi_init() would call it, but not thread-safely).
 *  - Re-entry.  libcurl forbids multi-handle calls from inside its own
 *    callbacks (CURLOPT_WRITEFUNCTION and the like): loop_curl_add(),
 *    loop_curl_remove() and loop_curl_free() return -EBUSY there.  From
 *    done, from any libloop callback, or outside the loop, they work.
 *  - loop_curl_free() ends every transfer still in progress: each one's
 *    done is called with CURLE_ABORTED_BY_CALLBACK.  Called from done, it
 *    finishes once the adapter's handler returns.
 *  - loop_free() frees the adapter as loop_curl_free() would (the done
 *    callbacks run, with CURLE_ABORTED_BY_CALLBACK); do not call
 *    loop_curl_free() after it, nor loop_free() from a done callback.
 *
 * The functions return 0 or a negative errno code, as libloop's own do;
 * loop_strerror() gives its message.
 */
#ifndef LOOP_CURL_H
#define LOOP_CURL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <curl/curl.h>

#include "loop.h"

typedef struct loop_curl loop_curl;

/* Called once when a transfer ends: see "Exactly one completion" above. */
typedef void loop_curl_done_fn(loop_curl *lc, CURL *easy, CURLcode result, void *arg);

/* One transfer in progress; the easy handle's CURLOPT_PRIVATE points here. */
struct loop_curl_xfer {
    loop_curl *lc;
    CURL *easy;
    loop_curl_done_fn *done;
    void *arg;
    /*
     * Ends the transfer when the adapter fails it (see loop_curl__fail()).
     * Scheduled at the end of time by loop_curl_add(), so that failing it
     * later moves a timer and needs no memory; it also keeps loop_run()
     * alive while the transfer lasts.
     */
    loop_handle surfacing;
    CURLcode failed; /* CURLE_OK, or why the adapter fails the transfer */
    struct loop_curl_xfer *prev, *next;
};

struct loop_curl {
    loop_t *loop;
    CURLM *multi;
    loop_handle timer;            /* libcurl's timer */
    struct loop_curl_xfer *xfers; /* the transfers in progress */
    int depth;                    /* the adapter's handlers on the stack */
    bool in_curl;                 /* inside a libcurl call */
    bool freeing;                 /* loop_curl_free() was called */
    bool released;                /* loop_free() is freeing the adapter */
};

static inline void *loop_curl__alloc(loop_t *loop, size_t size)
{
    void *p = loop_realloc(loop, NULL, size);
    if (p != NULL)
        memset(p, 0, size);
    return p;
}

static inline void loop_curl__unlink(loop_curl *lc, struct loop_curl_xfer *x)
{
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        lc->xfers = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
}

/* End transfer x: out of the multi handle, its record freed, done called. */
static inline void loop_curl__finish(loop_curl *lc, struct loop_curl_xfer *x, CURLcode result)
{
    CURL *easy = x->easy;
    loop_curl_done_fn *done = x->done;
    void *arg = x->arg;

    lc->in_curl = true;
    curl_multi_remove_handle(lc->multi, easy);
    lc->in_curl = false;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    loop_cancel(lc->loop, x->surfacing);
    loop_curl__unlink(lc, x);
    loop_realloc(lc->loop, x, 0);
    done(lc, easy, result, arg);
}

/* The multi handle, the timer and the adapter itself (no transfer is left). */
static inline void loop_curl__destroy(loop_curl *lc)
{
    loop_t *loop = lc->loop;

    lc->in_curl = true;
    curl_multi_cleanup(lc->multi); /* may still tell the socket function REMOVE */
    loop_cancel(loop, lc->timer);
    if (!lc->released)
        loop_detach(loop, lc);
    loop_realloc(loop, lc, 0);
}

static inline void loop_curl__enter(loop_curl *lc)
{
    lc->depth++;
}

/* Leave a handler; the last one out frees an adapter that is being freed. */
static inline void loop_curl__leave(loop_curl *lc)
{
    if (--lc->depth == 0 && lc->freeing)
        loop_curl__destroy(lc);
}

/* Hand every finished transfer to its done callback. */
static inline void loop_curl__reap(loop_curl *lc)
{
    CURLMsg *msg;
    int left;

    while (!lc->freeing && (msg = curl_multi_info_read(lc->multi, &left)) != NULL) {
        struct loop_curl_xfer *x = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x != NULL)
            loop_curl__finish(lc, x, msg->data.result);
    }
}

static inline void loop_curl__act(loop_curl *lc, curl_socket_t fd, int flags)
{
    int running;

    loop_curl__enter(lc);
    lc->in_curl = true;
    curl_multi_socket_action(lc->multi, fd, flags, &running);
    lc->in_curl = false;
    loop_curl__reap(lc);
    loop_curl__leave(lc);
}

static inline void loop_curl__io(loop_t *loop, int fd, unsigned events, void *arg)
{
    int flags = 0;

    (void)loop;
    /* A hang-up is for reading: libcurl finds the end of the stream there. */
    if (events & (LOOP_READABLE | LOOP_HUP))
        flags |= CURL_CSELECT_IN;
    if (events & LOOP_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    if (events & LOOP_ERROR)
        flags |= CURL_CSELECT_ERR;
    loop_curl__act(arg, fd, flags);
}

static inline void loop_curl__on_timer(loop_t *loop, void *arg)
{
    (void)loop;
    loop_curl__act(arg, CURL_SOCKET_TIMEOUT, 0);
}

/* End a transfer the adapter failed (see loop_curl__fail()). */
static inline void loop_curl__surface(loop_t *loop, void *arg)
{
    struct loop_curl_xfer *x = arg;
    loop_curl *lc = x->lc;

    (void)loop;
    x->surfacing = (loop_handle){0};
    loop_curl__enter(lc);
    loop_curl__finish(lc, x, x->failed);
    loop_curl__leave(lc);
}

/*
 * libcurl's callbacks return nothing useful on failure (a -1 kills the
 * whole multi handle), so a failure of the loop ends the transfer from a
 * callback of the adapter's own, at the next iteration: moving the
 * transfer's surfacing timer to now needs no memory.
 */
static inline void loop_curl__fail(loop_curl *lc, struct loop_curl_xfer *x, int err)
{
    if (x->failed == CURLE_OK)
        x->failed = err == -ENOMEM ? CURLE_OUT_OF_MEMORY : CURLE_RECV_ERROR;
    loop_reschedule_at(lc->loop, x->surfacing, 0);
}

static inline void loop_curl__fail_all(loop_curl *lc, int err)
{
    for (struct loop_curl_xfer *x = lc->xfers; x != NULL; x = x->next)
        loop_curl__fail(lc, x, err);
}

static inline int loop_curl__socket_cb(CURL *easy, curl_socket_t s, int what, void *userp,
                                       void *socketp)
{
    loop_curl *lc = userp;
    unsigned mask = 0;
    int err;

    (void)socketp;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        mask |= LOOP_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        mask |= LOOP_WRITABLE;
    err = loop_watch_fd(lc->loop, s, mask, loop_curl__io, lc);
    if (err) {
        struct loop_curl_xfer *x = NULL;
        if (easy != NULL)
            curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        if (x != NULL && x->lc == lc)
            loop_curl__fail(lc, x, err);
        else /* a socket of libcurl's own: no transfer to blame, so all */
            loop_curl__fail_all(lc, err);
    }
    return 0;
}

static inline int loop_curl__timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    loop_curl *lc = userp;
    int err;

    (void)multi;
    if (timeout_ms < 0) {
        loop_cancel(lc->loop, lc->timer);
        lc->timer = (loop_handle){0};
        return 0;
    }
    err = loop_arm(lc->loop, &lc->timer, LOOP_MS(timeout_ms), loop_curl__on_timer, lc);
    if (err)
        loop_curl__fail_all(lc, err);
    return 0;
}

/* loop_free(): end the transfers and free the adapter, as loop_curl_free(). */
static inline void loop_curl__release(loop_t *loop, void *data)
{
    loop_curl *lc = data;

    (void)loop;
    lc->released = true;
    if (!lc->freeing) {
        lc->freeing = true;
        while (lc->xfers != NULL)
            loop_curl__finish(lc, lc->xfers, CURLE_ABORTED_BY_CALLBACK);
        loop_curl__destroy(lc);
    }
}

/*
 * Make an adapter with a new multi handle on loop, and store it in *out.
 * Returns 0; -EINVAL if loop or out is NULL; -ENOMEM (then *out is NULL).
 */
static inline int loop_curl_new(loop_t *loop, loop_curl **out)
{
    loop_curl *lc;
    int err;

    if (loop == NULL || out == NULL)
        return -EINVAL;
    *out = NULL;
    lc = loop_curl__alloc(loop, sizeof(*lc));
    if (lc == NULL)
        return -ENOMEM;
    lc->loop = loop;
    lc->multi = curl_multi_init();
    if (lc->multi == NULL) {
        loop_realloc(loop, lc, 0);
        return -ENOMEM;
    }
    err = loop_attach(loop, lc, lc, loop_curl__release);
    if (err) {
        curl_multi_cleanup(lc->multi);
        loop_realloc(loop, lc, 0);
        return err;
    }
    curl_multi_setopt(lc->multi, CURLMOPT_SOCKETFUNCTION, loop_curl__socket_cb);
    curl_multi_setopt(lc->multi, CURLMOPT_SOCKETDATA, lc);
    curl_multi_setopt(lc->multi, CURLMOPT_TIMERFUNCTION, loop_curl__timer_cb);
    curl_multi_setopt(lc->multi, CURLMOPT_TIMERDATA, lc);
    *out = lc;
    return 0;
}

/* The adapter's multi handle, for its options; NULL for a NULL adapter. */
static inline CURLM *loop_curl_multi(const loop_curl *lc)
{
    return lc != NULL ? lc->multi : NULL;
}

/*
 * Start the transfer set up in easy: add it to the multi handle; when it
 * ends, done(lc, easy, result, arg) is called once.  Returns 0; -EINVAL if
 * lc, easy or done is NULL; -EEXIST if easy is already in a multi handle;
 * -EBUSY from inside one of libcurl's callbacks, or while the adapter is
 * being freed; -ENOMEM.  On failure nothing changed and done is never
 * called.
 */
static inline int loop_curl_add(loop_curl *lc, CURL *easy, loop_curl_done_fn *done, void *arg)
{
    struct loop_curl_xfer *x;
    CURLMcode mc;
    int err;

    if (lc == NULL || easy == NULL || done == NULL)
        return -EINVAL;
    if (lc->in_curl || lc->freeing)
        return -EBUSY;
    x = loop_curl__alloc(lc->loop, sizeof(*x));
    if (x == NULL)
        return -ENOMEM;
    err = loop_call_at(lc->loop, UINT64_MAX, loop_curl__surface, x, &x->surfacing);
    if (err) {
        loop_realloc(lc->loop, x, 0);
        return err;
    }
    x->lc = lc;
    x->easy = easy;
    x->done = done;
    x->arg = arg;
    x->next = lc->xfers;
    if (x->next != NULL)
        x->next->prev = x;
    lc->xfers = x;

    lc->in_curl = true;
    mc = curl_multi_add_handle(lc->multi, easy); /* it sets a timer: no socket yet */
    lc->in_curl = false;
    if (mc != CURLM_OK) {
        loop_cancel(lc->loop, x->surfacing);
        loop_curl__unlink(lc, x);
        loop_realloc(lc->loop, x, 0);
        return mc == CURLM_ADDED_ALREADY ? -EEXIST : mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
    }
    curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
    return 0;
}

/*
 * Take back a transfer in progress without calling its done callback: easy
 * leaves the multi handle (its connection may be closed) and is the
 * caller's again.  Returns 0; -EINVAL if lc or easy is NULL; -ENOENT if
 * easy is not a transfer of this adapter (it ended, or was never added);
 * -EBUSY from inside one of libcurl's callbacks.
 */
static inline int loop_curl_remove(loop_curl *lc, CURL *easy)
{
    struct loop_curl_xfer *x;

    if (lc == NULL || easy == NULL)
        return -EINVAL;
    if (lc->in_curl)
        return -EBUSY;
    for (x = lc->xfers; x != NULL && x->easy != easy; x = x->next)
        ;
    if (x == NULL)
        return -ENOENT;
    lc->in_curl = true;
    curl_multi_remove_handle(lc->multi, easy);
    lc->in_curl = false;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    loop_cancel(lc->loop, x->surfacing);
    loop_curl__unlink(lc, x);
    loop_realloc(lc->loop, x, 0);
    return 0;
}

/*
 * Free the adapter and its multi handle.  Every transfer still in progress
 * ends first: its done is called with CURLE_ABORTED_BY_CALLBACK (and may
 * free its easy handle; loop_curl_add() returns -EBUSY from there).  From
 * a done callback, the adapter is freed once its handler returns.  Returns
 * 0; -EINVAL for NULL; -EBUSY from inside one of libcurl's callbacks, or if
 * the adapter is already being freed.
 */
static inline int loop_curl_free(loop_curl *lc)
{
    if (lc == NULL)
        return -EINVAL;
    if (lc->in_curl || lc->freeing)
        return -EBUSY;
    lc->freeing = true;
    loop_curl__enter(lc);
    while (lc->xfers != NULL)
        loop_curl__finish(lc, lc->xfers, CURLE_ABORTED_BY_CALLBACK);
    loop_curl__leave(lc);
    return 0;
}

#endif /* LOOP_CURL_H */
