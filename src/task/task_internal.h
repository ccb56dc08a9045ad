/*
 * Between the task layer's files: the task and the per-loop registry.
 * task.c owns their lifetime and the step; await.c suspends a task.
 */
#ifndef LOOP_TASK_INTERNAL_H
#define LOOP_TASK_INTERNAL_H

#include "loop_coro.h"
#include "loop_task.h"

#include <stdbool.h>
#include <stdint.h>

typedef void *loop__task_realloc_fn(void *ctx, void *ptr, size_t size);

/* Each loop with tasks has one, attached with loop_attach(). */
struct loop__task_registry {
    loop__task_realloc_fn *realloc;
    void *ctx;
    loop_task *head, *tail; /* every task not yet freed, in spawn order */
    uint64_t spawned;       /* for default names */
    loop_task *spare;       /* freed tasks kept for the next spawns, by next */
    uint32_t nspare;
    bool closing; /* loop_free() is unwinding the tasks */
};

enum loop__task_state {
    LOOP__TASK_CREATED,   /* first step scheduled, body not started */
    LOOP__TASK_RUNNING,   /* its coroutine runs */
    LOOP__TASK_SUSPENDED, /* waits for a future or a call_soon step */
    LOOP__TASK_DONE,
};

struct loop_task {
    loop_t *loop; /* NULL once the loop is freed */
    struct loop__task_registry *reg;
    loop_task *prev, *next;         /* in reg */
    loop__task_realloc_fn *realloc; /* the loop's allocator, kept to outlive it */
    void *ctx;
    uint32_t refs;
    enum loop__task_state state;
    loop_task_fn *fn;
    void *arg;
    loop_coro *coro;      /* NULL once finished */
    loop_future *future;  /* the outcome; referenced until the task is freed */
    loop_future *waiting; /* the future it is suspended on (referenced), or NULL */
    bool must_cancel;     /* a cancel to deliver at the next step */
    bool cancelling;      /* inside loop_task_cancel(): a cycle of awaits ends here */
    bool cycled;          /* ...and it did */
    bool sleeping;        /* in loop_task_sleep(d > 0), for the dump */
    int in_err;           /* what the step delivers to the await */
    void *in_result;
    int out_err; /* what fn returned */
    void *out_result;
    char *name;            /* set by loop_task_set_name(), or NULL */
    uint64_t number;       /* N of the default name "Task-N" */
    char default_name[24]; /* made when first asked for */
};

/* The loop's registry, or NULL if it never had a task. */
struct loop__task_registry *loop__task_registry(const loop_t *loop);

/* The task running on this thread (inside its own coroutine), or NULL. */
loop_task *loop__task_running(void);

/* Suspend the running task t until its next step; returns what it delivers. */
int loop__task_suspend(loop_task *t, void **result);

/* The step as a callback (first step, sleep(0)). */
void loop__task_soon_step(loop_t *loop, void *arg);

/* The done callback of the future a task awaits. */
void loop__task_wake(loop_future *f, void *arg);

#endif /* LOOP_TASK_INTERNAL_H */
