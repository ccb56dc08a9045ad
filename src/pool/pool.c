/*
 * Pools: making one, the loop's default one, freeing, and what a child
 * process does with a pool it inherited.
 *
 * Every pool is attached to its loop under its own address, so that
 * loop_free() frees one the program forgot; the default pool is also
 * attached under default_key (with no release of its own).  A release
 * runs while the loop's futures may already be gone (the future layer's
 * registry may be released first), so a pool freed by loop_free() never
 * touches a future: every outcome goes to its drop function instead.
 *
 * fork: a child has none of the pool's threads, and its mutex may have
 * been held by one of them at the fork.  The child's pool is recognised
 * by a count of forks kept by a pthread_atfork() handler (the one state
 * this layer keeps per process: it only ever grows, in children), and
 * then abandoned: the loop thread's own lists, which the fork copied
 * whole, tell which futures to cancel and what to free; the mutex and the
 * queues are never looked at again.
 */
#include "pool_internal.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static atomic_uint forks;
static pthread_once_t forks_once = PTHREAD_ONCE_INIT;
static const int default_key;

static void count_fork(void)
{
    atomic_fetch_add_explicit(&forks, 1, memory_order_relaxed);
}

static void install_fork_count(void)
{
    pthread_atfork(NULL, NULL, count_fork);
}

unsigned loop__pool_fork_generation(void)
{
    return atomic_load_explicit(&forks, memory_order_relaxed);
}

void *loop__pool_mem(struct loop_pool *pool, void *ptr, size_t size)
{
    return pool->realloc(pool->ctx, ptr, size);
}

/* ---- making one ---------------------------------------------------------- */

static unsigned default_threads(void)
{
    cpu_set_t set;
    long cores = 0;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        cores = CPU_COUNT(&set);
    if (cores <= 0)
        cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores <= 0)
        cores = 1;
    return cores + 4 < 32 ? (unsigned)cores + 4 : 32;
}

static int check_options(const loop_pool_options *o, unsigned *threads, unsigned *slow,
                         uint32_t *capacity)
{
    *threads = o->threads ? o->threads : default_threads();
    if (*threads > LOOP_POOL_MAX_THREADS || o->slow_threads > *threads)
        return -EINVAL;
    *slow = o->slow_threads ? o->slow_threads : (*threads + 1) / 2;
    *capacity = o->capacity ? o->capacity : 65536;
    return 0;
}

static void release_pool(loop_t *loop, void *data);

/* The pool's fd: opened, its table slot in the loop reserved (a watch
 * later then never allocates), and watched only while jobs are out. */
static int open_efd(struct loop_pool *pool)
{
    pool->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (pool->efd < 0)
        return -errno;
    int err = loop_watch_fd(pool->loop, pool->efd, LOOP_READABLE, loop__pool_on_done, pool);
    if (!err)
        err = loop_watch_fd(pool->loop, pool->efd, 0, NULL, NULL);
    if (err)
        close(pool->efd);
    return err;
}

int loop_pool_new(loop_t *loop, const loop_pool_options *opts, loop_pool **out)
{
    if (out)
        *out = NULL;
    if (!loop || !out)
        return -EINVAL;
    unsigned threads, slow;
    uint32_t capacity;
    int err = check_options(opts ? opts : &(loop_pool_options){0}, &threads, &slow, &capacity);
    if (err)
        return err;
    pthread_once(&forks_once, install_fork_count);
    struct loop_pool *pool = loop_realloc(loop, NULL, sizeof(*pool));
    if (!pool)
        return -ENOMEM;
    memset(pool, 0, sizeof(*pool));
    pool->loop = loop;
    loop_get_allocator(loop, &pool->realloc, &pool->ctx);
    pool->max_threads = threads;
    pool->slow_cap = slow;
    pool->capacity = capacity;
    pool->fork_gen = loop__pool_fork_generation();
    atomic_init(&pool->done, NULL);
    atomic_init(&pool->runnable_hint, 0);
    err = open_efd(pool);
    if (!err) {
        err = loop_attach(loop, pool, pool, release_pool);
        if (err)
            close(pool->efd);
    }
    if (err) {
        loop_realloc(loop, pool, 0);
        return err;
    }
    pthread_mutex_init(&pool->mu, NULL);
    *out = pool;
    return 0;
}

/* ---- fork ---------------------------------------------------------------- */

/*
 * In a child: cancel every outstanding job's future (found in the record
 * chunks: the queues may have been half-changed by a thread at the fork).
 * A future whose cancel cannot be queued (-ENOMEM) keeps its job
 * outstanding, and the next call tries again.
 */
void loop__pool_abandon(struct loop_pool *pool)
{
    if (!pool->dead) {
        pool->dead = true;
        loop_cancel(pool->loop, pool->idle_check);
        loop_watch_fd(pool->loop, pool->efd, 0, NULL, NULL);
        pool->watching = false;
        close(pool->efd);
        pool->efd = -1;
        while (pool->workers) { /* no such thread here: nothing to join */
            struct worker *w = pool->workers;
            pool->workers = w->next;
            loop__pool_mem(pool, w, 0);
        }
        pool->ready = pool->ready_tail = NULL; /* their jobs are outstanding too */
        atomic_store_explicit(&pool->done, NULL, memory_order_relaxed);
    }
    for (struct job_chunk *c = pool->chunks; c; c = c->next)
        for (int i = 0; i < POOL_CHUNK; i++) {
            struct job *j = &c->jobs[i];
            if (!j->listed || (j->future && loop_future_cancel_now(j->future) < 0))
                continue;
            loop__pool_release_future(j);
            loop__pool_finish(j, -ECANCELED, NULL);
            loop__pool_forget(pool, j);
        }
    loop__pool_check_drained(pool);
}

bool loop__pool_forked(struct loop_pool *pool)
{
    if (pool->fork_gen == loop__pool_fork_generation())
        return false;
    loop__pool_abandon(pool);
    return true;
}

/* ---- freeing ---------------------------------------------------------------- */

/*
 * Let go of a job a thread is running: its future is cancelled now (or,
 * with loop_free, left to the loop), and it leaves the outstanding list,
 * whether the thread turns out to have returned already or not.
 */
static void let_go(struct loop_pool *pool, struct job *j, bool futures)
{
    loop_future *f = j->future;
    j->future = NULL;
    if (f && futures) {
        loop_future_set_canceller(f, NULL, NULL);
        loop_future_cancel_now(f); /* -ENOMEM: it stays pending; we can do no more */
        loop_future_unref(f);
    }
    loop__pool_forget(pool, j);
}

/* Stop the threads: join those that can be, orphan those in a job. */
static void stop_threads(struct loop_pool *pool, bool futures, struct job **queued)
{
    pthread_mutex_lock(&pool->mu);
    pool->stopping = true;
    *queued = loop__pool_take_queued(pool);
    for (struct worker **p = &pool->workers, *w; (w = *p);) {
        int phase = atomic_load_explicit(&w->phase, memory_order_relaxed);
        if (phase == WORKER_RUNNING) {
            pthread_t t = w->thread;
            struct job *j = w->job;
            let_go(pool, j, futures);
            if (atomic_compare_exchange_strong_explicit(&w->phase, &phase, WORKER_ORPHANED,
                                                        memory_order_acq_rel,
                                                        memory_order_acquire)) {
                *p = w->next; /* w and j are the thread's now */
                pool->nthreads--;
                pthread_detach(t);
                continue;
            }
        }
        p = &w->next;
    }
    struct worker *sleepers = loop__pool_wake_all(pool);
    pthread_mutex_unlock(&pool->mu);
    loop__pool_post(sleepers);
    while (pool->workers) {
        struct worker *w = pool->workers;
        pool->workers = w->next;
        pthread_join(w->thread, NULL);
        sem_destroy(&w->wake);
        loop__pool_mem(pool, w, 0);
    }
}

static void free_pool(struct loop_pool *pool, bool futures)
{
    pool->freeing = true;
    if (!futures) { /* loop_free: the loop's futures may be gone already */
        for (struct job_chunk *c = pool->chunks; c; c = c->next)
            for (int i = 0; i < POOL_CHUNK; i++)
                c->jobs[i].future = NULL;
        pool->drained = NULL;
    }
    if (pool->dead || loop__pool_forked(pool)) { /* in a child: no thread to stop */
        loop__pool_abandon(pool);                /* again: once more for cancels that failed */
        for (struct job_chunk *c = pool->chunks; c; c = c->next)
            for (int i = 0; i < POOL_CHUNK; i++)
                if (c->jobs[i].listed) { /* cancels that failed: give up */
                    loop__pool_release_future(&c->jobs[i]);
                    loop__pool_forget(pool, &c->jobs[i]);
                }
    } else {
        struct job *queued;
        stop_threads(pool, futures, &queued);
        loop__pool_collect(pool);
        for (struct job *j = queued, *next; j; j = next) {
            next = j->qnext;
            j->never_ran = true;
            loop__pool_ready_push(pool, j);
        }
        loop__pool_deliver(pool);
        loop_cancel(pool->loop, pool->idle_check);
        loop_watch_fd(pool->loop, pool->efd, 0, NULL, NULL);
        close(pool->efd);
        pthread_mutex_destroy(&pool->mu);
    }
    if (pool->drained) {
        loop_future_set_result(pool->drained, NULL); /* nothing is outstanding now */
        loop_future_unref(pool->drained);
    }
    while (pool->chunks) { /* an orphaned thread no longer looks at its record */
        struct job_chunk *c = pool->chunks;
        pool->chunks = c->next;
        loop__pool_mem(pool, c, 0);
    }
    loop__pool_mem(pool, pool, 0);
}

static void release_pool(loop_t *loop, void *data)
{
    (void)loop;
    free_pool(data, false);
}

int loop_pool_free(loop_pool *pool)
{
    if (!pool)
        return -EINVAL;
    loop_t *loop = pool->loop;
    if (loop_attached(loop, &default_key) == pool)
        loop_detach(loop, &default_key);
    loop_detach(loop, pool);
    free_pool(pool, true);
    return 0;
}

/* ---- the default pool, and stats -------------------------------------------- */

int loop_pool_default(loop_t *loop, loop_pool **out)
{
    if (out)
        *out = NULL;
    if (!loop || !out)
        return -EINVAL;
    loop_pool *pool = loop_attached(loop, &default_key);
    if (pool && loop__pool_forked(pool)) {
        loop_pool_free(pool);
        pool = NULL;
    }
    if (!pool) {
        int err = loop_pool_new(loop, NULL, &pool);
        if (err)
            return err;
        err = loop_attach(loop, &default_key, pool, NULL);
        if (err) {
            loop_pool_free(pool);
            return err;
        }
    }
    *out = pool;
    return 0;
}

int loop_pool_stats(loop_pool *pool, loop_pool_stats_t *out)
{
    if (!pool || !out)
        return -EINVAL;
    if (loop__pool_forked(pool))
        return -ECHILD;
    pthread_mutex_lock(&pool->mu);
    *out = (loop_pool_stats_t){
        .threads = pool->nthreads,
        .idle = pool->awake + pool->nsleeping,
        .sleeping = pool->nsleeping,
        .slow_running = pool->slow_running,
        .queued = pool->normal.n + pool->slowq.n,
        .outstanding = pool->outstanding,
        .max_threads = pool->max_threads,
        .slow_threads = pool->slow_cap,
        .capacity = pool->capacity,
    };
    pthread_mutex_unlock(&pool->mu);
    return 0;
}
