/*
 * What both modes share: the options, the supervisor's loop (ctl) and its
 * state machine, the stop and its deadline, wait and free, and a worker's
 * view of itself (index, count, drain).
 *
 * The supervisor's loop runs in two stretches: inside loop_workers_start()
 * until every worker has reported its setup, and inside loop_workers_wait()
 * until every worker has ended after a stop.  Whatever happens (a worker
 * reports or ends, a signal, loop_workers_stop() from any thread) ends in
 * loop__workers_check(), which starts the stop when one is due and ends
 * the stretch when its condition holds.
 */
#include "workers_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_DRAIN_TIMEOUT LOOP_SEC(10)
#define DEFAULT_RESTART_DELAY LOOP_MS(100)
#define DEFAULT_RESTART_DELAY_MAX LOOP_SEC(10)
#define DEFAULT_RESTART_RESET LOOP_SEC(1)
#define FORCE_RETRY LOOP_MS(10) /* a forced stop that could not be posted is tried again */

static const char worker_key; /* the loop attachment that makes a loop a worker's */

static void *mem(const loop_options *lo, void *ptr, size_t size)
{
    if (lo->realloc)
        return lo->realloc(lo->alloc_ctx, ptr, size);
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, size);
}

void *loop__workers_mem(loop_workers *w, void *ptr, size_t size)
{
    return mem(&w->lo, ptr, size);
}

void loop__workers_notify(loop_workers *w)
{
    uint64_t one = 1;
    /* An eventfd write fails only when its counter is full: it is readable then. */
    ssize_t n = write(w->ctl_efd, &one, sizeof one);
    (void)n;
}

void loop__workers_event(loop_workers *w, loop_workers_event_kind kind, struct worker *wk, int code,
                         int status, uint64_t restart_in)
{
    if (!w->o.on_event)
        return;
    loop_workers_event e = {
        .kind = kind,
        .index = wk->index,
        .pid = w->o.mode == LOOP_WORKERS_PROCESSES ? (int)wk->pid : (int)getpid(),
        .code = code,
        .status = status,
        .restart_in_ns = restart_in,
    };
    w->o.on_event(w, &e, w->o.arg);
}

/* Record the first error; any error stops the workers. */
void loop__workers_error(loop_workers *w, int err)
{
    if (!err)
        return;
    if (!w->err)
        w->err = err;
    w->must_stop = true;
}

/* ---- the stop ------------------------------------------------------------ */

static void on_deadline(loop_t *ctl, void *arg)
{
    loop_workers *w = arg;

    (void)ctl;
    w->deadline = (loop_handle){0};
    if (w->live == 0)
        return;
    if (!w->timed_out) {
        w->timed_out = true;
        loop__workers_error(w, -ETIMEDOUT);
    }
    if (w->o.mode == LOOP_WORKERS_THREADS)
        loop__workers_threads_force(w);
    else
        loop__workers_procs_force(w);
}

/* Called by a mode whose forced stop could not reach every worker yet. */
void loop__workers_force_later(loop_workers *w)
{
    if (loop_call_later(w->ctl, FORCE_RETRY, on_deadline, w, &w->deadline) != 0)
        w->deadline = (loop_handle){0}; /* the next event will look again */
}

void loop__workers_begin_stop(loop_workers *w)
{
    w->stopping = true;
    if (w->o.mode == LOOP_WORKERS_THREADS)
        loop__workers_threads_stop(w);
    else
        loop__workers_procs_stop(w);
    if (w->live == 0 || w->o.drain_timeout_ns == UINT64_MAX)
        return;
    /* Without a deadline a stuck drain would hang the stop: stop them now. */
    if (loop_call_later(w->ctl, w->o.drain_timeout_ns, on_deadline, w, &w->deadline) != 0) {
        loop__workers_error(w, -ENOMEM);
        on_deadline(w->ctl, w);
    }
}

/* Has the current stretch of the supervisor's loop reached its end? */
static bool stretch_done(const loop_workers *w)
{
    if (w->stopping && w->live == 0)
        return true;
    return w->starting && w->nreported == w->o.count;
}

void loop__workers_check(loop_workers *w)
{
    if (w->o.mode == LOOP_WORKERS_THREADS)
        loop__workers_threads_scan(w);
    if (!w->starting && !w->stopping &&
        (__atomic_load_n(&w->stop_asked, __ATOMIC_ACQUIRE) || w->must_stop))
        loop__workers_begin_stop(w);
    if (w->stopping && w->live == 0)
        loop_cancel(w->ctl, w->deadline);
    if (stretch_done(w))
        loop_stop(w->ctl);
}

static void on_ctl_efd(loop_t *ctl, int fd, unsigned events, void *arg)
{
    uint64_t n;

    (void)ctl;
    (void)events;
    ssize_t got = read(fd, &n, sizeof n);
    (void)got;
    loop__workers_check(arg);
}

static void on_ctl_signal(loop_t *ctl, void *arg)
{
    loop_workers *w = arg;

    (void)ctl;
    __atomic_store_n(&w->stop_asked, 1, __ATOMIC_RELEASE);
    loop__workers_check(w);
}

/* Run the supervisor's loop until the stretch is done. */
static void run_ctl(loop_workers *w)
{
    static const struct timespec pause = {0, 1000000};

    w->running_ctl = true;
    loop__workers_check(w);
    while (!stretch_done(w)) {
        /* -ENOMEM: the loop could not grow a queue; it may be run again. */
        if (loop_run(w->ctl) == -ENOMEM)
            nanosleep(&pause, NULL);
        /* Forks happen here, outside the loop's callbacks, so that the
         * child can free its copy of the supervisor's loop. */
        if (w->o.mode == LOOP_WORKERS_PROCESSES)
            loop__workers_procs_respawn(w);
        loop__workers_check(w);
    }
    w->running_ctl = false;
}

/* ---- start, wait, free ---------------------------------------------------- */

static int validate(const loop_workers_options *o)
{
    if (!o || !o->setup || o->count == 0 || o->count > LOOP_WORKERS_MAX)
        return -EINVAL;
    if (o->mode != LOOP_WORKERS_THREADS && o->mode != LOOP_WORKERS_PROCESSES)
        return -EINVAL;
    if (o->loop_options && o->loop_options->clock != LOOP_CLOCK_MONOTONIC &&
        o->loop_options->clock != LOOP_CLOCK_VIRTUAL)
        return -EINVAL;
    return 0;
}

static void set_defaults(loop_workers_options *o)
{
    if (!o->drain_timeout_ns)
        o->drain_timeout_ns = DEFAULT_DRAIN_TIMEOUT;
    if (!o->restart_delay_ns)
        o->restart_delay_ns = DEFAULT_RESTART_DELAY;
    if (!o->restart_delay_max_ns)
        o->restart_delay_max_ns = DEFAULT_RESTART_DELAY_MAX;
    if (o->restart_delay_max_ns < o->restart_delay_ns)
        o->restart_delay_max_ns = o->restart_delay_ns;
    if (!o->restart_reset_ns)
        o->restart_reset_ns = DEFAULT_RESTART_RESET;
}

static int open_ctl(loop_workers *w)
{
    loop_options lo = {.realloc = w->lo.realloc, .alloc_ctx = w->lo.alloc_ctx};
    int err = loop_new_with(&w->ctl, &lo);

    if (err)
        return err;
    w->ctl_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->ctl_efd < 0)
        return -errno;
    err = loop_add_reader(w->ctl, w->ctl_efd, on_ctl_efd, w);
    if (!err && w->o.stop_on_signals)
        err = loop_add_signal(w->ctl, SIGTERM, on_ctl_signal, w);
    if (!err && w->o.stop_on_signals)
        err = loop_add_signal(w->ctl, SIGINT, on_ctl_signal, w);
    return err;
}

/* Free what the group holds; its workers have all ended (or never began). */
static void release(loop_workers *w)
{
    if (w->o.mode == LOOP_WORKERS_THREADS)
        loop__workers_threads_release(w);
    else
        loop__workers_procs_release(w);
    if (w->ctl)
        loop_free(w->ctl); /* also gives the signals back */
    if (w->ctl_efd >= 0)
        close(w->ctl_efd);
    loop__workers_mem(w, w->v, 0);
    loop__workers_mem(w, w, 0);
}

/* The error a failed start returns: the lowest index's setup error. */
static int setup_error(const loop_workers *w)
{
    for (unsigned i = 0; i < w->o.count; i++)
        if (w->v[i].setup_failed)
            return w->v[i].err;
    return 0;
}

static int start_workers(loop_workers *w)
{
    w->v = loop__workers_mem(w, NULL, w->o.count * sizeof *w->v);
    if (!w->v)
        return -ENOMEM;
    memset(w->v, 0, w->o.count * sizeof *w->v);
    for (unsigned i = 0; i < w->o.count; i++) {
        w->v[i].w = w;
        w->v[i].index = i;
        w->v[i].efd = -1;
        w->v[i].pidfd = -1;
    }
    w->starting = true;
    int err = w->o.mode == LOOP_WORKERS_THREADS ? loop__workers_threads_start(w)
                                                : loop__workers_procs_start(w);
    run_ctl(w); /* until every worker started has reported */
    w->starting = false;
    if (!err)
        err = setup_error(w);
    if (err) {
        if (!w->stopping)
            loop__workers_begin_stop(w);
        run_ctl(w);
        if (w->o.mode == LOOP_WORKERS_THREADS)
            loop__workers_threads_join(w);
    }
    return err;
}

int loop_workers_start(loop_workers **out, const loop_workers_options *opts)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    int err = validate(opts);
    if (err)
        return err;
    loop_options lo = opts->loop_options ? *opts->loop_options : (loop_options){0};
    loop_workers *w = mem(&lo, NULL, sizeof *w);
    if (!w)
        return -ENOMEM;
    memset(w, 0, sizeof *w);
    w->o = *opts;
    w->lo = lo;
    w->o.loop_options = &w->lo;
    set_defaults(&w->o);
    w->owner = getpid();
    w->ctl_efd = w->ready_pipe[0] = w->ready_pipe[1] = -1;

    err = open_ctl(w);
    if (!err)
        err = start_workers(w);
    if (err) {
        release(w);
        return err;
    }
    *out = w;
    return 0;
}

/* The group whose worker runs on this thread, if any (set by threads.c). */
_Thread_local const loop_workers *loop__workers_here;

int loop_workers_wait(loop_workers *w)
{
    if (!w)
        return -EINVAL;
    if (w->owner != getpid())
        return -EPERM;
    if (loop__workers_here == w || w->running_ctl)
        return -EBUSY;
    if (!w->waited) {
        run_ctl(w);
        if (w->o.mode == LOOP_WORKERS_THREADS)
            loop__workers_threads_join(w);
        w->waited = true;
    }
    return w->err;
}

int loop_workers_stop(loop_workers *w)
{
    if (!w)
        return -EINVAL;
    if (w->owner != getpid())
        return -EPERM;
    __atomic_store_n(&w->stop_asked, 1, __ATOMIC_RELEASE);
    loop__workers_notify(w);
    return 0;
}

int loop_workers_free(loop_workers *w)
{
    if (!w)
        return 0;
    if (w->owner != getpid())
        return -EPERM;
    if (loop__workers_here == w || w->running_ctl)
        return -EBUSY;
    if (!w->waited) {
        loop_workers_stop(w);
        loop_workers_wait(w);
    }
    release(w);
    return 0;
}

/* ---- a worker's view of itself ------------------------------------------- */

static void no_release(loop_t *loop, void *data)
{
    (void)loop;
    (void)data;
}

int loop__workers_attach(loop_t *loop, struct worker *wk)
{
    return loop_attach(loop, &worker_key, wk, no_release);
}

int loop_workers_index(const loop_t *loop)
{
    if (!loop)
        return -EINVAL;
    const struct worker *wk = loop_attached(loop, &worker_key);
    return wk ? (int)wk->index : -ENOENT;
}

int loop_workers_count(const loop_t *loop)
{
    if (!loop)
        return -EINVAL;
    const struct worker *wk = loop_attached(loop, &worker_key);
    return wk ? (int)wk->w->o.count : -ENOENT;
}

loop_workers *loop_workers_of(const loop_t *loop)
{
    const struct worker *wk = loop ? loop_attached(loop, &worker_key) : NULL;
    return wk ? wk->w : NULL;
}

/*
 * On the worker's loop, when the stop reaches it: stop listening for the
 * stop (so that the loop can end once its work is done), then drain.
 */
void loop__workers_drain(loop_t *loop, struct worker *wk)
{
    const loop_workers_options *o = &wk->w->o;

    if (wk->draining)
        return;
    wk->draining = true;
    if (o->mode == LOOP_WORKERS_THREADS) {
        loop_remove_reader(loop, wk->efd);
    } else {
        loop_remove_signal(loop, SIGTERM);
        loop_remove_signal(loop, SIGINT);
    }
    if (o->drain)
        o->drain(loop, wk->index, o->arg);
    else
        loop_stop(loop);
}

void loop__workers_cpu(unsigned index, cpu_set_t *set)
{
    cpu_set_t allowed;

    CPU_ZERO(set);
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || CPU_COUNT(&allowed) == 0)
        return;
    unsigned k = index % (unsigned)CPU_COUNT(&allowed);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &allowed) && k-- == 0) {
            CPU_SET(cpu, set);
            return;
        }
    }
}
