/*
 * The threads' side: the queues (under the pool's mutex), a thread's
 * life, waking one, and starting one.
 *
 * Two queues, merged by submission order: normal jobs, and slow jobs,
 * which a thread takes only while fewer than slow_cap of them run.  A slow
 * job held back by the cap waits for the thread that ends a slow job: it
 * looks at the queues before it sleeps, so nothing waits for a wake-up
 * that no one sends.
 *
 * Wake-ups are counted, not broadcast.  `awake` counts the threads that
 * are not in a job and will look at the queues before they sleep: a new
 * thread, one just woken, one that has just finished a job.  A thread
 * that finds nothing puts itself on the sleepers stack and waits on its
 * own semaphore.  A submit wakes a sleeper only when no thread is awake;
 * a thread that takes a job wakes the next sleeper if runnable jobs still
 * outnumber awake threads, so wake-ups cascade among the threads and the
 * loop thread seldom pays for one.  A submit starts a thread only when
 * runnable jobs outnumber the threads awake and asleep: no more threads
 * run than jobs were ever given at once.  (A condition variable
 * signalled on every submit made one futex call and one context switch
 * per job when jobs are short.)  Before it sleeps, one thread at a time
 * spins a while, yielding the CPU, watching for a job: when the loop
 * submits faster than a wake-up takes but slower than threads run short
 * jobs, that thread takes them without anyone sleeping or waking.
 *
 * A thread that ends a job counts itself awake and pushes the job on the
 * done stack under the same lock, then writes the eventfd (outside it)
 * if the stack was empty: by the time the loop sees the job, the thread
 * already counts as awake, and the next submit does not start another.
 *
 * loop_pool_free() must be able to let go of a thread whose job never
 * returns.  Who owns the job when it returns is settled by one atomic
 * exchange on the thread's phase (see run_job): the thread sets
 * RETURNED, the pool sets ORPHANED, and whichever comes second learns it.
 */
#include "pool_internal.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
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
    loop__pool_update_hint(pool);
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
    loop__pool_update_hint(pool);
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

/* After any change to the queues or to slow_running. */
void loop__pool_update_hint(struct loop_pool *pool)
{
    atomic_store_explicit(&pool->runnable_hint, loop__pool_runnable(pool), memory_order_relaxed);
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
    if (j->slow) {
        pool->slow_running++;
        loop__pool_update_hint(pool);
    }
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

/* ---- waking ------------------------------------------------------------ */

/* Take a sleeper off the stack, counted awake; post it (loop__pool_post)
 * once mu is unlocked.  NULL if none sleeps. */
struct worker *loop__pool_wake_one(struct loop_pool *pool)
{
    struct worker *w = pool->sleepers;
    if (w) {
        pool->sleepers = w->sleep_next;
        w->sleep_next = NULL;
        pool->nsleeping--;
        pool->awake++;
    }
    return w;
}

/* Every sleeper, for stopping: a list linked by sleep_next. */
struct worker *loop__pool_wake_all(struct loop_pool *pool)
{
    struct worker *all = pool->sleepers;
    pool->awake += pool->nsleeping;
    pool->nsleeping = 0;
    pool->sleepers = NULL;
    return all;
}

void loop__pool_post(struct worker *list)
{
    while (list) {
        struct worker *next = list->sleep_next; /* read first: it may run at once */
        sem_post(&list->wake);
        list = next;
    }
}

/* ---- a thread ----------------------------------------------------------- */

/* The pool let go of this thread while its job ran: finish alone, with
 * what it copied before the job started (the job's record is not its). */
static void orphan_exit(struct worker *w, const struct job *copy, int status, void *result)
{
    loop__pool_finish(copy, status < 0 ? status : 0, result);
    sem_destroy(&w->wake);
    w->realloc(w->ctx, w, 0);
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
 * thread meanwhile (then w is gone, and j is not this thread's); else
 * relocks mu and puts j on the done stack, counting this thread awake
 * first.
 */
static bool run_job(struct worker *w, struct job *j)
{
    struct loop_pool *pool = w->pool;
    struct job copy = {.arg = j->arg, .drop = j->drop, .done = j->done}; /* for an orphan */
    void *arg = j->arg;
    pthread_mutex_unlock(&pool->mu);
    void *result = NULL;
    int status = j->fn(arg, &result);
    if (status < 0)
        result = NULL;
    if (atomic_exchange_explicit(&w->phase, WORKER_RETURNED, memory_order_acq_rel) ==
        WORKER_ORPHANED) {
        orphan_exit(w, &copy, status, result);
        return false;
    }
    j->status = status < 0 ? status : 0;
    j->result = result;
    pthread_mutex_lock(&pool->mu);
    if (j->slow) {
        pool->slow_running--;
        loop__pool_update_hint(pool);
    }
    pool->awake++;
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

/* Sleep until woken (mu locked on entry and on return). */
static void sleep_on(struct worker *w)
{
    struct loop_pool *pool = w->pool;
    w->sleep_next = pool->sleepers;
    pool->sleepers = w;
    pool->nsleeping++;
    pool->awake--;
    pthread_mutex_unlock(&pool->mu);
    while (sem_wait(&w->wake) != 0) /* EINTR */
        ;
    pthread_mutex_lock(&pool->mu); /* whoever woke it counted it awake */
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Wait up to SPIN_NS for a job without sleeping (mu locked on entry and
 * on return); false if none came (nor a stop: the caller looks again).
 * Counted awake meanwhile, so a submit leaves the job to it.
 * sched_yield() lets the loop thread have the CPU on a machine with fewer
 * cores than threads.  SPIN_NS is about what a wake-up costs the thread
 * that makes it: spinning longer bought no throughput in bench/pool, and
 * it costs CPU on an idle pool (at most SPIN_NS after each job).
 */
#define SPIN_NS 10000
static bool spin_for_work(struct loop_pool *pool)
{
    pool->spinning = true;
    pthread_mutex_unlock(&pool->mu);
    bool seen = false;
    for (uint64_t until = now_ns() + SPIN_NS; !seen && now_ns() < until;) {
        sched_yield();
        seen = atomic_load_explicit(&pool->runnable_hint, memory_order_relaxed) != 0;
    }
    pthread_mutex_lock(&pool->mu);
    pool->spinning = false;
    return seen;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct loop_pool *pool = w->pool;
    bool spun = false;             /* since it last ran a job or slept */
    pthread_mutex_lock(&pool->mu); /* counted awake by whoever started it */
    for (;;) {
        struct job *j = pick(pool);
        if (!j) {
            if (pool->stopping)
                break;
            if (!spun && !pool->spinning) { /* then look again: it may be stopping now */
                spin_for_work(pool);
                spun = true;
            } else {
                sleep_on(w);
                spun = false;
            }
            continue;
        }
        spun = false;
        pool->awake--;
        w->job = j;
        atomic_store_explicit(&w->phase, WORKER_RUNNING, memory_order_relaxed);
        struct worker *next =
            loop__pool_runnable(pool) > pool->awake ? loop__pool_wake_one(pool) : NULL;
        if (next) { /* more work than awake threads: pass the wake-up on */
            pthread_mutex_unlock(&pool->mu);
            loop__pool_post(next);
            pthread_mutex_lock(&pool->mu);
        }
        if (!run_job(w, j))
            return NULL; /* orphaned: the pool no longer counts it */
    }
    pool->awake--;
    pool->nthreads--;
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

/* ---- starting one ------------------------------------------------------- */

/*
 * Start a thread, counted in nthreads and awake by the caller (under mu)
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
        sem_init(&w->wake, 0, 0);
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
        if (w)
            sem_destroy(&w->wake);
        loop__pool_mem(pool, w, 0);
        pthread_mutex_lock(&pool->mu);
        pool->nthreads--;
        pool->awake--;
        pthread_mutex_unlock(&pool->mu);
        return -err;
    }
    pthread_setname_np(w->thread, "loop-pool");
    w->next = pool->workers;
    pool->workers = w;
    return 0;
}
