/*
 * Between the files of the pool layer only.
 *
 * Who touches what.  A pool's fields are in three groups:
 *   - the loop thread's (no lock): the chunks job records come from, the
 *     spare records, counts the loop alone changes, the eventfd's watch;
 *   - shared, under `mu`: the two queues, the thread counts, `stopping`;
 *   - the finished-job stack `done`, an atomic pointer: threads push onto
 *     it (a Treiber stack) and the loop takes all of it at once, so the
 *     loop never waits on a thread to collect completions.
 * A job record is the loop's while it is queued (under `mu`) or between
 * its delivery and its reuse; a thread's while it runs; the loop's again
 * once taken off `done`.  Its fields follow the same split.
 */
#ifndef LOOP_POOL_INTERNAL_H
#define LOOP_POOL_INTERNAL_H

#include "loop_pool.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>

/*
 * A job's own way of handing its outcome to its future, on the loop
 * thread, in place of loop_future_set_result() / set_error() (the name
 * resolution's: it copies what getaddrinfo() made first).  It returns 0
 * once f has taken the outcome (arg and result are then the hook's to
 * free), or what completing f returned, with nothing changed: -EINVAL
 * (f was done already: the outcome goes to drop) or -ENOMEM (the pool
 * tries again at the next iteration).
 */
typedef int loop__pool_complete_fn(loop_future *f, int status, void *arg, void *result);

enum job_state {
    JOB_QUEUED = 0, /* in a queue (under mu) */
    JOB_RUNNING,    /* taken by a thread (under mu) */
    JOB_OFF,        /* taken off its queue by the loop: it never runs */
};

/* Grouped by who writes, so that the loop's stores and a thread's do not
 * fight over one cache line more than they must. */
struct job {
    /* the loop thread's */
    struct job *lnext;   /* in pool->spare while not in use */
    loop_future *future; /* NULL: none, or let go (cancelled) */
    loop_pool_drop_fn *drop;
    loop_pool_done_fn *done;          /* loop_pool_call's: then future and drop are NULL */
    loop__pool_complete_fn *complete; /* NULL: the future takes status and result as they are */
    struct loop_pool *pool;
    bool listed;    /* outstanding (false once let go by loop_pool_free) */
    bool never_ran; /* on the ready list without having run: cancel, not complete */
    /* set before queueing, then read-only */
    bool slow;
    loop_pool_fn *fn;
    void *arg;
    /* under mu */
    enum job_state state;
    uint64_t seq; /* submission order, to merge the two queues */
    struct job *qprev, *qnext;
    /* written by the thread that ran it, read after it is taken off done */
    void *result;
    int status;
    struct job *done_next;
};

/* Job records come in chunks the pool owns: a child after fork, or
 * loop_free(), finds every outstanding job by walking them, and a record
 * is never freed on its own (an orphaned thread does not touch its job's
 * record once the job returns). */
#define POOL_CHUNK 32
struct job_chunk {
    struct job_chunk *next;
    struct job jobs[POOL_CHUNK];
};

enum worker_phase {
    WORKER_IDLE = 0, /* looking for a job, or waiting */
    WORKER_RUNNING,  /* in a job's fn */
    WORKER_RETURNED, /* the job returned: it will be pushed on done */
    WORKER_ORPHANED, /* loop_pool_free let go of it while it ran a job */
};

struct worker {
    struct loop_pool *pool;
    pthread_t thread;
    _Atomic int phase;         /* enum worker_phase; see loop__pool_worker_main */
    struct job *job;           /* what it runs (under mu) */
    struct worker *next;       /* in pool->workers (the loop thread's) */
    struct worker *sleep_next; /* in pool->sleepers (under mu) */
    sem_t wake;                /* it sleeps here, alone */
    /* the allocator, for an orphan to free itself */
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void *ctx;
};

struct job_queue {
    struct job *head, *tail;
    uint32_t n;
};

/* Space enough that the fields on either side never share a cache line. */
#define POOL_LINE 64

struct loop_pool {
    /* ---- set once ---- */
    loop_t *loop;
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void *ctx;
    unsigned max_threads, slow_cap;
    uint32_t capacity;
    unsigned fork_gen; /* loop__pool_fork_generation() when made */
    int efd;           /* the eventfd threads write when done goes non-empty */

    /* ---- the loop thread's ---- */
    struct job_chunk *chunks;       /* every record */
    struct job *spare;              /* records to reuse, linked by lnext */
    struct job *ready, *ready_tail; /* taken off done, not yet delivered */
    uint32_t outstanding;
    struct worker *workers; /* every thread started and not joined */
    loop_future *drained;   /* loop_pool_shutdown's future */
    loop_handle idle_check; /* the unwatch, two iterations after idle */
    unsigned idle_hops;
    bool watching; /* efd is watched by the loop */
    bool shut;     /* loop_pool_shutdown was called */
    bool dead;     /* in a child after fork: runs nothing */
    bool freeing;  /* loop_pool_free: completions go to futures but no retry */

    /* ---- shared, under mu ---- */
    char pad1[POOL_LINE];
    pthread_mutex_t mu;
    struct job_queue normal, slowq;
    uint64_t seq;
    unsigned nthreads;       /* started and not ended */
    unsigned awake;          /* not in a job, and will look at the queues before sleeping */
    unsigned nsleeping;      /* asleep, on the sleepers stack */
    bool spinning;           /* a thread waits for work without sleeping */
    struct worker *sleepers; /* the last to sleep first: its cache is warmest */
    unsigned slow_running;   /* slow jobs running */
    bool stopping;           /* threads end once nothing is left for them */

    /* ---- read without the lock ---- */
    char pad2[POOL_LINE];
    _Atomic uint32_t runnable_hint; /* loop__pool_runnable(), stored under mu: for the spinner */
    char pad3[POOL_LINE];
    _Atomic(struct job *) done; /* pushed by threads, taken by the loop */
    char pad4[POOL_LINE];
};

/* pool.c */
unsigned loop__pool_fork_generation(void);
bool loop__pool_forked(struct loop_pool *pool); /* and abandons it if so */
void loop__pool_abandon(struct loop_pool *pool);
void *loop__pool_mem(struct loop_pool *pool, void *ptr, size_t size);

/* submit.c */
void loop__pool_on_done(loop_t *loop, int fd, unsigned events, void *arg);
void loop__pool_deliver(struct loop_pool *pool);
void loop__pool_collect(struct loop_pool *pool);
void loop__pool_ready_push(struct loop_pool *pool, struct job *j);
void loop__pool_recycle(struct loop_pool *pool, struct job *j);
void loop__pool_forget(struct loop_pool *pool, struct job *j);
void loop__pool_release_future(struct job *j);
void loop__pool_finish(const struct job *j, int status, void *result);
void loop__pool_check_drained(struct loop_pool *pool);
void loop__pool_wake_self(struct loop_pool *pool);
int loop__pool_submit_hooked(loop_pool *pool, loop_pool_fn *fn, void *arg, unsigned flags,
                             loop_pool_drop_fn *drop, loop__pool_complete_fn *complete,
                             loop_future **out);

/* worker.c (the queues, under mu, and the threads) */
void loop__pool_enqueue(struct loop_pool *pool, struct job *j);
void loop__pool_unqueue(struct loop_pool *pool, struct job *j);
uint32_t loop__pool_runnable(const struct loop_pool *pool);
void loop__pool_update_hint(struct loop_pool *pool);
struct worker *loop__pool_wake_one(struct loop_pool *pool);
struct worker *loop__pool_wake_all(struct loop_pool *pool);
void loop__pool_post(struct worker *list);
struct job *loop__pool_take_queued(struct loop_pool *pool);
int loop__pool_start_thread(struct loop_pool *pool);

#endif
