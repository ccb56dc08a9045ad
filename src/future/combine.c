/*
 * Combinators: gather, wait, as_completed and wait_for, as asyncio 3.11
 * shapes them, on the public API of futures.  Each keeps its state on the
 * future it completes (loop__future_aux), and holds a reference to that
 * future until its children are done with it, so the state lives exactly
 * as long as something can still reach it.
 */
#include "future_internal.h"

#include <errno.h>
#include <stdint.h>

static bool valid_set(const loop_t *loop, loop_future *const *fs, size_t n)
{
    if (n && !fs)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!fs[i] || loop_future_loop(fs[i]) != loop)
            return false;
    return true;
}

/* Add fn(f, arg) as a done callback of every future of the set, or of none. */
static int listen_all(loop_future *const *fs, size_t n, loop_future_fn *fn, void *arg)
{
    int err = 0;
    size_t i = 0;
    for (; !err && i < n; i++)
        err = loop_future_add_done(fs[i], fn, arg);
    if (err)
        while (i-- > 0)
            loop_future_remove_done(fs[i], fn, arg);
    return err;
}

/* Keep the set (a reference to each) in children. */
static void keep_all(loop_future **children, loop_future *const *fs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        children[i] = fs[i];
        loop_future_ref(fs[i]);
    }
}

/* The outcome of a child as an error: 0, its error, or -ECANCELED. */
static int child_error(const loop_future *f)
{
    int err = loop_future_result(f, NULL);
    return err == -EAGAIN ? 0 : err;
}

/* ---- gather ----------------------------------------------------------------- */

struct gather {
    loop_future *outer;
    size_t n, finished;
    bool cancel_requested;
    loop_future *children[]; /* each referenced until all are done */
};

static void gather_release(struct gather *g)
{
    for (size_t i = 0; i < g->n; i++)
        loop_future_unref(g->children[i]);
    loop_future_unref(g->outer); /* may free g with it: last */
}

static void gather_child_done(loop_future *child, void *arg)
{
    struct gather *g = arg;
    g->finished++;
    if (!loop_future_done(g->outer)) {
        int err = child_error(child);
        if (err)
            loop_future_set_error(g->outer, err);
        else if (g->finished == g->n && g->cancel_requested)
            loop_future_set_error(g->outer, -ECANCELED);
        else if (g->finished == g->n)
            loop_future_set_result(g->outer, NULL);
    }
    if (g->finished == g->n)
        gather_release(g);
}

/* Cancelling the gather cancels every child in order (asyncio). */
static int gather_cancel(loop_future *outer, void *arg)
{
    (void)outer;
    struct gather *g = arg;
    int any = 0;
    for (size_t i = 0; i < g->n; i++)
        if (loop_future_cancel(g->children[i]) > 0)
            any = 1;
    if (any)
        g->cancel_requested = true;
    return any;
}

int loop_gather(loop_t *loop, loop_future *const *fs, size_t n, loop_future **out)
{
    if (out)
        *out = NULL;
    if (!loop || !out || !valid_set(loop, fs, n))
        return -EINVAL;
    loop_future *outer;
    int err = loop_future_new(loop, &outer);
    if (err)
        return err;
    if (n == 0) {
        err = loop_future_set_result(outer, NULL);
        goto done;
    }
    struct gather *g = loop__future_aux(outer, sizeof(*g) + n * sizeof(loop_future *));
    err = g ? listen_all(fs, n, gather_child_done, g) : -ENOMEM;
    if (err)
        goto done;
    g->outer = outer;
    g->n = n;
    keep_all(g->children, fs, n);
    loop_future_ref(outer);
    loop_future_set_canceller(outer, gather_cancel, g);
done:
    if (err) {
        loop_future_unref(outer);
        return err;
    }
    *out = outer;
    return 0;
}

/* ---- wait ------------------------------------------------------------------- */

struct wait {
    loop_t *loop;
    loop_future *outer;
    enum loop_wait_until until;
    size_t n, finished, pending_callbacks;
    loop_handle timer;
    loop_future *children[];
};

static void wait_release_one(struct wait *w)
{
    if (--w->pending_callbacks == 0) {
        for (size_t i = 0; i < w->n; i++)
            loop_future_unref(w->children[i]);
        loop_future_unref(w->outer);
    }
}

static void wait_child_done(loop_future *child, void *arg);

/* Done waiting: stop listening (the caller still holds its own count,
 * so the counts dropped here never reach zero), and complete. */
static void wait_finish(struct wait *w)
{
    if (loop_cancel(w->loop, w->timer) == 0)
        w->pending_callbacks--;
    for (size_t i = 0; i < w->n; i++)
        if (!loop_future_done(w->children[i]))
            w->pending_callbacks -=
                (size_t)loop_future_remove_done(w->children[i], wait_child_done, w);
    if (!loop_future_done(w->outer))
        loop_future_set_result(w->outer, (void *)(uintptr_t)w->finished);
}

static void wait_child_done(loop_future *child, void *arg)
{
    struct wait *w = arg;
    w->finished++;
    if (w->until == LOOP_FIRST_COMPLETED || w->finished == w->n ||
        (w->until == LOOP_FIRST_EXCEPTION && child_error(child)))
        wait_finish(w);
    wait_release_one(w);
}

static void wait_timeout(loop_t *loop, void *arg)
{
    (void)loop;
    struct wait *w = arg;
    w->timer = (loop_handle){0};
    wait_finish(w);
    wait_release_one(w);
}

/* A wait cancelled before it is done keeps listening: its children's
 * callbacks, or the timer, find it done and only let go of it. */
int loop_wait(loop_t *loop, loop_future *const *fs, size_t n, enum loop_wait_until until,
              int64_t timeout_ns, loop_future **out)
{
    if (out)
        *out = NULL;
    if (!loop || !out || n == 0 || !valid_set(loop, fs, n) ||
        (until != LOOP_FIRST_COMPLETED && until != LOOP_FIRST_EXCEPTION &&
         until != LOOP_ALL_COMPLETED))
        return -EINVAL;
    loop_future *outer;
    int err = loop_future_new(loop, &outer);
    if (err)
        return err;
    struct wait *w = loop__future_aux(outer, sizeof(*w) + n * sizeof(loop_future *));
    err = w ? 0 : -ENOMEM;
    if (!err && timeout_ns >= 0)
        err = loop_call_later(loop, (uint64_t)timeout_ns, wait_timeout, w, &w->timer);
    if (!err)
        err = listen_all(fs, n, wait_child_done, w);
    if (err) {
        if (w)
            loop_cancel(loop, w->timer);
        loop_future_unref(outer);
        return err;
    }
    *w = (struct wait){.loop = loop, .outer = outer, .until = until, .n = n, .timer = w->timer};
    w->pending_callbacks = n + (timeout_ns >= 0);
    keep_all(w->children, fs, n);
    loop_future_ref(outer);
    *out = outer;
    return 0;
}

/* ---- as_completed ----------------------------------------------------------- */

struct loop_as_completed {
    loop_t *loop;
    loop_future *holder; /* owns this memory (aux); referenced by us and each child */
    size_t n, done, handed, pending_callbacks;
    loop_handle timer;
    bool timed_out, freed;
    loop_future **order;   /* children in the order they finished */
    loop_future **waiters; /* futures handed out, by index */
    loop_future *children[];
};

static void ac_settle(loop_as_completed *ac)
{
    for (size_t i = 0; i < ac->handed; i++) {
        loop_future *w = ac->waiters[i];
        if (loop_future_done(w))
            continue;
        if (i < ac->done)
            loop_future_set_result(w, ac->order[i]);
        else if (ac->timed_out)
            loop_future_set_error(w, -ETIMEDOUT);
    }
}

static void ac_release_one(loop_as_completed *ac)
{
    if (--ac->pending_callbacks == 0)
        loop_future_unref(ac->holder);
}

static void ac_child_done(loop_future *child, void *arg)
{
    loop_as_completed *ac = arg;
    ac->order[ac->done++] = child;
    if (ac->done == ac->n && loop_cancel(ac->loop, ac->timer) == 0)
        ac->pending_callbacks--; /* never to zero: this callback holds one */
    ac_settle(ac);
    ac_release_one(ac);
}

static void ac_timeout(loop_t *loop, void *arg)
{
    (void)loop;
    loop_as_completed *ac = arg;
    ac->timed_out = true;
    ac_settle(ac);
    ac_release_one(ac);
}

int loop_as_completed_new(loop_t *loop, loop_future *const *fs, size_t n, int64_t timeout_ns,
                          loop_as_completed **out)
{
    if (out)
        *out = NULL;
    if (!loop || !out || !valid_set(loop, fs, n))
        return -EINVAL;
    loop_future *holder;
    int err = loop_future_new(loop, &holder);
    if (err)
        return err;
    size_t size = sizeof(loop_as_completed) + 3 * n * sizeof(loop_future *);
    loop_as_completed *ac = loop__future_aux(holder, size);
    err = ac ? 0 : -ENOMEM;
    if (!err && timeout_ns >= 0 && n)
        err = loop_call_later(loop, (uint64_t)timeout_ns, ac_timeout, ac, &ac->timer);
    if (!err)
        err = listen_all(fs, n, ac_child_done, ac);
    if (err) {
        if (ac)
            loop_cancel(loop, ac->timer);
        loop_future_unref(holder);
        return err;
    }
    ac->loop = loop;
    ac->holder = holder;
    ac->n = n;
    ac->order = ac->children + n;
    ac->waiters = ac->order + n;
    ac->pending_callbacks = n + (timeout_ns >= 0 && n) + 1; /* + 1: the caller's */
    keep_all(ac->children, fs, n);
    *out = ac;
    return 0;
}

int loop_as_completed_next(loop_as_completed *ac, loop_future **next)
{
    if (next)
        *next = NULL;
    if (!ac || !next || ac->freed)
        return -EINVAL;
    if (ac->handed == ac->n)
        return -ENOENT;
    loop_future *w;
    int err = loop_future_new(ac->loop, &w);
    if (err)
        return err;
    ac->waiters[ac->handed++] = w;
    ac_settle(ac);
    loop_future_ref(w); /* one for the set, released by loop_as_completed_free */
    *next = w;
    return 0;
}

void loop_as_completed_free(loop_as_completed *ac)
{
    if (!ac || ac->freed)
        return;
    ac->freed = true;
    for (size_t i = 0; i < ac->handed; i++)
        loop_future_unref(ac->waiters[i]);
    ac->handed = 0; /* the waiters are the caller's now; settle no more */
    for (size_t i = 0; i < ac->n; i++) {
        if (!loop_future_done(ac->children[i]))
            ac->pending_callbacks -=
                (size_t)loop_future_remove_done(ac->children[i], ac_child_done, ac);
        loop_future_unref(ac->children[i]);
    }
    if (loop_cancel(ac->loop, ac->timer) == 0)
        ac->pending_callbacks--;
    ac_release_one(ac); /* the caller's: the last one, unless a callback is queued */
}

/* ---- wait_for --------------------------------------------------------------- */

struct wait_for {
    loop_t *loop;
    loop_future *outer, *inner;
    loop_handle timer;
    bool timed_out, cancelled;
};

static void wait_for_inner_done(loop_future *inner, void *arg)
{
    struct wait_for *wf = arg;
    loop_cancel(wf->loop, wf->timer);
    if (!loop_future_done(wf->outer)) {
        void *result = NULL;
        int err = loop_future_result(inner, &result);
        if (wf->cancelled) /* a cancel of the waiter is never swallowed */
            loop_future_cancel_now(wf->outer);
        else if (wf->timed_out && loop_future_state(inner) == LOOP_FUTURE_CANCELLED)
            loop_future_set_error(wf->outer, -ETIMEDOUT);
        else if (err)
            loop_future_set_error(wf->outer, err);
        else
            loop_future_set_result(wf->outer, result);
    }
    loop_future_unref(wf->inner);
    loop_future_unref(wf->outer);
}

static void wait_for_timeout(loop_t *loop, void *arg)
{
    (void)loop;
    struct wait_for *wf = arg;
    wf->timer = (loop_handle){0};
    wf->timed_out = true;
    loop_future_cancel(wf->inner); /* then wait for it to finish */
}

static int wait_for_cancel(loop_future *outer, void *arg)
{
    (void)outer;
    struct wait_for *wf = arg;
    if (wf->cancelled)
        return 1;
    wf->cancelled = true;
    loop_cancel(wf->loop, wf->timer);
    loop_future_cancel(wf->inner);
    return 1;
}

int loop_wait_for(loop_t *loop, loop_future *inner, uint64_t timeout_ns, loop_future **out)
{
    if (out)
        *out = NULL;
    if (!loop || !out || !inner || loop_future_loop(inner) != loop)
        return -EINVAL;
    loop_future *outer;
    int err = loop_future_new(loop, &outer);
    if (err)
        return err;
    struct wait_for *wf = loop__future_aux(outer, sizeof(*wf));
    err = wf ? 0 : -ENOMEM;
    if (!err && !loop_future_done(inner))
        err = loop_call_later(loop, timeout_ns, wait_for_timeout, wf, &wf->timer);
    if (!err)
        err = loop_future_add_done(inner, wait_for_inner_done, wf);
    if (err) {
        if (wf)
            loop_cancel(loop, wf->timer);
        loop_future_unref(outer);
        return err;
    }
    wf->loop = loop;
    wf->outer = outer;
    wf->inner = inner;
    loop_future_ref(inner);
    loop_future_ref(outer);
    loop_future_set_canceller(outer, wait_for_cancel, wf);
    *out = outer;
    return 0;
}
