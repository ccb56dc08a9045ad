/*
 * The loop thread's side: submitting, cancelling, shutting down, and
 * completing futures when threads are done.
 *
 * Completing a future can fail (-ENOMEM: its done callbacks could not be
 * queued) and then nothing changed, so finished jobs wait on the `ready`
 * list, in the order they finished, and a failure leaves the rest there:
 * the pool writes its own eventfd and tries again at the next iteration.
 * Jobs that never ran (cancelled by a shutdown) go through the same list,
 * to cancel their futures.
 */
#include "pool_internal.h"

#include <errno.h>
#include <unistd.h>

/* ---- records and the outstanding list ----------------------------------- */

/* A record: a spare one, or a new chunk's. */
static struct job *take_record(struct loop_pool *pool)
{
    if (!pool->spare) {
        struct job_chunk *c = loop__pool_mem(pool, NULL, sizeof(*c));
        if (!c)
            return NULL;
        c->next = pool->chunks;
        pool->chunks = c;
        for (int i = POOL_CHUNK - 1; i >= 0; i--) {
            c->jobs[i].listed = false;
            loop__pool_recycle(pool, &c->jobs[i]);
        }
    }
    struct job *j = pool->spare;
    pool->spare = j->lnext;
    return j;
}

void loop__pool_recycle(struct loop_pool *pool, struct job *j)
{
    j->lnext = pool->spare;
    pool->spare = j;
}

static void list_job(struct loop_pool *pool, struct job *j)
{
    j->listed = true;
    pool->outstanding++;
}

/* The job is no longer outstanding (idempotent). */
void loop__pool_forget(struct loop_pool *pool, struct job *j)
{
    if (j->listed) {
        j->listed = false;
        pool->outstanding--;
    }
}

/* Let go of j's future: done, or given up on. */
void loop__pool_release_future(struct job *j)
{
    if (j->future) {
        loop_future_set_canceller(j->future, NULL, NULL);
        loop_future_unref(j->future);
        j->future = NULL;
    }
}

/* ---- watching the eventfd --------------------------------------------------- */

static int watch(struct loop_pool *pool)
{
    if (pool->watching)
        return 0;
    pool->idle_hops = 0;
    int err = loop_watch_fd(pool->loop, pool->efd, LOOP_READABLE, loop__pool_on_done, pool);
    pool->watching = err == 0;
    return err;
}

static void unwatch(struct loop_pool *pool)
{
    loop_watch_fd(pool->loop, pool->efd, 0, NULL, NULL);
    pool->watching = false;
}

/* Is there anything the eventfd's reader still has to do? */
static bool busy(const struct loop_pool *pool)
{
    return pool->outstanding || (pool->drained && !loop_future_done(pool->drained));
}

/*
 * Stop watching once the pool has been idle for two iterations: a program
 * that submits again from a done callback (or from a task it resumes) keeps
 * the watch, and pays no epoll_ctl per job.
 */
static void idle_check(loop_t *loop, void *arg)
{
    struct loop_pool *pool = arg;
    pool->idle_check = (loop_handle){0};
    if (busy(pool) || !pool->watching)
        return;
    if (++pool->idle_hops < 2 && loop_call_soon(loop, idle_check, pool, &pool->idle_check) == 0)
        return;
    unwatch(pool);
}

static void maybe_idle(struct loop_pool *pool)
{
    if (pool->freeing || busy(pool) || !pool->watching || pool->idle_check.id)
        return;
    pool->idle_hops = 0;
    if (loop_call_soon(pool->loop, idle_check, pool, &pool->idle_check))
        unwatch(pool);
}

/* Make the reader run again at the next iteration. */
void loop__pool_wake_self(struct loop_pool *pool)
{
    if (pool->freeing || pool->dead || watch(pool))
        return;
    uint64_t one = 1;
    ssize_t n = write(pool->efd, &one, sizeof(one));
    (void)n; /* EAGAIN: it is readable already */
}

/* ---- completing futures ------------------------------------------------------ */

void loop__pool_ready_push(struct loop_pool *pool, struct job *j)
{
    j->done_next = NULL;
    if (pool->ready_tail)
        pool->ready_tail->done_next = j;
    else
        pool->ready = j;
    pool->ready_tail = j;
}

/* Take every job threads have finished, in the order they finished. */
void loop__pool_collect(struct loop_pool *pool)
{
    struct job *j = atomic_exchange_explicit(&pool->done, NULL, memory_order_acquire);
    struct job *fifo = NULL;
    while (j) {
        struct job *next = j->done_next;
        j->done_next = fifo;
        fifo = j;
        j = next;
    }
    while (fifo) {
        struct job *next = fifo->done_next;
        loop__pool_ready_push(pool, fifo);
        fifo = next;
    }
}

/* An outcome no future receives: to done (loop_pool_call), or to drop. */
void loop__pool_finish(const struct job *j, int status, void *result)
{
    if (j->done)
        j->done(j->arg, status, result);
    else if (j->drop)
        j->drop(j->arg, result);
}

/* Hand j's outcome to its future, or to done or drop.  -ENOMEM: nothing
 * changed. */
static int deliver_one(struct job *j)
{
    bool received = false;
    if (j->future) {
        int err;
        if (j->never_ran)
            err = loop_future_cancel_now(j->future);
        else if (j->complete)
            err = j->complete(j->future, j->status, j->arg, j->result);
        else if (j->status)
            err = loop_future_set_error(j->future, j->status);
        else
            err = loop_future_set_result(j->future, j->result);
        if (err == -ENOMEM)
            return err;
        received = err == 0 && !j->never_ran; /* -EINVAL: someone completed it */
        loop__pool_release_future(j);
    }
    if (!received)
        loop__pool_finish(j, j->never_ran ? -ECANCELED : j->status,
                          j->never_ran ? NULL : j->result);
    return 0;
}

/* Each job leaves the list before its outcome is handed over, so a drop
 * that shuts the pool down (and so delivers) finds the list consistent. */
void loop__pool_deliver(struct loop_pool *pool)
{
    while (pool->ready) {
        struct job *j = pool->ready;
        pool->ready = j->done_next;
        if (!pool->ready)
            pool->ready_tail = NULL;
        if (deliver_one(j) == -ENOMEM) {
            if (!pool->freeing) { /* back at the head: try again next iteration */
                j->done_next = pool->ready;
                pool->ready = j;
                if (!pool->ready_tail)
                    pool->ready_tail = j;
                loop__pool_wake_self(pool);
                break;
            }
            loop__pool_release_future(j); /* no later: it stays pending */
            deliver_one(j);
        }
        loop__pool_forget(pool, j);
        loop__pool_recycle(pool, j);
    }
    loop__pool_check_drained(pool);
    maybe_idle(pool);
}

void loop__pool_check_drained(struct loop_pool *pool)
{
    if (pool->freeing || !pool->drained || pool->outstanding || loop_future_done(pool->drained))
        return;
    if (loop_future_set_result(pool->drained, NULL) == -ENOMEM)
        loop__pool_wake_self(pool);
}

void loop__pool_on_done(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)events;
    struct loop_pool *pool = arg;
    if (loop__pool_forked(pool))
        return; /* the parent's eventfd: never read it here */
    uint64_t n;
    ssize_t got = read(fd, &n, sizeof(n));
    (void)got; /* EAGAIN: nothing new, but the ready list may want a retry */
    loop__pool_collect(pool);
    loop__pool_deliver(pool);
}

/* ---- cancelling a job's future ------------------------------------------------ */

static int cancel_job(loop_future *f, void *arg)
{
    struct job *j = arg;
    struct loop_pool *pool = j->pool;
    if (loop__pool_forked(pool))
        return loop_future_cancel_now(f); /* done by the abandon, unless it failed */
    int cancelled = loop_future_cancel_now(f);
    if (cancelled <= 0)
        return cancelled; /* -ENOMEM: nothing changed */
    loop__pool_release_future(j);
    pthread_mutex_lock(&pool->mu);
    bool queued = j->state == JOB_QUEUED;
    if (queued)
        loop__pool_unqueue(pool, j);
    pthread_mutex_unlock(&pool->mu);
    if (queued) { /* it never runs; running or finished, its outcome goes to drop */
        loop__pool_finish(j, -ECANCELED, NULL);
        loop__pool_forget(pool, j);
        loop__pool_recycle(pool, j);
        loop__pool_check_drained(pool);
        maybe_idle(pool);
    }
    return 1;
}

/* ---- submitting ---------------------------------------------------------------- */

/*
 * Queue j.  Wake a sleeping thread only if no thread is awake to look at
 * the queues (an awake one that takes a job wakes the next itself, so the
 * loop thread pays for few wake-ups); say a thread must be started
 * (counted already) if runnable jobs outnumber the threads awake or
 * asleep.
 */
static bool queue_job(struct loop_pool *pool, struct job *j)
{
    pthread_mutex_lock(&pool->mu);
    loop__pool_enqueue(pool, j);
    uint32_t runnable = loop__pool_runnable(pool);
    struct worker *woken = NULL;
    bool start = false;
    if (runnable > pool->awake) {
        if (pool->awake == 0)
            woken = loop__pool_wake_one(pool);
        start = runnable > pool->awake + pool->nsleeping && pool->nthreads < pool->max_threads;
        if (start) {
            pool->nthreads++;
            pool->awake++;
        }
    }
    pthread_mutex_unlock(&pool->mu);
    loop__pool_post(woken);
    return start;
}

/* No thread could start: take j back if no other thread can run it. */
static bool take_back(struct loop_pool *pool, struct job *j)
{
    pthread_mutex_lock(&pool->mu);
    bool alone = pool->nthreads == 0 && j->state == JOB_QUEUED;
    if (alone)
        loop__pool_unqueue(pool, j);
    pthread_mutex_unlock(&pool->mu);
    return alone;
}

static int submit_job(loop_pool *pool, loop_pool_fn *fn, void *arg, unsigned flags,
                      loop_pool_drop_fn *drop, loop_pool_done_fn *done,
                      loop__pool_complete_fn *complete, loop_future **out)
{
    if (!pool || !fn || (flags & ~LOOP_POOL_SLOW))
        return -EINVAL;
    if (loop__pool_forked(pool))
        return -ECHILD;
    if (pool->shut)
        return -ESHUTDOWN;
    if (pool->outstanding >= pool->capacity)
        return -EAGAIN;
    struct job *j = take_record(pool);
    if (!j)
        return -ENOMEM;
    loop_future *f = NULL;
    int err = out ? loop_future_new(pool->loop, &f) : 0;
    if (!err)
        err = watch(pool);
    if (err) {
        loop_future_unref(f);
        loop__pool_recycle(pool, j);
        return err;
    }
    /* Only what is read before it is set again: a recycled record's lines
     * were last written by a thread, and every store here costs. */
    j->pool = pool;
    j->future = f;
    j->drop = drop;
    j->done = done;
    j->complete = complete;
    j->never_ran = false;
    j->slow = flags & LOOP_POOL_SLOW;
    j->fn = fn;
    j->arg = arg;
    if (f)
        loop_future_set_canceller(f, cancel_job, j);
    if (queue_job(pool, j)) {
        err = loop__pool_start_thread(pool);
        if (err && take_back(pool, j)) {
            loop__pool_release_future(j);
            loop__pool_recycle(pool, j);
            maybe_idle(pool);
            return err == -ENOMEM ? -ENOMEM : -EAGAIN;
        }
    }
    list_job(pool, j);
    if (f) {
        loop_future_ref(f);
        *out = f;
    }
    return 0;
}

int loop_pool_submit_with(loop_pool *pool, loop_pool_fn *fn, void *arg, unsigned flags,
                          loop_pool_drop_fn *drop, loop_future **out)
{
    if (out)
        *out = NULL;
    return submit_job(pool, fn, arg, flags, drop, NULL, NULL, out);
}

/* A job whose outcome reaches its future through complete (out not NULL). */
int loop__pool_submit_hooked(loop_pool *pool, loop_pool_fn *fn, void *arg, unsigned flags,
                             loop_pool_drop_fn *drop, loop__pool_complete_fn *complete,
                             loop_future **out)
{
    *out = NULL;
    return submit_job(pool, fn, arg, flags, drop, NULL, complete, out);
}

int loop_pool_submit(loop_pool *pool, loop_pool_fn *fn, void *arg, loop_future **out)
{
    return loop_pool_submit_with(pool, fn, arg, 0, NULL, out);
}

int loop_pool_call(loop_pool *pool, loop_pool_fn *fn, void *arg, unsigned flags,
                   loop_pool_done_fn *done)
{
    return done ? submit_job(pool, fn, arg, flags, NULL, done, NULL, NULL) : -EINVAL;
}

/* ---- shutting down ---------------------------------------------------------------- */

int loop_pool_shutdown(loop_pool *pool, enum loop_pool_shutdown_how how, loop_future **done)
{
    if (done)
        *done = NULL;
    if (!pool || (how != LOOP_POOL_WAIT && how != LOOP_POOL_CANCEL))
        return -EINVAL;
    if (loop__pool_forked(pool))
        return -ECHILD;
    if (!pool->drained) {
        int err = loop_future_new(pool->loop, &pool->drained);
        if (err)
            return err;
    }
    pool->shut = true;
    pthread_mutex_lock(&pool->mu);
    pool->stopping = true;
    struct job *taken = how == LOOP_POOL_CANCEL ? loop__pool_take_queued(pool) : NULL;
    struct worker *sleepers = loop__pool_wake_all(pool); /* to end, or to finish the queue */
    pthread_mutex_unlock(&pool->mu);
    loop__pool_post(sleepers);
    for (struct job *j = taken, *next; j; j = next) {
        next = j->qnext;
        j->never_ran = true;
        loop__pool_ready_push(pool, j);
    }
    if (done) {
        loop_future_ref(pool->drained);
        *done = pool->drained;
    }
    loop__pool_deliver(pool);
    return 0;
}
