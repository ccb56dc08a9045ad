/*
 * Futures.  Each loop with futures has a registry, attached to the loop
 * (loop_attach): the allocator, every live future, and every late batch
 * of done callbacks queued on the loop but not yet run.
 *
 * Completing a future queues its list of done callbacks with one
 * loop_call_soon(), and that entry runs them in order.  The list stays in
 * the future (no callback can join it once the future is done), so
 * completing allocates nothing: only the ring entry may fail (-ENOMEM),
 * and then nothing has changed.  While the entry is queued the future
 * stays alive (`queued`): its last unref then leaves the freeing to the
 * entry.  A callback added to a future that is done already gets a late
 * batch of its own, queued at once, as asyncio queues it; a late batch
 * holds a reference.
 *
 * If the loop is freed first, the registry's release drops what queued
 * entries hold and frees whatever is left: futures must not outlive their
 * loop (see loop_future.h).  The registry keeps the allocator itself
 * (loop_get_allocator), so memory is freed the way it came even while the
 * loop is being torn down.
 */
#include "future_internal.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

struct done_cb {
    loop_future_fn *fn;
    void *arg;
};

/* A callback added to a done future, queued on its own. */
struct batch {
    loop_future *f; /* referenced while queued */
    struct done_cb one;
    struct batch *prev, *next; /* in the registry while queued */
};

struct registry {
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void *ctx;
    loop_future *live;    /* every future of the loop */
    struct batch *queued; /* late batches */
    loop_future_report_fn *unretrieved;
    void *unretrieved_arg;
    loop_future *spare; /* freed futures kept for reuse, by next */
    uint32_t nspare;
    bool releasing; /* loop_free: nothing is kept */
};

/* How many freed futures a loop keeps, so that making one allocates
 * nothing in steady state. */
#define SPARE_FUTURES 64

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

struct loop_future {
    loop_t *loop;
    struct registry *reg;
    loop_future *prev, *next; /* in reg->live */
    uint32_t refs;
    enum loop_future_state state;
    int err;
    void *result;
    loop_future_cancel_fn *canceller;
    void *canceller_arg;
    struct done_cb *cbs; /* pending: to be queued; done: queued or run */
    uint32_t ncbs, cap;
    struct done_cb first; /* one callback needs no array */
    bool queued;          /* its callbacks are in the ring: keep it alive */
    bool retrieved;       /* loop_future_result() read its error */
    void *aux;            /* loop__future_aux */
};

static const int registry_key;

static void *mem(struct registry *r, void *ptr, size_t size)
{
    return r->realloc(r->ctx, ptr, size);
}

static void release_registry(loop_t *loop, void *data);

/* This loop's registry, made on first use; it keeps the loop's allocator. */
static struct registry *registry_of(loop_t *loop)
{
    struct registry *r = loop_attach_new(loop, &registry_key, sizeof(*r), release_registry);
    if (r && !r->realloc)
        loop_get_allocator(loop, &r->realloc, &r->ctx); /* cannot fail: no NULL here */
    return r;
}

/* ---- lifetime ------------------------------------------------------------ */

int loop_future_new(loop_t *loop, loop_future **out)
{
    if (out)
        *out = NULL;
    if (!loop || !out)
        return -EINVAL;
    struct registry *r = registry_of(loop);
    if (!r)
        return -ENOMEM;
    loop_future *f = r->spare;
    if (f) {
        SPARE_UNPOISON(f, sizeof(*f));
        r->spare = f->next;
        r->nspare--;
    } else if (!(f = mem(r, NULL, sizeof(*f)))) {
        return -ENOMEM;
    }
    *f = (loop_future){.loop = loop, .reg = r, .refs = 1, .next = r->live};
    if (r->live)
        r->live->prev = f;
    r->live = f;
    *out = f;
    return 0;
}

static void destroy(loop_future *f)
{
    struct registry *r = f->reg;
    if (f->state == LOOP_FUTURE_FAILED && !f->retrieved && r->unretrieved)
        r->unretrieved(f, f->err, r->unretrieved_arg);
    if (f->prev)
        f->prev->next = f->next;
    else
        r->live = f->next;
    if (f->next)
        f->next->prev = f->prev;
    if (f->cbs != &f->first)
        mem(r, f->cbs, 0);
    mem(r, f->aux, 0);
    if (r->nspare < SPARE_FUTURES && !r->releasing) {
        f->next = r->spare;
        r->spare = f;
        r->nspare++;
        SPARE_POISON(f, sizeof(*f));
        return;
    }
    mem(r, f, 0);
}

void *loop__future_aux(loop_future *f, size_t size)
{
    if (f->aux)
        return NULL;
    f->aux = mem(f->reg, NULL, size);
    if (f->aux)
        memset(f->aux, 0, size);
    return f->aux;
}

void loop_future_ref(loop_future *f)
{
    if (f)
        f->refs++;
}

void loop_future_unref(loop_future *f)
{
    if (f && --f->refs == 0 && !f->queued)
        destroy(f);
}

loop_t *loop_future_loop(const loop_future *f)
{
    return f ? f->loop : NULL;
}

/* ---- queued callbacks ------------------------------------------------------- */

/*
 * The completion's entry: the future's own list, in order.  The common
 * case, one callback on a future someone still holds, is run_done's alone
 * and ends in a tail call: `queued` is dropped first, so a callback that
 * drops the last reference frees the future itself, and nothing here
 * touches it afterwards.  Everything else goes through run_all, kept out
 * of line so that the common case saves no registers.
 */
static __attribute__((noinline)) void run_all(loop_future *f)
{
    const struct done_cb *cb = f->cbs;
    for (uint32_t i = 0, n = f->ncbs; i < n; i++)
        cb[i].fn(f, cb[i].arg); /* a callback may add late ones, never to this list */
    f->queued = false;
    if (f->refs == 0)
        destroy(f);
}

static void run_done(loop_t *loop, void *arg)
{
    (void)loop;
    loop_future *f = arg;
    if (f->ncbs != 1 || f->refs == 0) {
        run_all(f);
        return;
    }
    f->queued = false;
    f->cbs->fn(f, f->cbs->arg);
}

static void unlink_late(struct registry *r, struct batch *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        r->queued = b->next;
    if (b->next)
        b->next->prev = b->prev;
}

/* A late batch has run, or never will. */
static void finish_late(struct batch *b)
{
    loop_future *f = b->f;
    unlink_late(f->reg, b);
    mem(f->reg, b, 0);
    loop_future_unref(f);
}

static void run_late(loop_t *loop, void *arg)
{
    (void)loop;
    struct batch *b = arg;
    b->one.fn(b->f, b->one.arg);
    finish_late(b);
}

static int queue_late(loop_future *f, struct batch *b)
{
    int err = loop_call_soon(f->loop, run_late, b, NULL);
    if (err)
        return err;
    struct registry *r = f->reg;
    f->refs++;
    b->prev = NULL;
    b->next = r->queued;
    if (r->queued)
        r->queued->prev = b;
    r->queued = b;
    return 0;
}

/*
 * loop_free: queued entries will never run.  Drop what they hold, then
 * free every future still alive: none may outlive its loop.
 */
static void release_registry(loop_t *loop, void *data)
{
    (void)loop;
    struct registry *r = data;
    r->releasing = true;
    while (r->queued)
        finish_late(r->queued);
    while (r->live)
        destroy(r->live);
    while (r->spare) {
        loop_future *f = r->spare;
        SPARE_UNPOISON(f, sizeof(*f));
        r->spare = f->next;
        mem(r, f, 0);
    }
    mem(r, r, 0);
}

/* ---- completing ------------------------------------------------------------ */

static int complete(loop_future *f, enum loop_future_state state, int err, void *result)
{
    if (!f || f->state != LOOP_FUTURE_PENDING)
        return -EINVAL;
    f->state = state; /* a done future's canceller is never called: it may stay */
    f->err = err;
    f->result = result;
    if (!f->ncbs)
        return 0;
    f->queued = true;
    int qerr = loop_call_soon(f->loop, run_done, f, NULL);
    if (qerr) { /* still pending, callbacks still listed */
        f->state = LOOP_FUTURE_PENDING;
        f->err = 0;
        f->result = NULL;
        f->queued = false;
    }
    return qerr;
}

int loop_future_set_result(loop_future *f, void *result)
{
    return complete(f, LOOP_FUTURE_DONE, 0, result);
}

int loop_future_set_error(loop_future *f, int err)
{
    if (err >= 0)
        return -EINVAL;
    return complete(f, LOOP_FUTURE_FAILED, err, NULL);
}

int loop_future_cancel_now(loop_future *f)
{
    if (!f)
        return -EINVAL;
    if (f->state != LOOP_FUTURE_PENDING)
        return 0;
    int err = complete(f, LOOP_FUTURE_CANCELLED, -ECANCELED, NULL);
    return err ? err : 1;
}

int loop_future_cancel(loop_future *f)
{
    if (!f)
        return -EINVAL;
    if (f->state == LOOP_FUTURE_PENDING && f->canceller)
        return f->canceller(f, f->canceller_arg);
    return loop_future_cancel_now(f);
}

int loop_future_set_canceller(loop_future *f, loop_future_cancel_fn *cancel, void *arg)
{
    if (!f)
        return -EINVAL;
    f->canceller = cancel;
    f->canceller_arg = arg;
    return 0;
}

/* ---- reading ---------------------------------------------------------------- */

enum loop_future_state loop_future_state(const loop_future *f)
{
    return f ? f->state : LOOP_FUTURE_PENDING;
}

bool loop_future_done(const loop_future *f)
{
    return f && f->state != LOOP_FUTURE_PENDING;
}

int loop_future_result(const loop_future *f, void **result)
{
    if (!f)
        return -EINVAL;
    switch (f->state) {
    case LOOP_FUTURE_PENDING:
        return -EAGAIN;
    case LOOP_FUTURE_DONE:
        if (result)
            *result = f->result;
        return 0;
    case LOOP_FUTURE_FAILED:
        ((loop_future *)f)->retrieved = true; /* futures are never const objects */
        return f->err;
    default:
        return f->err;
    }
}

int loop_future_on_unretrieved(loop_t *loop, loop_future_report_fn *fn, void *arg)
{
    if (!loop)
        return -EINVAL;
    struct registry *r = registry_of(loop);
    if (!r)
        return -ENOMEM;
    r->unretrieved = fn;
    r->unretrieved_arg = arg;
    return 0;
}

/* ---- done callbacks ------------------------------------------------------------ */

int loop_future_add_done(loop_future *f, loop_future_fn *fn, void *arg)
{
    if (!f || !fn)
        return -EINVAL;
    struct registry *r = f->reg;
    if (f->state != LOOP_FUTURE_PENDING) {
        struct batch *b = mem(r, NULL, sizeof(*b));
        if (!b)
            return -ENOMEM;
        *b = (struct batch){.f = f, .one = {fn, arg}};
        int err = queue_late(f, b);
        if (err)
            mem(r, b, 0);
        return err;
    }
    if (f->cap == 0) {
        f->cbs = &f->first;
        f->cap = 1;
    } else if (f->ncbs == f->cap) {
        uint32_t cap = 2 * f->cap;
        bool inline_ = f->cbs == &f->first;
        struct done_cb *cbs = mem(r, inline_ ? NULL : f->cbs, cap * sizeof(*cbs));
        if (!cbs)
            return -ENOMEM;
        if (inline_)
            cbs[0] = f->first;
        f->cbs = cbs;
        f->cap = cap;
    }
    f->cbs[f->ncbs++] = (struct done_cb){fn, arg};
    return 0;
}

/* fn and arg are only compared; the header's types match add_done's. */
// cppcheck-suppress constParameter
int loop_future_remove_done(loop_future *f, loop_future_fn *fn, void *arg)
{
    if (!f || !fn)
        return -EINVAL;
    if (f->state != LOOP_FUTURE_PENDING)
        return 0; /* its callbacks are queued, or ran: they stay */
    uint32_t kept = 0;
    for (uint32_t i = 0; i < f->ncbs; i++)
        if (f->cbs[i].fn != fn || f->cbs[i].arg != arg)
            f->cbs[kept++] = f->cbs[i];
    int removed = (int)(f->ncbs - kept);
    f->ncbs = kept;
    return removed;
}

/* ---- run_until_complete --------------------------------------------------------- */

static void stop_when_done(loop_future *f, void *arg)
{
    (void)arg;
    loop_stop(f->loop);
}

int loop_run_until_complete(loop_t *loop, loop_future *f, void **result)
{
    if (!loop || !f || f->loop != loop)
        return -EINVAL;
    loop_future_ref(f); /* f may lose its other references while the loop runs */
    int err = loop_future_add_done(f, stop_when_done, NULL);
    if (!err)
        err = loop_run(loop);
    if (!loop_future_done(f)) {
        loop_future_remove_done(f, stop_when_done, NULL);
        if (!err)
            err = -EDEADLK;
    }
    if (!err)
        err = loop_future_result(f, result);
    loop_future_unref(f);
    return err;
}
