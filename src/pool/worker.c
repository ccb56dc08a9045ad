/*
 * The threads' side: the queues (under the pool's mutex), a thread's
 * life, and starting one.
 *
 * Two queues, merged by submission order: normal jobs, and slow jobs,
 * which a thread takes only while fewer than slow_cap of them run.  A slow
 * job held back by the cap waits for the thread that ends a slow job: it
 * looks at the queues before it sleeps, so nothing waits for a wake-up
 * that no one sends.
 *
 * `idle` counts the threads that will look at the queues before they
 * sleep: a new thread, a sleeping one, and one that has just finished a
 * job.  A submit wakes one if there is one, and starts a thread only when
 * runnable jobs outnumber idle threads, so no more threads run than jobs
 * were ever given at once.
 *
 * A thread that ends a job counts itself idle and pushes the job on the
 * done stack under the same lock, then writes the eventfd (outside it)
 * if the stack was empty: by the time the loop sees the job, the thread
 * already counts as idle, and the next submit does not start another.
 *
 * loop_pool_free() must be able to let go of a thread whose job never
 * returns.  Who owns the job when it returns is settled by one atomic
 * exchange on the thread's phase (see run_job): the thread sets
 * RETURNED, the pool sets ORPHANED, and whichever comes second learns it.
 */
#include "pool_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

/* ---- the queues (under mu) ------------------------------------------------ */

static struct job_queue *queue_of(struct loop_pool *pool, const struct job *j)
{
    return j->slow ? &pool->slowq : &pool->normal;
}

void loop__pool_enqueue(struct loop_pool *pool, struct job *j)
{
    struct job_queue *q = queue_of(pool, j);
    j->state = JOB_QUEUED;
    j->seq = pool->seq++;
    j->qnext = NULL;
    j->qprev = q->tail;
    if (q->tail)
        q->tail->qnext = j;
    else
        q->head = j;
    q->tail = j;
    q->n++;
}

void loop__pool_unqueue(struct loop_pool *pool, struct job *j)
{
    struct job_queue *q = queue_of(pool, j);
    if (j->qprev)
        j->qprev->qnext = j->qnext;
    else
        q->head = j->qnext;
    if (j->qnext)
        j->qnext->qprev = j->qprev;
    else
        q->tail = j->qprev;
    q->n--;
}

/* Slow jobs that may start now. */
static uint32_t slow_startable(const struct loop_pool *pool)
{
    uint32_t room = pool->slow_cap - pool->slow_running;
    return pool->slowq.n < room ? pool->slowq.n : room;
}

uint32_t loop__pool_runnable(const struct loop_pool *pool)
{
    return pool->normal.n + slow_startable(pool);
}

/* The oldest job a thread may start now, taken off its queue; or NULL. */
static struct job *pick(struct loop_pool *pool)
{
    struct job *n = pool->normal.head;
    struct job *s = slow_startable(pool) ? pool->slowq.head : NULL;
    struct job *j = !s || (n && n->seq < s->seq) ? n : s;
    if (!j)
        return NULL;
    loop__pool_unqueue(pool, j);
    j->state = JOB_RUNNING;
    if (j->slow)
        pool->slow_running++;
    return j;
}

/* Every queued job, in submission order (linked by qnext), taken off. */
struct job *loop__pool_take_queued(struct loop_pool *pool)
{
    struct job *first = NULL, **last = &first;
    for (;;) {
        struct job *n = pool->normal.head, *s = pool->slowq.head;
        struct job *j = !s || (n && n->seq < s->seq) ? n : s;
        if (!j)
            break;
        loop__pool_unqueue(pool, j);
        j->state = JOB_OFF;
        j->qnext = NULL;
        *last = j;
        last = &j->qnext;
    }
    return first;
}

/* ---- a thread ----------------------------------------------------------- */

/* The pool let go of this thread while its job ran: finish alone. */
static void *orphan_exit(struct worker *w, struct job *j)
{
    if (j->drop)
        j->drop(j->arg, j->result);
    w->realloc(w->ctx, j, 0);
    w->realloc(w->ctx, w, 0);
    return NULL;
}

static void push_done(struct loop_pool *pool, struct job *j, bool *was_empty)
{
    struct job *old = atomic_load_explicit(&pool->done, memory_order_relaxed);
    do
        j->done_next = old;
    while (!atomic_compare_exchange_weak_explicit(&pool->done, &old, j, memory_order_release,
                                                  memory_order_relaxed));
    *was_empty = old == NULL;
}

static void wake_loop(struct loop_pool *pool)
{
    uint64_t one = 1;
    ssize_t n;
    do
        n = write(pool->efd, &one, sizeof(one));
    while (n < 0 && errno == EINTR);
    /* EAGAIN: the counter is full, so the loop will wake anyway. */
}

/*
 * Run j with mu unlocked.  Returns false if the pool let go of this
 * thread meanwhile (then j and w are gone); else relocks mu and puts j on
 * the done stack, counting this thread idle first.
 */
static bool run_job(struct worker *w, struct job *j)
{
    struct loop_pool *pool = w->pool;
    pthread_mutex_unlock(&pool->mu);
    void *result = NULL;
    int status = j->fn(j->arg, &result);
    j->status = status < 0 ? status : 0;
    j->result = status < 0 ? NULL : result;
    if (atomic_exchange_explicit(&w->phase, WORKER_RETURNED, memory_order_acq_rel) ==
        WORKER_ORPHANED) {
        orphan_exit(w, j);
        return false;
    }
    pthread_mutex_lock(&pool->mu);
    if (j->slow)
        pool->slow_running--;
    pool->idle++;
    atomic_store_explicit(&w->phase, WORKER_IDLE, memory_order_relaxed);
    w->job = NULL;
    bool was_empty;
    push_done(pool, j, &was_empty); /* j is the loop's from here */
    if (was_empty) {
        pthread_mutex_unlock(&pool->mu);
        wake_loop(pool);
        pthread_mutex_lock(&pool->mu);
    }
    return true;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct loop_pool *pool = w->pool;
    pthread_mutex_lock(&pool->mu); /* counted idle by whoever started it */
    for (;;) {
        struct job *j = pick(pool);
        if (!j) {
            if (pool->stopping)
                break;
            pthread_cond_wait(&pool->cv, &pool->mu);
            continue;
        }
        pool->idle--;
        w->job = j;
        atomic_store_explicit(&w->phase, WORKER_RUNNING, memory_order_relaxed);
        if (!run_job(w, j))
            return NULL; /* orphaned: the pool no longer counts it */
    }
    pool->idle--;
    pool->nthreads--;
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

/* ---- starting one ------------------------------------------------------- */

/*
 * Start a thread, counted in nthreads and idle by the caller (under mu)
 * beforehand; on failure, take it out of both again.  Runs with mu
 * unlocked.  Returns 0, -ENOMEM, or pthread_create's error (-EAGAIN).
 */
int loop__pool_start_thread(struct loop_pool *pool)
{
    struct worker *w = loop__pool_mem(pool, NULL, sizeof(*w));
    int err = w ? 0 : ENOMEM;
    if (w) {
        *w = (struct worker){.pool = pool, .realloc = pool->realloc, .ctx = pool->ctx};
        atomic_init(&w->phase, WORKER_IDLE);
        /* Block what the thread should never take: the loop handles signals. */
        sigset_t all, old;
        sigfillset(&all);
        static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS};
        for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
            sigdelset(&all, faults[i]);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        err = pthread_create(&w->thread, NULL, worker_main, w);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (err) {
        loop__pool_mem(pool, w, 0);
        pthread_mutex_lock(&pool->mu);
        pool->nthreads--;
        pool->idle--;
        pthread_mutex_unlock(&pool->mu);
        return -err;
    }
    pthread_setname_np(w->thread, "loop-pool");
    w->next = pool->workers;
    pool->workers = w;
    return 0;
}
