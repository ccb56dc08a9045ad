/*
 * loop_glib.h: GLib and libloop in one thread, either one driving the other.
 *
 * A header-only adapter with two directions; use one of them per pair of
 * loop and context, never both (each would then run the other inside
 * itself).
 *
 * 1. libloop runs a GMainContext: loop_glib_attach().
 *
 *     GMainContext *ctx = g_main_context_new();
 *     loop_glib *lg;
 *     loop_glib_attach(loop, ctx, &lg);   // GLib's sources now run from loop_run()
 *     g_timeout_source_new(...), g_source_attach(source, ctx), ...
 *     loop_run(loop);
 *     loop_glib_detach(lg);
 *
 *    In every iteration of the loop, the adapter prepares the context and
 *    queries it before the poll (the loop's before_poll hook), watches the
 *    fds GLib asks for (loop_watch_fd()) and sleeps no longer than GLib's
 *    timeout (one loop timer); at the end of the iteration (the
 *    iteration_end hook), once the fd handlers have run, it gives GLib the
 *    events the loop saw, and checks and dispatches the context.  An idle
 *    program sleeps in the loop's epoll wait: nothing spins.
 *
 * 2. GLib runs a loop: loop_glib_source_new().
 *
 *     GSource *source;
 *     loop_glib_source_new(loop, &source);
 *     g_source_attach(source, ctx);
 *     g_source_unref(source);             // the context holds it now
 *     g_main_loop_run(main_loop);         // libloop's callbacks run from it
 *
 *    The source polls loop_fd(loop) with loop_timeout_ms(loop) as its
 *    timeout, and calls loop_run_once(loop, 0) when either fires: the
 *    embedding contract of loop.h.
 *
 * What a user must know:
 *
 *  - Ownership.  loop_glib_attach() takes a reference on the context and
 *    acquires it (g_main_context_acquire()) for the loop's thread until
 *    loop_glib_detach(): no other thread may iterate it meanwhile, and the
 *    attach fails with -EBUSY if another thread owns it.  The source of
 *    loop_glib_source_new() is an ordinary GSource: the caller holds one
 *    reference, attaches it, and removes it with g_source_destroy(); it
 *    never frees the loop.
 *  - Hooks.  Direction 1 takes the loop's before_poll and iteration_end
 *    hooks (loop_on_before_poll(), loop_on_iteration_end()): do not set
 *    them while a context is attached.  One context per loop.
 *  - Liveness.  A context always has a source: its own wake-up fd, which
 *    g_main_context_wakeup() and sources attached from other threads use.
 *    So with a context attached, loop_run() runs until loop_stop(), and a
 *    thread that attaches a source to the context wakes the loop at once.
 *  - Recursion.  In direction 1, GLib's callbacks run inside a libloop
 *    iteration: they may call any libloop function except loop_run() and
 *    loop_run_once() (-EBUSY), and may run the context recursively
 *    (g_main_context_iteration(), a nested GMainLoop), which then polls
 *    with GLib's own poll.  In direction 2, libloop's callbacks run inside
 *    a GLib dispatch: they may iterate the context recursively, and GLib
 *    does not dispatch the loop's source again meanwhile (it cannot
 *    recurse), so the loop is not re-entered.
 *  - Errors.  GLib reports nothing through this adapter: its sources' own
 *    callbacks see their conditions (G_IO_HUP, G_IO_ERR...).  GLib aborts
 *    when it runs out of memory; the adapter's own memory comes from the
 *    loop's allocator.  If the loop cannot watch one of GLib's fds (out of
 *    memory, or an fd epoll refuses, such as a regular file), the adapter
 *    polls GLib's fds itself, without waiting, at the end of each
 *    iteration, and lets the loop sleep at most 1 ms until it can watch
 *    them again: GLib's sources still run, at the cost of a wake-up per
 *    millisecond.
 *  - loop_free() detaches an attached context (loop_glib_detach()), and
 *    destroys a source made by loop_glib_source_new() (g_source_destroy();
 *    the caller's reference, if it kept one, stays valid).
 *
 * The functions return 0 or a negative errno code, as libloop's own do;
 * loop_strerror() gives its message.
 */
#ifndef LOOP_GLIB_H
#define LOOP_GLIB_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <glib.h>

#include "loop.h"

/* ---- 1. libloop runs a GMainContext --------------------------------------- */

/* One fd of GLib's, as the loop watches it. */
struct loop_glib_watch {
    int fd;
    unsigned mask;    /* LOOP_READABLE | LOOP_WRITABLE */
    unsigned revents; /* what the loop saw in this iteration */
    bool watched;     /* the loop watches it with mask */
};

typedef struct loop_glib {
    loop_t *loop;
    GMainContext *ctx;
    loop_handle timer; /* at GLib's timeout, or the end of time (repeating: never stale) */
    void *block;       /* fds, watches and spare in one allocation */
    GPollFD *fds;      /* what g_main_context_query() gave */
    struct loop_glib_watch *watches, *spare;
    int cap, nfds, nwatches;
    gint priority;
    bool prepared;    /* queried in this iteration: check it at its end */
    bool degraded;    /* an fd is not watched: poll GLib's fds at the end */
    bool dispatching; /* inside g_main_context_dispatch() */
    bool detaching;   /* loop_glib_detach() waits for the dispatch to end */
    bool released;    /* loop_free() is detaching it */
} loop_glib;

/* The key of the attachment: one context per loop. */
static const char loop_glib__key = 0;

#define LOOP_GLIB__FIRST_CAP 8

/* Room for n fds: a new block, the watches copied; false if out of memory. */
static inline bool loop_glib__grow(loop_glib *lg, int n)
{
    size_t each = sizeof(GPollFD) + 2 * sizeof(struct loop_glib_watch);
    char *block = loop_realloc(lg->loop, NULL, (size_t)n * each);

    if (block == NULL)
        return false;
    struct loop_glib_watch *watches = (void *)(block + (size_t)n * sizeof(GPollFD));
    if (lg->nwatches > 0)
        memcpy(watches, lg->watches, (size_t)lg->nwatches * sizeof(*watches));
    loop_realloc(lg->loop, lg->block, 0);
    lg->block = block;
    lg->fds = (GPollFD *)(void *)block;
    lg->watches = watches;
    lg->spare = watches + n;
    lg->cap = n;
    return true;
}

static inline struct loop_glib_watch *loop_glib__find(struct loop_glib_watch *w, int n, int fd)
{
    for (int i = 0; i < n; i++)
        if (w[i].fd == fd)
            return &w[i];
    return NULL;
}

static inline void loop_glib__io(loop_t *loop, int fd, unsigned events, void *arg)
{
    loop_glib *lg = arg;
    struct loop_glib_watch *w = loop_glib__find(lg->watches, lg->nwatches, fd);

    (void)loop;
    if (w != NULL)
        w->revents |= events;
}

/* Watch exactly the fds of lg->fds, each with the union of what GLib asks. */
static inline void loop_glib__sync(loop_glib *lg)
{
    struct loop_glib_watch *next = lg->spare;
    int n = 0;

    for (int i = 0; i < lg->nfds; i++) {
        const GPollFD *p = &lg->fds[i];
        unsigned mask = ((p->events & (G_IO_IN | G_IO_PRI)) ? LOOP_READABLE : 0) |
                        ((p->events & G_IO_OUT) ? LOOP_WRITABLE : 0);
        struct loop_glib_watch *w = loop_glib__find(next, n, p->fd);
        if (p->fd < 0 || mask == 0)
            continue;
        if (w == NULL) {
            w = &next[n++];
            *w = (struct loop_glib_watch){.fd = p->fd};
        }
        w->mask |= mask;
    }
    /* Let go of what GLib no longer asks for, then watch the rest. */
    for (int i = 0; i < lg->nwatches; i++)
        if (lg->watches[i].watched && loop_glib__find(next, n, lg->watches[i].fd) == NULL)
            loop_watch_fd(lg->loop, lg->watches[i].fd, 0, NULL, NULL);
    lg->degraded = false;
    for (int i = 0; i < n; i++) {
        struct loop_glib_watch *old = loop_glib__find(lg->watches, lg->nwatches, next[i].fd);
        if (old != NULL && old->watched && old->mask == next[i].mask)
            next[i].watched = true;
        else
            next[i].watched =
                loop_watch_fd(lg->loop, next[i].fd, next[i].mask, loop_glib__io, lg) == 0;
        lg->degraded = lg->degraded || !next[i].watched;
    }
    lg->spare = lg->watches;
    lg->watches = next;
    lg->nwatches = n;
}

/* Before the poll: prepare and query the context, watch its fds, set the timer. */
static inline void loop_glib__before_poll(loop_t *loop, void *arg)
{
    loop_glib *lg = arg;
    gint timeout = -1;
    gboolean ready = g_main_context_prepare(lg->ctx, &lg->priority);
    int n = g_main_context_query(lg->ctx, lg->priority, &timeout, lg->fds, lg->cap);

    if (n > lg->cap && loop_glib__grow(lg, n))
        n = g_main_context_query(lg->ctx, lg->priority, &timeout, lg->fds, lg->cap);
    bool cut = n > lg->cap; /* out of memory: GLib's last fds are not polled */
    lg->nfds = cut ? lg->cap : n;
    loop_glib__sync(lg);
    if (ready)
        timeout = 0;
    if ((lg->degraded || cut) && (timeout < 0 || timeout > 1))
        timeout = 1;
    /* A waiting timer moves without memory. */
    if (timeout < 0)
        loop_reschedule_at(loop, lg->timer, UINT64_MAX);
    else
        loop_reschedule(loop, lg->timer, LOOP_MS(timeout));
    lg->prepared = true;
}

static inline void loop_glib__tick(loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg; /* waking the loop was the point: the check comes at the end */
}

static inline void loop_glib__finish_detach(loop_glib *lg)
{
    loop_t *loop = lg->loop;

    for (int i = 0; i < lg->nwatches; i++)
        if (lg->watches[i].watched)
            loop_watch_fd(loop, lg->watches[i].fd, 0, NULL, NULL);
    loop_cancel(loop, lg->timer);
    loop_on_before_poll(loop, NULL, NULL);
    loop_on_iteration_end(loop, NULL, NULL);
    g_main_context_release(lg->ctx);
    g_main_context_unref(lg->ctx);
    if (!lg->released)
        loop_detach(loop, &loop_glib__key);
    loop_realloc(loop, lg->block, 0);
    loop_realloc(loop, lg, 0);
}

/* At the end of the iteration: GLib sees the events, checks, dispatches. */
static inline void loop_glib__iteration_end(loop_t *loop, void *arg)
{
    loop_glib *lg = arg;
    const gushort always = G_IO_ERR | G_IO_HUP | G_IO_NVAL;

    (void)loop;
    if (!lg->prepared)
        return;
    lg->prepared = false;
    for (int i = 0; i < lg->nfds; i++) {
        GPollFD *p = &lg->fds[i];
        struct loop_glib_watch *w = loop_glib__find(lg->watches, lg->nwatches, p->fd);
        unsigned ev = w != NULL ? w->revents : 0;
        gushort re = ((ev & LOOP_READABLE) ? G_IO_IN | G_IO_PRI : 0) |
                     ((ev & LOOP_WRITABLE) ? G_IO_OUT : 0) | ((ev & LOOP_ERROR) ? G_IO_ERR : 0) |
                     ((ev & LOOP_HUP) ? G_IO_HUP : 0);
        p->revents = re & (p->events | always);
    }
    for (int i = 0; i < lg->nwatches; i++)
        lg->watches[i].revents = 0;
    if (lg->degraded) /* an fd is not watched: ask the kernel about all, at once */
        poll((struct pollfd *)(void *)lg->fds, (nfds_t)lg->nfds, 0);
    lg->dispatching = true;
    if (g_main_context_check(lg->ctx, lg->priority, lg->fds, lg->nfds))
        g_main_context_dispatch(lg->ctx);
    lg->dispatching = false;
    if (lg->detaching)
        loop_glib__finish_detach(lg);
}

static inline void loop_glib__release(loop_t *loop, void *data)
{
    loop_glib *lg = data;

    (void)loop;
    lg->released = true;
    loop_glib__finish_detach(lg);
}

/*
 * Run ctx from loop: from now on, GLib's sources attached to ctx are
 * dispatched by loop's iterations (see direction 1 above), until
 * loop_glib_detach() or loop_free().  Stores the attachment in *out.
 * Returns 0; -EINVAL if an argument is NULL; -EBUSY if another thread owns
 * ctx; -EEXIST if a context is attached to loop already; -ENOMEM.  On
 * failure nothing changed and *out is NULL.
 */
static inline int loop_glib_attach(loop_t *loop, GMainContext *ctx, loop_glib **out)
{
    loop_glib *lg;
    int err;

    if (loop == NULL || ctx == NULL || out == NULL)
        return -EINVAL;
    *out = NULL;
    if (loop_attached(loop, &loop_glib__key) != NULL)
        return -EEXIST;
    if (!g_main_context_acquire(ctx))
        return -EBUSY;
    lg = loop_realloc(loop, NULL, sizeof(*lg));
    if (lg == NULL) {
        g_main_context_release(ctx);
        return -ENOMEM;
    }
    memset(lg, 0, sizeof(*lg));
    lg->loop = loop;
    lg->ctx = ctx;
    err = loop_glib__grow(lg, LOOP_GLIB__FIRST_CAP) ? 0 : -ENOMEM;
    if (!err) /* repeating, so that it never goes stale; its first run is never */
        err = loop_call_every(loop, UINT64_MAX, loop_glib__tick, lg, &lg->timer);
    if (!err) {
        err = loop_attach(loop, &loop_glib__key, lg, loop_glib__release);
        if (err)
            loop_cancel(loop, lg->timer);
    }
    if (err) {
        loop_realloc(loop, lg->block, 0);
        loop_realloc(loop, lg, 0);
        g_main_context_release(ctx);
        return err;
    }
    g_main_context_ref(ctx);
    loop_on_before_poll(loop, loop_glib__before_poll, lg);
    loop_on_iteration_end(loop, loop_glib__iteration_end, lg);
    *out = lg;
    return 0;
}

/*
 * Stop running the context from the loop: the loop stops watching GLib's
 * fds, the hooks are removed, the context is released and unreferenced.
 * From a GLib callback that the loop dispatches, this completes when the
 * dispatch returns.  Returns 0, or -EINVAL for NULL (or an attachment
 * already being detached).
 */
static inline int loop_glib_detach(loop_glib *lg)
{
    if (lg == NULL || lg->detaching)
        return -EINVAL;
    if (lg->dispatching)
        lg->detaching = true;
    else
        loop_glib__finish_detach(lg);
    return 0;
}

/* ---- 2. GLib runs a loop ---------------------------------------------------- */

typedef struct loop_glib_source {
    GSource source;
    loop_t *loop; /* NULL once loop_free() destroyed the source */
    gpointer tag; /* loop_fd(loop), as g_source_add_unix_fd() registered it */
} loop_glib_source;

static inline gboolean loop_glib__prepare(GSource *source, gint *timeout)
{
    loop_glib_source *s = (loop_glib_source *)source;

    *timeout = s->loop != NULL ? loop_timeout_ms(s->loop) : -1;
    return *timeout == 0;
}

static inline gboolean loop_glib__check(GSource *source)
{
    loop_glib_source *s = (loop_glib_source *)source;

    /* When loop_fd() is readable, GLib counts the source ready by itself
     * (an fd added with g_source_add_unix_fd()): only the timers are ours. */
    return s->loop != NULL && loop_timeout_ns(s->loop) == 0;
}

static inline gboolean loop_glib__dispatch(GSource *source, GSourceFunc callback, gpointer data)
{
    loop_glib_source *s = (loop_glib_source *)source;

    (void)callback;
    (void)data;
    if (s->loop != NULL)
        loop_run_once(s->loop, 0);
    return G_SOURCE_CONTINUE;
}

static inline void loop_glib__finalize(GSource *source)
{
    loop_glib_source *s = (loop_glib_source *)source;

    if (s->loop != NULL)
        loop_detach(s->loop, s);
}

static inline void loop_glib__source_release(loop_t *loop, void *data)
{
    loop_glib_source *s = data;

    (void)loop;
    s->loop = NULL;
    g_source_remove_unix_fd(&s->source, s->tag);
    g_source_destroy(&s->source);
}

static GSourceFuncs loop_glib__source_funcs = {
    loop_glib__prepare, loop_glib__check, loop_glib__dispatch, loop_glib__finalize, NULL, NULL,
};

/*
 * Make a GSource that runs loop (see direction 2 above) and store it in
 * *out, with one reference for the caller; attach it to a context with
 * g_source_attach().  Returns 0; -EINVAL if an argument is NULL; -ENOMEM
 * (then *out is NULL).
 */
static inline int loop_glib_source_new(loop_t *loop, GSource **out)
{
    loop_glib_source *s;
    int err;

    if (loop == NULL || out == NULL)
        return -EINVAL;
    *out = NULL;
    s = (loop_glib_source *)g_source_new(&loop_glib__source_funcs, sizeof(*s));
    s->loop = loop;
    s->tag = g_source_add_unix_fd(&s->source, loop_fd(loop), G_IO_IN);
    g_source_set_name(&s->source, "libloop");
    err = loop_attach(loop, s, s, loop_glib__source_release);
    if (err) {
        s->loop = NULL;
        g_source_unref(&s->source);
        return err;
    }
    *out = &s->source;
    return 0;
}

#endif /* LOOP_GLIB_H */
