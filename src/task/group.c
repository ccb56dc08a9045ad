/*
 * Task groups: asyncio 3.11's TaskGroup, in the task that opens one.
 *
 * Each child's future has a done callback into the group, which counts the
 * children still running, keeps the first failure, and at the first one
 * aborts: cancels the children not done, in spawn order, and the parent
 * (the opening task), once.  The end waits on a future that the last
 * child's callback completes; a cancel of that wait while the group is
 * already aborting is the group's own and is not passed on.
 */
#include "task_internal.h"

#include <errno.h>

struct loop_task_group {
    loop_task *parent;
    loop_task **children; /* referenced, in spawn order */
    size_t n, cap;
    size_t running;        /* children whose callback has not run */
    int first_err;         /* of the first failed child */
    bool aborting;         /* a child failed, or the block ended in error */
    bool parent_cancelled; /* the group cancelled the parent */
    bool ending;           /* in loop_task_group_end() */
    loop_future *all_done; /* what the end waits on, or NULL */
};

static void *mem(loop_task_group *g, void *ptr, size_t size)
{
    return g->parent->realloc(g->parent->ctx, ptr, size);
}

int loop_task_group_new(loop_task_group **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    loop_task *t = loop__task_running();
    if (!t)
        return -EPERM;
    loop_task_group *g = t->realloc(t->ctx, NULL, sizeof(*g));
    if (!g)
        return -ENOMEM;
    *g = (loop_task_group){.parent = t};
    *out = g;
    return 0;
}

static void abort_children(loop_task_group *g)
{
    g->aborting = true;
    for (size_t i = 0; i < g->n; i++)
        loop_task_cancel(g->children[i]); /* 0 for those done */
}

static void child_done(loop_future *f, void *arg)
{
    loop_task_group *g = arg;
    if (--g->running == 0 && g->all_done)
        loop_future_set_result(g->all_done, NULL);
    if (loop_future_state(f) != LOOP_FUTURE_FAILED)
        return; /* a result, or a cancel: not an error */
    if (!g->first_err)
        g->first_err = loop_future_result(f, NULL);
    if (g->parent->state == LOOP__TASK_DONE)
        return;
    if (!g->aborting && !g->parent_cancelled) {
        abort_children(g);
        g->parent_cancelled = true;
        loop_task_cancel(g->parent);
    }
}

static int add_child(loop_task_group *g, loop_task *c)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 4;
        loop_task **a = mem(g, g->children, cap * sizeof(loop_task *));
        if (!a)
            return -ENOMEM;
        g->children = a;
        g->cap = cap;
    }
    int err = loop_future_add_done(loop_task_future(c), child_done, g);
    if (err)
        return err;
    g->children[g->n++] = c;
    g->running++;
    return 0;
}

int loop_task_group_spawn(loop_task_group *g, loop_task_fn *fn, void *arg, loop_task **out)
{
    if (out)
        *out = NULL;
    if (!g || !fn)
        return -EINVAL;
    if (g->aborting || g->ending)
        return -EBUSY;
    loop_task *c;
    int err = loop_task_spawn(g->parent->loop, fn, arg, &c);
    if (err)
        return err;
    err = add_child(g, c);
    if (err) { /* cancelled before its first step: its body never runs */
        loop_task_cancel(c);
        loop_task_unref(c);
        return err;
    }
    if (out) {
        loop_task_ref(c);
        *out = c;
    }
    return 0;
}

/* Wait for every child; returns whether a cancel of the parent came that
 * the group did not make. */
static bool wait_children(loop_task_group *g)
{
    bool cancelled = false;
    while (g->running) {
        int err = loop_future_new(g->parent->loop, &g->all_done);
        if (!err) {
            err = loop_task_await(g->all_done, NULL);
            loop_future_unref(g->all_done);
            g->all_done = NULL;
        } else {
            err = loop_task_sleep(0); /* no memory for a future: poll */
        }
        if (err == -ECANCELED && g->parent->reg->closing) {
            cancelled = true; /* the loop is being freed: so are the children */
            break;
        }
        if (err == -ECANCELED && !g->aborting) {
            cancelled = true; /* the parent is cancelled: so are the children */
            abort_children(g);
        }
    }
    return cancelled;
}

static void free_group(loop_task_group *g)
{
    for (size_t i = 0; i < g->n; i++) {
        loop_future_remove_done(loop_task_future(g->children[i]), child_done, g);
        loop_task_unref(g->children[i]);
    }
    mem(g, g->children, 0);
    mem(g, g, 0);
}

int loop_task_group_end(loop_task_group *g, int body_err)
{
    if (!g)
        return -EINVAL;
    if (loop__task_running() != g->parent || g->ending)
        return -EPERM;
    g->ending = true;
    if (body_err && !g->aborting)
        abort_children(g);
    /* A cancel of the parent while it waits here is passed on, unless a
     * child failed (then, as in asyncio 3.11, the children's error wins). */
    bool cancelled = wait_children(g);
    int first = g->first_err;
    free_group(g);
    if (first)
        return first;
    return cancelled ? -ECANCELED : body_err;
}
