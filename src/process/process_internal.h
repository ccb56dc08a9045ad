/*
 * The process layer's shared parts: the per-loop registry, the process
 * object, and the plan that a child carries out between clone and exec.
 */
#ifndef LOOP_PROCESS_INTERNAL_H
#define LOOP_PROCESS_INTERNAL_H

#include "loop_process.h"

#include <stdbool.h>
#include <stddef.h>

/* The stack a child runs on until it execs: system calls only. */
#define LOOP__PROCESS_STACK ((size_t)64 * 1024)

/* One fd the child gets: a copy of src (the parent's; -1: /dev/null) as dst. */
struct loop__fdmap {
    int src;
    int dst;
    int moved; /* the child's copy of src above every dst (the child sets it) */
};

/*
 * What the child does, made by the parent before the clone.  With CLONE_VM
 * the child reads it in place; under a tool that turns the clone into a
 * fork (valgrind) it reads its own copy.  Either way it only reads, except
 * map[].moved.
 */
struct loop__process_plan {
    const char *file;   /* the program, or the name to look up */
    const char *search; /* the PATH to look file up in; NULL: file is a path */
    char *const *argv;
    char *const *envp;
    const char *cwd; /* NULL: stay */
    int err_fd;      /* the write end of the errno pipe (close-on-exec) */
    int high;        /* above every dst, and at least 3 */
    int nmap;
    struct loop__fdmap *map; /* fds 0-2 first, then the rest by dst, rising */
    bool no_close_range;     /* close one fd at a time, up to max_fd */
    int max_fd;
};

/* The child's side: carry out the plan and exec; returns only on failure
 * (its exit status), after writing the errno to err_fd. */
int loop__process_child(void *plan);

/* clone(2) onto stack_top (clone_*.S): the child runs fn(arg) and exits. */
int loop__process_clone(int (*fn)(void *), void *arg, void *stack_top, unsigned long flags,
                        int *pidfd);

struct loop__process_registry {
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void *ctx;
    loop_process *all;        /* every process object of the loop */
    loop_process_pool *pools; /* every pool of the loop */
    unsigned char *stack;     /* the children's stack, made once */
    struct loop__fdmap *map;  /* scratch for the plan */
    size_t map_cap;
    int close_range;      /* 0: not probed yet; 1: the kernel has it; -1: not */
    bool no_pidfd_signal; /* pidfd_send_signal() said ENOSYS (valgrind 3.19) */
};

struct loop_process {
    loop_t *loop; /* NULL once the loop is freed */
    struct loop__process_registry *reg;
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void *ctx;
    loop_process *prev, *next; /* in reg->all */
    int pid;
    int pidfd;    /* -1 once reaped */
    int pipes[3]; /* the parent's ends not taken yet, or -1 */
    loop_future *exit;
    int returncode;
    int exit_err;  /* the exit future's error, if the status was lost */
    bool held;     /* the caller's handle is not freed */
    bool live;     /* not reaped: the pidfd is watched */
    bool settling; /* the exit future's completion is queued for a retry */
    /* Called once the child is reaped, before its exit future completes
     * (the pool's workers); it may free the handle. */
    void (*on_exit)(loop_process *p, void *arg);
    void *on_exit_arg;
};

/* This loop's registry, made on first use; NULL when memory ran out. */
struct loop__process_registry *loop__process_registry(loop_t *loop);

/* Memory of the registry's allocator. */
void *loop__process_mem(struct loop__process_registry *r, void *ptr, size_t size);

/* Make the process object of a new child and start watching it: 0, or
 * -ENOMEM (then nothing was made and the caller still owns the pidfd). */
int loop__process_adopt(loop_t *loop, loop_process *p);

/* Kill (SIGKILL) and reap a child: for failures after the clone and for
 * loop_free().  Blocks until the child is gone; returns its returncode. */
int loop__process_kill_reap(int pid, int pidfd, struct loop__process_registry *r);

/* Kill and reap p's child now, and complete its exit future. */
void loop__process_reap_now(loop_process *p);

/* Pools: listed in the registry, told when the loop goes. */
void loop__process_pool_orphan(loop_process_pool *pool);
void loop__process_pool_link(struct loop__process_registry *r, loop_process_pool *pool);
void loop__process_pool_unlink(struct loop__process_registry *r, loop_process_pool *pool);

/* The worker protocol (pool.c and worker.c). */
#define LOOP__WORKER_ARG "--libloop-process-worker"
#define LOOP__WORKER_IN 3              /* the worker reads jobs here */
#define LOOP__WORKER_OUT 4             /* and writes replies here */
#define LOOP__WORKER_MAGIC 0x4c505731u /* "LPW1" */
#define LOOP__WORKER_MAX_LEN ((size_t)1 << 30)

/* A job: id and length, then len bytes.  A reply: status (0 or -errno)
 * and length, then len bytes.  The first reply of a worker is its hello:
 * status = LOOP__WORKER_MAGIC, and the table's hash as length. */
struct loop__worker_header {
    int32_t word; /* job: the function's id; reply: the status */
    uint32_t pad;
    uint64_t len;
};

uint64_t loop__worker_table_hash(const loop_process_work *table, size_t n);

#endif /* LOOP_PROCESS_INTERNAL_H */
