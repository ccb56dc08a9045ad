/*
 * The process pool: its lifetime, the jobs and their futures, shutdown.
 * The workers themselves are in pool_io.c.
 *
 * A job is queued, then running on one worker, then ended: its future
 * completed (retried from the ready queue if the queue could not grow) and
 * the job freed.  The pool is listed in the loop's process registry, so
 * that a loop freed first leaves it an empty shell (its workers killed and
 * reaped with the loop's other children, its futures gone with the loop)
 * that loop_process_pool_free() then frees.
 */
#include "pool_internal.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

void *loop__process_pool_mem(loop_process_pool *pool, void *ptr, size_t size)
{
    return pool->realloc(pool->ctx, ptr, size);
}

void loop__process_pool_link(struct loop__process_registry *r, loop_process_pool *pool)
{
    pool->next = r->pools;
    if (r->pools)
        r->pools->prev = pool;
    r->pools = pool;
}

void loop__process_pool_unlink(struct loop__process_registry *r, loop_process_pool *pool)
{
    if (pool->prev)
        pool->prev->next = pool->next;
    else
        r->pools = pool->next;
    if (pool->next)
        pool->next->prev = pool->prev;
    pool->prev = pool->next = NULL;
}

/* ---- jobs ------------------------------------------------------------------- */

static void unqueue(struct pool_job *j)
{
    loop_process_pool *pool = j->pool;
    if (j->prev)
        j->prev->next = j->next;
    else
        pool->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        pool->tail = j->prev;
    j->prev = j->next = NULL;
}

struct pool_job *loop__pool_pop(loop_process_pool *pool)
{
    struct pool_job *j = pool->head;
    if (j)
        unqueue(j);
    return j;
}

static void free_job(struct pool_job *j)
{
    loop_process_pool *pool = j->pool;
    loop_future_set_canceller(j->f, NULL, NULL);
    loop_future_unref(j->f);
    loop__process_pool_mem(pool, j->data, 0);
    loop__process_pool_mem(pool, j, 0);
}

static void settle_later(loop_t *loop, void *arg);

/* Complete the job's future with its outcome, then free the job. */
static void settle(struct pool_job *j)
{
    int rc;
    if (j->err == -ECANCELED)
        rc = loop_future_cancel_now(j->f);
    else if (j->err)
        rc = loop_future_set_error(j->f, j->err);
    else
        rc = loop_future_set_result(j->f, j->reply);
    loop_process_pool *pool = j->pool;
    if (rc == -ENOMEM && !pool->closing &&
        loop_call_soon(pool->loop, settle_later, j, &j->retry) == 0) {
        j->prev = NULL; /* the ready queue could not grow: try again from it */
        j->next = pool->settling;
        if (pool->settling)
            pool->settling->prev = j;
        pool->settling = j;
        return;
    }
    if (rc < 0)
        loop_process_bytes_free(j->reply); /* nobody can read it */
    free_job(j);
}

static void unsettle(struct pool_job *j)
{
    loop_process_pool *pool = j->pool;
    if (j->prev)
        j->prev->next = j->next;
    else
        pool->settling = j->next;
    if (j->next)
        j->next->prev = j->prev;
    j->prev = j->next = NULL;
}

static void settle_later(loop_t *loop, void *arg)
{
    (void)loop;
    unsettle(arg);
    settle(arg);
}

void loop__pool_job_end(struct pool_job *j, int err, loop_process_bytes *reply)
{
    j->err = err;
    j->reply = reply;
    loop__process_pool_mem(j->pool, j->data, 0);
    j->data = NULL;
    settle(j);
}

/* Cancelling a job's future: only a job not started yet can be. */
static int cancel_job(loop_future *f, void *arg)
{
    (void)f;
    struct pool_job *j = arg;
    loop_process_pool *pool = j->pool;
    if (j->running)
        return 0;
    unqueue(j);
    loop__pool_job_end(j, -ECANCELED, NULL); /* frees j */
    loop__pool_check_done(pool);
    return 1;
}

static void end_queued(loop_process_pool *pool, int err)
{
    struct pool_job *j;
    while ((j = loop__pool_pop(pool)) != NULL)
        loop__pool_job_end(j, err, NULL);
}

/* No worker can start: the pool fails, and so does every job waiting. */
void loop__pool_fail(loop_process_pool *pool)
{
    pool->failed = true;
    end_queued(pool, -ECHILD);
}

void loop__pool_check_done(loop_process_pool *pool)
{
    if (!pool->done || loop_future_done(pool->done) || pool->head)
        return;
    for (unsigned i = 0; i < pool->nworkers; i++)
        if (pool->w[i].state != WORKER_GONE)
            return;
    loop_future_set_result(pool->done, NULL); /* -ENOMEM: see loop_process_pool_shutdown() */
}

/* ---- the pool --------------------------------------------------------------- */

static int check_table(const loop_process_work *t, size_t n)
{
    if (!t || n == 0 || n > INT_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!t[i].name || !t[i].fn)
            return -EINVAL;
        for (size_t k = 0; k < i; k++)
            if (strcmp(t[k].name, t[i].name) == 0)
                return -EINVAL;
    }
    return 0;
}

/* The program the workers run, copied into the pool: 0 or -errno. */
static int copy_exe(loop_process_pool *pool, const char *exe)
{
    char self[PATH_MAX];
    if (!exe) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0)
            return -errno;
        self[n] = '\0';
        exe = self;
    }
    size_t len = strlen(exe) + 1;
    pool->exe = loop__process_pool_mem(pool, NULL, len);
    if (!pool->exe)
        return -ENOMEM;
    memcpy(pool->exe, exe, len);
    return 0;
}

static unsigned worker_count(const loop_process_pool_options *o)
{
    if (o->workers)
        return o->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < 4096 ? (unsigned)n : 1;
}

int loop_process_pool_new(loop_t *loop, const loop_process_pool_options *opts,
                          loop_process_pool **out)
{
    if (out)
        *out = NULL;
    if (!loop || !opts || !out)
        return -EINVAL;
    int err = check_table(opts->table, opts->n);
    if (err)
        return err;
    struct loop__process_registry *r = loop__process_registry(loop);
    loop_process_pool *pool = r ? loop__process_mem(r, NULL, sizeof(*pool)) : NULL;
    if (!pool)
        return -ENOMEM;
    *pool = (loop_process_pool){.loop = loop,
                                .reg = r,
                                .realloc = r->realloc,
                                .ctx = r->ctx,
                                .table = opts->table,
                                .n = opts->n,
                                .hash = loop__worker_table_hash(opts->table, opts->n),
                                .nworkers = worker_count(opts)};
    loop__process_pool_link(r, pool);
    pool->w = loop__process_pool_mem(pool, NULL, pool->nworkers * sizeof(*pool->w));
    if (!pool->w)
        pool->nworkers = 0;
    for (unsigned i = 0; i < pool->nworkers; i++)
        pool->w[i] = (struct pool_worker){.pool = pool, .in_fd = -1, .out_fd = -1};
    err = pool->w ? copy_exe(pool, opts->exe) : -ENOMEM;
    for (unsigned i = 0; !err && i < pool->nworkers; i++)
        err = loop__pool_start_worker(&pool->w[i]);
    if (err) {
        loop_process_pool_free(pool); /* kills and reaps those started */
        return err;
    }
    *out = pool;
    return 0;
}

int loop_process_pool_find(const loop_process_pool *pool, const char *name)
{
    if (!pool || !name)
        return -EINVAL;
    for (size_t i = 0; i < pool->n; i++)
        if (strcmp(pool->table[i].name, name) == 0)
            return (int)i;
    return -ENOENT;
}

int loop_process_pool_submit(loop_process_pool *pool, int id, const void *data, size_t len,
                             loop_future **out)
{
    if (out)
        *out = NULL;
    if (!pool || !out || id < 0 || (size_t)id >= pool->n || (!data && len))
        return -EINVAL;
    if (len > LOOP__WORKER_MAX_LEN)
        return -EMSGSIZE;
    if (pool->shutdown || !pool->loop)
        return -ESHUTDOWN;
    if (pool->failed)
        return -ECHILD;
    struct pool_job *j = loop__process_pool_mem(pool, NULL, sizeof(*j));
    if (!j)
        return -ENOMEM;
    *j = (struct pool_job){.pool = pool, .id = id, .len = len};
    if ((len && !(j->data = loop__process_pool_mem(pool, NULL, len))) ||
        loop_future_new(pool->loop, &j->f) != 0) {
        loop__process_pool_mem(pool, j->data, 0);
        loop__process_pool_mem(pool, j, 0);
        return -ENOMEM;
    }
    if (len)
        memcpy(j->data, data, len);
    loop_future_set_canceller(j->f, cancel_job, j);
    loop_future_ref(j->f); /* the caller's */
    j->prev = pool->tail;
    if (pool->tail)
        pool->tail->next = j;
    else
        pool->head = j;
    pool->tail = j;
    *out = j->f;
    loop__pool_dispatch(pool);
    return 0;
}

void loop_process_bytes_free(loop_process_bytes *b)
{
    if (!b)
        return;
    struct pool_reply *box = (struct pool_reply *)b;
    box->realloc(box->ctx, box, 0);
}

int loop_process_pool_shutdown(loop_process_pool *pool, bool cancel_pending, loop_future **done)
{
    if (done)
        *done = NULL;
    if (!pool)
        return -EINVAL;
    if (!pool->loop)
        return done ? -ESHUTDOWN : 0;
    if (!pool->done && loop_future_new(pool->loop, &pool->done) != 0)
        return -ENOMEM;
    if (!pool->shutdown) {
        pool->shutdown = true;
        if (cancel_pending)
            end_queued(pool, -ECANCELED);
        loop__pool_dispatch(pool);
    }
    loop__pool_check_done(pool);
    if (done) {
        loop_future_ref(pool->done);
        *done = pool->done;
    }
    return 0;
}

int loop_process_pool_stats(const loop_process_pool *pool, loop_process_pool_stats_t *out)
{
    if (!pool || !out)
        return -EINVAL;
    *out = pool->stats;
    return 0;
}

/* Let go of everything that needs the loop; `cancel` ends the jobs (the
 * loop is alive), else their futures are dropped with the loop. */
static void stop_all(loop_process_pool *pool, bool cancel)
{
    pool->closing = true;
    while (pool->settling) {
        struct pool_job *j = pool->settling;
        loop_cancel(pool->loop, j->retry);
        unsettle(j);
        if (cancel)
            settle(j); /* once more, without a retry */
        else {
            loop_process_bytes_free(j->reply);
            free_job(j);
        }
    }
    for (unsigned i = 0; i < pool->nworkers; i++) {
        struct pool_worker *w = &pool->w[i];
        struct pool_job *j = w->job;
        w->job = NULL;
        if (w->state != WORKER_GONE)
            loop__pool_drop_worker(w, cancel); /* else the loop's release reaps it */
        if (j && cancel)
            loop__pool_job_end(j, -ECANCELED, NULL);
        else if (j)
            free_job(j);
        w->state = WORKER_GONE;
    }
    struct pool_job *j;
    while ((j = loop__pool_pop(pool)) != NULL) {
        if (cancel)
            loop__pool_job_end(j, -ECANCELED, NULL);
        else
            free_job(j);
    }
    if (pool->done && cancel && !loop_future_done(pool->done))
        loop_future_cancel_now(pool->done);
    loop_future_unref(pool->done);
    pool->done = NULL;
    loop__process_pool_unlink(pool->reg, pool);
}

void loop__process_pool_orphan(loop_process_pool *pool)
{
    stop_all(pool, false);
    pool->loop = NULL;
    pool->reg = NULL;
}

void loop_process_pool_free(loop_process_pool *pool)
{
    if (!pool)
        return;
    if (pool->loop)
        stop_all(pool, true);
    loop__process_pool_mem(pool, pool->w, 0);
    loop__process_pool_mem(pool, pool->exe, 0);
    loop__process_pool_mem(pool, pool, 0);
}
