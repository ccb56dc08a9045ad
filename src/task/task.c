/*
 * Tasks: spawn, the step, finishing, cancelling, and unwinding at
 * loop_free().
 *
 * A step resumes the task's coroutine once, with what it delivers (the
 * outcome of an await, 0 after a sleep(0), or -ECANCELED), and returns
 * when the task suspends again or finishes.  Steps run from the ready
 * queue only: the first one and sleep(0)'s from loop_call_soon(), the
 * others from the done callback of the future the task awaited, which
 * is asyncio 3.11's Task.__step/__wakeup shape, so the hops match.
 *
 * Each loop's tasks hang off a registry attached to the loop.  It is
 * attached after the future layer's (a task's future is made first), so
 * loop_free() releases it first, while futures still exist: the release
 * unwinds the live tasks, then leaves each task still referenced by the
 * program as an orphan that only loop_task_unref() may touch.
 */
#include "task_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const int registry_key;

/* Freed tasks a registry keeps for reuse: spawning then allocates nothing
 * but the task's future. */
#define SPARE_TASKS 64

/* Spare objects kept for reuse stay poisoned for AddressSanitizer, so a
 * use after the last unref is still caught. */
#if defined(__SANITIZE_ADDRESS__)
#define SPARE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPARE_ASAN 1
#endif
#endif
#ifdef SPARE_ASAN
#include <sanitizer/asan_interface.h>
#define SPARE_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define SPARE_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define SPARE_POISON(p, n) ((void)(p), (void)(n))
#define SPARE_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* The running task; saved and restored around each resume, so a step that
 * runs another loop's tasks (nested loop_run) gets its own back. */
static _Thread_local loop_task *running;

loop_task *loop__task_running(void)
{
    loop_task *t = running;
    return t && loop_coro_current() == t->coro ? t : NULL;
}

static void *mem(loop_task *t, void *ptr, size_t size)
{
    return t->realloc(t->ctx, ptr, size);
}

/* ---- the registry ------------------------------------------------------ */

static void release_registry(loop_t *loop, void *data);

struct loop__task_registry *loop__task_registry(const loop_t *loop)
{
    return loop_attached(loop, &registry_key);
}

/* This loop's registry, made on first use; it keeps the loop's allocator. */
static struct loop__task_registry *registry_of(loop_t *loop)
{
    struct loop__task_registry *r =
        loop_attach_new(loop, &registry_key, sizeof(*r), release_registry);
    if (r && !r->realloc)
        loop_get_allocator(loop, &r->realloc, &r->ctx); /* cannot fail: no NULL here */
    return r;
}

static void unlink_task(struct loop__task_registry *r, loop_task *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        r->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        r->tail = t->prev;
    t->prev = t->next = NULL;
    t->reg = NULL;
}

/* ---- lifetime ---------------------------------------------------------- */

void loop_task_ref(loop_task *t)
{
    if (t)
        t->refs++;
}

void loop_task_unref(loop_task *t)
{
    if (!t || --t->refs > 0)
        return;
    struct loop__task_registry *r = t->reg;
    if (r)
        unlink_task(r, t);
    loop_future_unref(t->future); /* NULL once orphaned */
    mem(t, t->name, 0);
    if (r && r->nspare < SPARE_TASKS) {
        t->next = r->spare;
        r->spare = t;
        r->nspare++;
        SPARE_POISON(t, sizeof(*t));
        return;
    }
    mem(t, t, 0);
}

loop_future *loop_task_future(const loop_task *t)
{
    return t ? t->future : NULL;
}

loop_task *loop_task_current(const loop_t *loop)
{
    loop_task *t = loop__task_running();
    return t && loop && t->loop == loop ? t : NULL;
}

int loop_task_set_name(loop_task *t, const char *name)
{
    if (!t)
        return -EINVAL;
    char *copy = NULL;
    if (name) {
        size_t n = strlen(name) + 1;
        copy = mem(t, NULL, n);
        if (!copy)
            return -ENOMEM;
        memcpy(copy, name, n);
    }
    mem(t, t->name, 0);
    t->name = copy;
    return 0;
}

const char *loop_task_name(const loop_task *t)
{
    if (!t)
        return NULL;
    if (t->name)
        return t->name;
    if (!t->default_name[0]) /* made on demand: spawning formats nothing */
        snprintf((char *)t->default_name, sizeof t->default_name, "Task-%llu",
                 (unsigned long long)t->number);
    return t->default_name;
}

/* ---- finishing --------------------------------------------------------- */

static void settle(loop_task *t);

static void settle_later(loop_t *loop, void *arg)
{
    (void)loop;
    settle(arg);
}

/*
 * Complete the future with what fn returned.  Completing fails only when
 * the ready queue cannot grow: then try again from the queue (and, if even
 * that cannot be queued, the task stays unsettled: its future pending).
 */
static void settle(loop_task *t)
{
    int err = t->out_err;
    int rc;
    if (err == -ECANCELED || (err >= 0 && t->must_cancel))
        rc = loop_future_cancel_now(t->future);
    else if (err < 0)
        rc = loop_future_set_error(t->future, err);
    else
        rc = loop_future_set_result(t->future, t->out_result);
    if (rc < 0 && t->reg && !t->reg->closing && loop_call_soon(t->loop, settle_later, t, NULL) == 0)
        return; /* keeps the task's own reference until then */
    t->must_cancel = false;
    loop_task_unref(t); /* the task's own reference */
}

static void finish(loop_task *t)
{
    loop_coro_free(t->coro); /* its stack goes back at once */
    t->coro = NULL;
    t->state = LOOP__TASK_DONE;
    loop_future_set_canceller(t->future, NULL, NULL);
    settle(t);
}

/* ---- the step ---------------------------------------------------------- */

static void *entry(void *arg, void *first)
{
    (void)first;
    loop_task *t = arg;
    t->out_result = NULL;
    t->out_err = t->fn(t->loop, t->arg, &t->out_result);
    if (t->out_err > 0)
        t->out_err = 0;
    return NULL;
}

static void step(loop_task *t, int err, void *result)
{
    if (t->must_cancel) { /* the outcome is lost: the cancel wins */
        t->must_cancel = false;
        err = -ECANCELED;
        result = NULL;
    }
    if (t->state == LOOP__TASK_CREATED && err == -ECANCELED) {
        t->out_err = -ECANCELED; /* cancelled before it started: no body */
        finish(t);
        return;
    }
    t->in_err = err;
    t->in_result = result;
    t->state = LOOP__TASK_RUNNING;
    loop_task *outer = running;
    running = t;
    void *unused;
    int rc = loop_coro_resume(t->coro, NULL, &unused);
    running = outer;
    if (rc == 0)
        finish(t);
}

void loop__task_soon_step(loop_t *loop, void *arg)
{
    (void)loop;
    step(arg, 0, NULL);
}

void loop__task_wake(loop_future *f, void *arg)
{
    loop_task *t = arg;
    void *result = NULL;
    int err = loop_future_result(f, &result);
    t->waiting = NULL;
    loop_future_unref(f);
    step(t, err, result);
}

int loop__task_suspend(loop_task *t, void **result)
{
    t->state = LOOP__TASK_SUSPENDED;
    loop_coro_yield(NULL, NULL);
    /* Resumed by step(), which set in_err and in_result. */
    if (t->in_err == 0 && result)
        *result = t->in_result;
    return t->in_err;
}

/* ---- spawn ------------------------------------------------------------- */

static int cancel_through_task(loop_future *f, void *arg)
{
    (void)f;
    return loop_task_cancel(arg);
}

static void link_task(struct loop__task_registry *r, loop_task *t)
{
    t->reg = r;
    t->prev = r->tail;
    if (r->tail)
        r->tail->next = t;
    else
        r->head = t;
    r->tail = t;
}

int loop_task_spawn(loop_t *loop, loop_task_fn *fn, void *arg, loop_task **out)
{
    if (out)
        *out = NULL;
    if (!loop || !fn)
        return -EINVAL;
    /* While loop_free() unwinds the tasks, the registry is detached
     * already: a task being unwound is how to tell. */
    loop_task *self = loop__task_running();
    if (self && self->loop == loop && self->reg->closing)
        return -ECANCELED;
    loop_future *f;
    int err = loop_future_new(loop, &f); /* first: the future layer's registry outlives ours */
    if (err)
        return err;
    struct loop__task_registry *r = registry_of(loop);
    if (!r) {
        loop_future_unref(f);
        return -ENOMEM;
    }
    loop_task *t = r->spare;
    if (t) {
        SPARE_UNPOISON(t, sizeof(*t));
        r->spare = t->next;
        r->nspare--;
    } else {
        t = r->realloc(r->ctx, NULL, sizeof(*t));
    }
    if (!t) {
        loop_future_unref(f);
        return -ENOMEM;
    }
    *t = (loop_task){.loop = loop,
                     .realloc = r->realloc,
                     .ctx = r->ctx,
                     .refs = 1,
                     .fn = fn,
                     .arg = arg,
                     .future = f};
    err = loop_coro_new(&t->coro, entry, t, 0);
    if (!err)
        err = loop_call_soon(loop, loop__task_soon_step, t, NULL);
    if (err) {
        loop_coro_free(t->coro);
        loop_task_unref(t);
        return err;
    }
    loop_future_set_canceller(f, cancel_through_task, t);
    t->number = ++r->spawned;
    link_task(r, t);
    if (out) {
        t->refs++;
        *out = t;
    }
    return 0;
}

/* ---- cancel ------------------------------------------------------------ */

/*
 * A cycle of awaits (t waits for a task that waits, maybe through others,
 * for t) brings the cancel back to t: nothing in the cycle can complete,
 * so t leaves its wait and takes the cancel at a step of its own.
 */
static void leave_cycle(loop_task *t)
{
    if (loop_call_soon(t->loop, loop__task_soon_step, t, NULL))
        return; /* the cancel stays remembered */
    loop_future_remove_done(t->waiting, loop__task_wake, t);
    loop_future_unref(t->waiting);
    t->waiting = NULL;
}

int loop_task_cancel(loop_task *t)
{
    if (!t)
        return -EINVAL;
    if (t->state == LOOP__TASK_DONE)
        return 0;
    if (t->cancelling) { /* came back around a cycle of awaits */
        t->cycled = true;
        t->must_cancel = true;
        return 1;
    }
    if (t->waiting) {
        t->cancelling = true;
        t->cycled = false;
        int rc = loop_future_cancel(t->waiting);
        t->cancelling = false;
        if (t->cycled && t->waiting && !loop_future_done(t->waiting))
            leave_cycle(t);
        else if (rc == 1)
            return 1; /* its done callback delivers the cancel */
    }
    t->must_cancel = true;
    return 1;
}

/* ---- loop_free --------------------------------------------------------- */

static loop_task *first_live(const struct loop__task_registry *r)
{
    for (loop_task *t = r->head; t; t = t->next)
        if (t->state != LOOP__TASK_DONE)
            return t;
    return NULL;
}

/* Nothing more will run (a step it has queued never comes: the ring goes
 * with the loop): resume the task with -ECANCELED until it ends (every
 * await it makes now returns -ECANCELED without suspending). */
static void unwind(loop_task *t)
{
    if (t->waiting) {
        loop_future_remove_done(t->waiting, loop__task_wake, t);
        loop_future_unref(t->waiting);
        t->waiting = NULL;
    }
    t->must_cancel = false;
    step(t, -ECANCELED, NULL);
}

static void release_registry(loop_t *loop, void *data)
{
    (void)loop;
    struct loop__task_registry *r = data;
    r->closing = true;
    for (loop_task *t; (t = first_live(r));)
        unwind(t);
    while (r->head) { /* referenced by the program: orphans */
        loop_task *t = r->head;
        unlink_task(r, t);
        loop_future_unref(t->future);
        t->future = NULL;
        t->loop = NULL;
    }
    while (r->spare) {
        loop_task *t = r->spare;
        SPARE_UNPOISON(t, sizeof(*t));
        r->spare = t->next;
        r->realloc(r->ctx, t, 0);
    }
    r->realloc(r->ctx, r, 0);
}
