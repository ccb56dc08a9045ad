/*
 * The workers layer's shared state.  The supervisor (the thread that calls
 * loop_workers_start() and loop_workers_wait()) runs a small loop of its
 * own, `ctl`: it takes the stop signals, hears from the workers through
 * one eventfd (threads) or their pidfds and a pipe (processes), and runs
 * the drain deadline and the restart timers.  workers.c holds what both
 * modes share; threads.c and processes.c one mode each.
 */
#ifndef LOOP_WORKERS_INTERNAL_H
#define LOOP_WORKERS_INTERNAL_H

#include "loop_workers.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/types.h>

/* What a worker thread has reached, written by it (atomic, release). */
enum {
    W_STARTING = 0,
    W_READY = 1, /* setup returned 0; the loop runs */
    W_DONE = 2,  /* the loop ended, teardown ran, the loop is freed */
};

/* What the supervisor asks of a worker thread (atomic bits). */
#define W_REQ_DRAIN 1

struct worker {
    loop_workers *w;
    unsigned index;
    int err;           /* the worker's error (setup's, loop's, or -ECHILD) */
    bool setup_failed; /* err came from setup (or the process died before it reported) */
    bool reported;     /* supervisor: the start heard from it */
    bool ended;        /* supervisor: it ended (counted out of live) */
    bool draining;     /* on the worker's own loop: drain was called */

    /* threads */
    loop_t *loop; /* made by the start, freed by the worker thread */
    pthread_t thread;
    bool has_thread;
    bool has_lock;
    pthread_mutex_t lock; /* open and loop, for posters */
    bool open;            /* posts are accepted */
    int efd;              /* supervisor -> worker: look at req */
    int req;              /* atomic: W_REQ_* */
    int state;            /* atomic: W_* */

    /* processes */
    pid_t pid;           /* 0: no process now */
    int pidfd;           /* what tells its end: a pidfd, or the read end of its life pipe */
    uint64_t reap_delay; /* no pidfds: the wait before the next waitpid() */
    unsigned gen;        /* which start of this worker: reports of older ones are ignored */
    bool ready;          /* this process reported its setup done */
    uint64_t started;    /* loop_now(ctl) when forked */
    unsigned fails;      /* deaths in a row that came too soon */
    loop_handle restart;
    bool spawn_due; /* its restart timer fired: fork it once the loop returns */
};

struct loop_workers {
    loop_workers_options o;
    loop_options lo; /* a copy of *o.loop_options (zero if none); o.loop_options points here */
    pid_t owner;     /* the supervisor's process */
    loop_t *ctl;
    int ctl_efd;    /* anyone -> supervisor: look at the workers and stop_asked */
    int stop_asked; /* atomic */
    bool starting;  /* inside loop_workers_start() */
    bool stopping;
    bool must_stop;   /* an error, or a worker thread that ended by itself */
    bool spawn_due;   /* some worker's restart is due */
    bool running_ctl; /* inside start or wait: wait and free refuse */
    bool waited;
    bool timed_out;
    int err;            /* the first error after the start */
    unsigned live;      /* threads not done, processes not reaped */
    unsigned nreported; /* workers the start heard from */
    loop_handle deadline;
    int ready_pipe[2]; /* processes: worker -> supervisor reports */
    bool no_pidfd;     /* pidfd_open() is missing: life pipes and waitpid() */
    struct worker *v;
};

/* workers.c */
extern _Thread_local const loop_workers *loop__workers_here; /* this thread is its worker */
void *loop__workers_mem(loop_workers *w, void *ptr, size_t size);
void loop__workers_notify(loop_workers *w);
void loop__workers_event(loop_workers *w, loop_workers_event_kind kind, struct worker *wk, int code,
                         int status, uint64_t restart_in);
void loop__workers_error(loop_workers *w, int err);
void loop__workers_check(loop_workers *w);
void loop__workers_begin_stop(loop_workers *w);
void loop__workers_force_later(loop_workers *w);
int loop__workers_attach(loop_t *loop, struct worker *wk);
void loop__workers_drain(loop_t *loop, struct worker *wk);
void loop__workers_cpu(unsigned index, cpu_set_t *set);

/* threads.c */
int loop__workers_threads_start(loop_workers *w);
void loop__workers_threads_scan(loop_workers *w);
void loop__workers_threads_stop(loop_workers *w);
void loop__workers_threads_force(loop_workers *w);
void loop__workers_threads_join(loop_workers *w);
void loop__workers_threads_release(loop_workers *w);

/* processes.c */
int loop__workers_procs_start(loop_workers *w);
void loop__workers_procs_stop(loop_workers *w);
void loop__workers_procs_force(loop_workers *w);
void loop__workers_procs_respawn(loop_workers *w);
void loop__workers_procs_release(loop_workers *w);

#endif /* LOOP_WORKERS_INTERNAL_H */
