/*
 * The process pool's structures, shared by pool.c (the API, jobs and the
 * pool's lifetime) and pool_io.c (the workers: start, send, receive, exit).
 */
#ifndef LOOP_POOL_INTERNAL_H
#define LOOP_POOL_INTERNAL_H

#include "process_internal.h"

struct pool_job {
    loop_process_pool *pool;
    loop_future *f; /* the job's own reference */
    int id;
    unsigned char *data; /* a copy of the input, until sent */
    size_t len;
    struct pool_job *prev, *next; /* in the queue while not started; then in
                                     the settling list while a retry waits */
    loop_handle retry;
    bool running;
    /* The outcome, kept while completing it waits for a retry. */
    int err;
    loop_process_bytes *reply;
};

/* A reply: what the caller sees, the allocator to free it with, the bytes. */
struct pool_reply {
    loop_process_bytes pub; /* first: the caller's pointer is the box's */
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void *ctx;
};

enum worker_state {
    WORKER_GONE = 0, /* no process in this slot */
    WORKER_STARTING, /* spawned; its hello not read yet */
    WORKER_IDLE,
    WORKER_BUSY,
};

struct pool_worker {
    loop_process_pool *pool;
    loop_process *proc;
    enum worker_state state;
    int in_fd;     /* the parent's end of the job pipe, or -1 once closed */
    int out_fd;    /* the parent's end of the reply pipe, or -1 */
    bool writing;  /* a writer is registered on in_fd */
    bool expected; /* its exit was asked for (the pool closed it or killed it) */
    struct pool_job *job;
    struct loop__worker_header send_h;
    size_t sent; /* of the header and the data */
    struct loop__worker_header recv_h;
    size_t got; /* of the header and the payload */
    loop_process_bytes *reply;
    bool discard; /* the reply could not be stored: read and drop it */
    int refuse;   /* the job's error when the reply is dropped */
};

struct loop_process_pool {
    loop_t *loop; /* NULL once the loop is freed */
    struct loop__process_registry *reg;
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void *ctx;
    loop_process_pool *prev, *next; /* in reg->pools */
    const loop_process_work *table;
    size_t n;
    uint64_t hash;
    char *exe;
    unsigned nworkers;
    struct pool_worker *w;
    struct pool_job *head, *tail; /* jobs not started */
    struct pool_job *settling;    /* jobs whose completion waits for a retry */
    bool shutdown;
    bool closing; /* being freed: completions are not retried */
    bool failed;
    loop_future *done; /* the shutdown's */
    loop_process_pool_stats_t stats;
};

void *loop__process_pool_mem(loop_process_pool *pool, void *ptr, size_t size);

/* pool_io.c */
int loop__pool_start_worker(struct pool_worker *w);
void loop__pool_dispatch(loop_process_pool *pool);
void loop__pool_drop_worker(struct pool_worker *w, bool reap);

/* pool.c */
void loop__pool_job_end(struct pool_job *j, int err, loop_process_bytes *reply);
void loop__pool_fail(loop_process_pool *pool);
void loop__pool_check_done(loop_process_pool *pool);
struct pool_job *loop__pool_pop(loop_process_pool *pool);

#endif /* LOOP_POOL_INTERNAL_H */
