/*
 * Threads mode: one loop per thread.
 *
 * The start makes every worker's loop, lock and eventfd on the
 * supervisor's thread, so that all can fail there with nothing running
 * and a worker's setup may post to any other worker; then it starts the
 * threads.  A worker thread runs setup, then its loop, which its eventfd
 * keeps alive until a stop reaches it: then it drains (loop__workers_drain
 * removes the eventfd) and the loop ends when nothing is left in it, or
 * when the supervisor posts a loop_stop() at the deadline.  It tells the
 * supervisor each step through the supervisor's eventfd.
 *
 * Posts: a poster holds the worker's lock while it posts, and the worker
 * closes posts under that lock once its loop has ended, then runs one more
 * iteration, so that every call accepted runs, and none reaches a freed
 * loop.
 */
#include "workers_internal.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void on_worker_efd(loop_t *loop, int fd, unsigned events, void *arg)
{
    struct worker *wk = arg;
    uint64_t n;

    (void)events;
    ssize_t got = read(fd, &n, sizeof n);
    (void)got;
    if (__atomic_load_n(&wk->req, __ATOMIC_ACQUIRE) & W_REQ_DRAIN)
        loop__workers_drain(loop, wk);
}

/* Make worker wk's lock, eventfd and loop, on the supervisor's thread. */
static int make_worker(loop_workers *w, struct worker *wk)
{
    int err = pthread_mutex_init(&wk->lock, NULL);

    if (err)
        return -err;
    wk->has_lock = true;
    wk->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wk->efd < 0)
        return -errno;
    err = loop_new_with(&wk->loop, &w->lo);
    if (!err)
        err = loop__workers_attach(wk->loop, wk);
    if (!err)
        err = loop_add_reader(wk->loop, wk->efd, on_worker_efd, wk);
    if (!err)
        wk->open = true;
    return err;
}

static void pin(unsigned index)
{
    cpu_set_t set;

    loop__workers_cpu(index, &set);
    if (CPU_COUNT(&set) > 0)
        (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set); /* best effort */
}

/*
 * One iteration without waiting, for the calls posted before posts were
 * closed (they join the ready queue in the iteration's I/O phase).  A
 * queue that could not grow is tried again.
 */
static void run_posted(loop_t *loop)
{
    for (int i = 0; i < 1000 && loop_run_once(loop, 0) == -ENOMEM; i++)
        ;
}

static void close_posts(struct worker *wk)
{
    pthread_mutex_lock(&wk->lock);
    wk->open = false;
    pthread_mutex_unlock(&wk->lock);
}

static void *worker_main(void *arg)
{
    struct worker *wk = arg;
    loop_workers *w = wk->w;
    loop_t *loop = wk->loop;

    loop__workers_here = w;
    if (w->o.pin)
        pin(wk->index);
    int err = w->o.setup(loop, wk->index, w->o.arg);
    if (err) {
        wk->setup_failed = true;
    } else {
        __atomic_store_n(&wk->state, W_READY, __ATOMIC_RELEASE);
        loop__workers_notify(w);
        err = loop_run(loop);
    }
    close_posts(wk);
    run_posted(loop);
    if (!wk->setup_failed && w->o.teardown)
        w->o.teardown(loop, wk->index, w->o.arg);
    loop_free(loop);
    wk->loop = NULL;
    wk->err = err;
    __atomic_store_n(&wk->state, W_DONE, __ATOMIC_RELEASE);
    loop__workers_notify(w); /* w lives on: the supervisor joins this thread first */
    return NULL;
}

/* A worker that never got a thread: the start heard all it will hear. */
static void never_started(loop_workers *w, struct worker *wk)
{
    wk->reported = wk->ended = true;
    w->nreported++;
}

int loop__workers_threads_start(loop_workers *w)
{
    unsigned i;
    int err = 0;

    for (i = 0; i < w->o.count && !err; i++)
        err = make_worker(w, &w->v[i]);
    if (err) {
        for (i = 0; i < w->o.count; i++)
            never_started(w, &w->v[i]);
        return err;
    }
    /* The stop signals go to the supervisor, not to the workers. */
    sigset_t block, old;
    sigemptyset(&block);
    if (w->o.stop_on_signals) {
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGINT);
    }
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (i = 0; i < w->o.count; i++) {
        struct worker *wk = &w->v[i];
        int e = pthread_create(&wk->thread, NULL, worker_main, wk);
        if (e) {
            err = -e;
            break;
        }
        wk->has_thread = true;
        w->live++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    for (; i < w->o.count; i++)
        never_started(w, &w->v[i]);
    return err;
}

/* What the worker threads reached since the last look. */
void loop__workers_threads_scan(loop_workers *w)
{
    for (unsigned i = 0; i < w->o.count; i++) {
        struct worker *wk = &w->v[i];
        if (wk->ended)
            continue;
        int st = __atomic_load_n(&wk->state, __ATOMIC_ACQUIRE);
        if (st == W_STARTING)
            continue;
        if (!wk->reported) {
            wk->reported = true;
            w->nreported++;
            if (!wk->setup_failed)
                loop__workers_event(w, LOOP_WORKERS_READY, wk, 0, 0, 0);
        }
        if (st != W_DONE)
            continue;
        wk->ended = true;
        w->live--;
        if (!wk->setup_failed) {
            loop__workers_error(w, wk->err);
            if (!w->stopping)
                w->must_stop = true; /* a worker ended by itself: the others follow */
        }
        loop__workers_event(w, LOOP_WORKERS_EXITED, wk, CLD_EXITED, wk->err ? 1 : 0, UINT64_MAX);
    }
}

void loop__workers_threads_stop(loop_workers *w)
{
    for (unsigned i = 0; i < w->o.count; i++) {
        struct worker *wk = &w->v[i];
        if (!wk->has_thread || wk->ended)
            continue;
        uint64_t one = 1;
        __atomic_or_fetch(&wk->req, W_REQ_DRAIN, __ATOMIC_RELEASE);
        ssize_t n = write(wk->efd, &one, sizeof one);
        (void)n;
    }
}

static void force_stop(loop_t *loop, void *arg)
{
    (void)arg;
    loop_stop(loop);
}

/* The deadline: end the loops still running, whatever they hold. */
void loop__workers_threads_force(loop_workers *w)
{
    bool again = false;

    for (unsigned i = 0; i < w->o.count; i++) {
        struct worker *wk = &w->v[i];
        if (!wk->has_thread || wk->ended)
            continue;
        pthread_mutex_lock(&wk->lock);
        if (wk->open && loop_call_soon_threadsafe(wk->loop, force_stop, NULL) != 0)
            again = true;
        pthread_mutex_unlock(&wk->lock);
    }
    if (again)
        loop__workers_force_later(w);
}

void loop__workers_threads_join(loop_workers *w)
{
    for (unsigned i = 0; i < w->o.count; i++) {
        if (w->v[i].has_thread) {
            pthread_join(w->v[i].thread, NULL);
            w->v[i].has_thread = false;
        }
    }
}

void loop__workers_threads_release(loop_workers *w)
{
    if (!w->v)
        return;
    for (unsigned i = 0; i < w->o.count; i++) {
        struct worker *wk = &w->v[i];
        if (wk->loop) { /* never got a thread: run what was posted to it, then free */
            wk->open = false;
            run_posted(wk->loop);
            loop_free(wk->loop);
            wk->loop = NULL;
        }
        if (wk->efd >= 0)
            close(wk->efd);
        if (wk->has_lock)
            pthread_mutex_destroy(&wk->lock);
    }
}

int loop_workers_post(loop_workers *w, unsigned index, loop_fn *fn, void *arg)
{
    if (!w || !fn)
        return -EINVAL;
    if (w->owner != getpid())
        return -EPERM;
    if (w->o.mode != LOOP_WORKERS_THREADS)
        return -EOPNOTSUPP;
    if (index >= w->o.count)
        return -EINVAL;
    struct worker *wk = &w->v[index];
    pthread_mutex_lock(&wk->lock);
    int err = wk->open ? loop_call_soon_threadsafe(wk->loop, fn, arg) : -ESHUTDOWN;
    pthread_mutex_unlock(&wk->lock);
    return err;
}
