/*
 * The pool's workers: starting one, sending it a job, reading its reply,
 * and what happens when it exits.
 *
 * Each worker has two pipes, non-blocking on the parent's side: jobs go
 * out on one (a writer is registered only while a job does not fit), and
 * replies come back on the other (always watched).  A worker's death is
 * learnt from its pidfd (the process layer's exit hook), which also reads
 * whatever reply it wrote before it died.
 */
#include "pool_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static void on_reply(loop_t *loop, int fd, unsigned events, void *arg);
static void on_writable(loop_t *loop, int fd, unsigned events, void *arg);
static void on_worker_exit(loop_process *p, void *arg);

/* ---- starting and dropping ---------------------------------------------------- */

static void close_pair(int p[2])
{
    for (int i = 0; i < 2; i++)
        if (p[i] >= 0)
            close(p[i]);
}

static int make_pipe(int p[2])
{
    if (pipe2(p, O_CLOEXEC) != 0)
        return -errno;
    return 0;
}

/* The worker's two pipes, non-blocking on the parent's side. */
static int make_pipes(int jobs[2], int replies[2])
{
    int err = make_pipe(jobs);
    if (!err)
        err = make_pipe(replies);
    if (!err &&
        (fcntl(jobs[1], F_SETFL, O_NONBLOCK) != 0 || fcntl(replies[0], F_SETFL, O_NONBLOCK) != 0))
        err = -errno;
    return err;
}

/*
 * The replies are watched before the worker exists, so that nothing can
 * fail once it does: a worker is never started only to be killed.
 */
int loop__pool_start_worker(struct pool_worker *w)
{
    loop_process_pool *pool = w->pool;
    int jobs[2] = {-1, -1}, replies[2] = {-1, -1};
    int err = make_pipes(jobs, replies);
    if (!err)
        err = loop_add_reader(pool->loop, replies[0], on_reply, w);
    if (!err) {
        char *argv[] = {pool->exe, (char *)LOOP__WORKER_ARG, NULL};
        loop_process_fd fds[] = {{jobs[0], LOOP__WORKER_IN}, {replies[1], LOOP__WORKER_OUT}};
        loop_process_options o = {.argv = argv, .fds = fds, .nfds = 2};
        o.stdio[0].mode = LOOP_PROCESS_DEVNULL;
        err = loop_process_spawn(pool->loop, &o, &w->proc);
        if (err)
            loop_remove_reader(pool->loop, replies[0]);
    }
    int ends[2] = {jobs[0], replies[1]}; /* the worker's: its copies are in it */
    close_pair(ends);
    jobs[0] = replies[1] = -1;
    if (err) {
        close_pair(jobs);
        close_pair(replies);
        return err;
    }
    w->proc->on_exit = on_worker_exit;
    w->proc->on_exit_arg = w;
    w->in_fd = jobs[1];
    w->out_fd = replies[0];
    w->state = WORKER_STARTING;
    w->expected = false;
    w->writing = false;
    w->job = NULL;
    w->got = 0;
    pool->stats.started++;
    pool->stats.workers++;
    return 0;
}

static void close_jobs(struct pool_worker *w)
{
    if (w->in_fd < 0)
        return;
    if (w->writing && w->pool->loop)
        loop_remove_writer(w->pool->loop, w->in_fd);
    w->writing = false;
    close(w->in_fd);
    w->in_fd = -1;
}

static void close_replies(struct pool_worker *w)
{
    if (w->out_fd < 0)
        return;
    if (w->pool->loop)
        loop_remove_reader(w->pool->loop, w->out_fd);
    close(w->out_fd);
    w->out_fd = -1;
}

static void drop_reply(struct pool_worker *w)
{
    loop_process_bytes_free(w->reply);
    w->reply = NULL;
    w->discard = false;
    w->got = 0;
}

/*
 * Let go of a worker's process: its fds are closed, and it is no longer
 * the pool's.  reap kills and reaps it now; else the loop reaps it when it
 * exits.  The job it ran, if any, is the caller's to end.
 */
void loop__pool_drop_worker(struct pool_worker *w, bool reap)
{
    close_jobs(w);
    close_replies(w);
    drop_reply(w);
    if (w->proc) {
        w->proc->on_exit = NULL;
        if (reap)
            loop__process_reap_now(w->proc);
        loop_process_free(w->proc);
        w->proc = NULL;
        w->pool->stats.workers--;
    }
    w->state = WORKER_GONE;
}

/* A worker that broke the protocol: its job (if any) fails with -EPROTO,
 * and it is killed; its exit replaces it. */
static void refuse(struct pool_worker *w)
{
    struct pool_job *j = w->job;
    w->job = NULL;
    if (j)
        loop__pool_job_end(j, -EPROTO, NULL);
    w->expected = true;
    close_jobs(w);
    close_replies(w);
    drop_reply(w);
    loop_process_signal(w->proc, SIGKILL);
}

/* ---- sending ------------------------------------------------------------------ */

/*
 * A worker that died leaves its job pipe without a reader, and a write to
 * it raises SIGPIPE, whose default action would end the program.  So
 * SIGPIPE is blocked in this thread around the write, and the one a write
 * that failed with EPIPE raised is consumed before the mask is restored,
 * unless one was pending already: that one is the program's, and it is
 * left (the write's with it: a standard signal does not queue).  The
 * stream layer writes its pipes the same way.
 */
static ssize_t writev_nosignal(int fd, const struct iovec *iov, int n)
{
    sigset_t pipe_only, old, pending;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    bool was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    ssize_t put = writev(fd, iov, n);
    int err = errno;
    if (put < 0 && err == EPIPE && !was_pending) {
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_only, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return put;
}

static void sent_all(struct pool_worker *w)
{
    struct pool_job *j = w->job;
    if (w->writing)
        loop_remove_writer(w->pool->loop, w->in_fd);
    w->writing = false;
    loop__process_pool_mem(w->pool, j->data, 0);
    j->data = NULL;
}

static void send_more(struct pool_worker *w)
{
    struct pool_job *j = w->job;
    size_t total = sizeof(w->send_h) + j->len;
    while (w->sent < total) {
        struct iovec iov[2];
        int n = 0;
        if (w->sent < sizeof(w->send_h))
            iov[n++] = (struct iovec){(char *)&w->send_h + w->sent, sizeof(w->send_h) - w->sent};
        size_t off = w->sent > sizeof(w->send_h) ? w->sent - sizeof(w->send_h) : 0;
        if (j->len > off)
            iov[n++] = (struct iovec){j->data + off, j->len - off};
        ssize_t put = writev_nosignal(w->in_fd, iov, n);
        if (put < 0 && errno == EINTR)
            continue;
        if (put < 0 && errno == EAGAIN) {
            if (w->writing)
                return;
            if (loop_add_writer(w->pool->loop, w->in_fd, on_writable, w) == 0) {
                w->writing = true;
                return;
            }
            /* Half a job is out and the rest cannot wait: give up on it. */
            w->job = NULL;
            loop__pool_job_end(j, -ENOMEM, NULL);
            refuse(w);
            return;
        }
        if (put < 0) {
            close_jobs(w); /* EPIPE: the worker is dying; its exit ends the job */
            return;
        }
        w->sent += (size_t)put;
    }
    sent_all(w);
}

static void on_writable(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    send_more(arg);
}

/* Give idle workers the jobs waiting; after a shutdown, close the job pipe
 * of each worker that has nothing left to do, so that it exits. */
void loop__pool_dispatch(loop_process_pool *pool)
{
    for (unsigned i = 0; i < pool->nworkers; i++) {
        struct pool_worker *w = &pool->w[i];
        if (w->state != WORKER_IDLE || w->in_fd < 0)
            continue;
        struct pool_job *j = loop__pool_pop(pool);
        if (!j) {
            if (pool->shutdown) {
                w->expected = true;
                close_jobs(w);
            }
            continue;
        }
        j->running = true;
        w->job = j;
        w->state = WORKER_BUSY;
        w->send_h = (struct loop__worker_header){.word = j->id, .len = j->len};
        w->sent = 0;
        send_more(w);
    }
}

/* ---- receiving ---------------------------------------------------------------- */

/* The header of a reply is in: the hello, or a job's outcome.  Returns
 * false if the worker was refused. */
static bool header_in(struct pool_worker *w)
{
    loop_process_pool *pool = w->pool;
    if (w->state == WORKER_STARTING) {
        w->got = 0;
        if (w->recv_h.word != (int32_t)LOOP__WORKER_MAGIC || w->recv_h.len != pool->hash) {
            refuse(w);
            pool->stats.died++; /* counted here: a refusal is not asked for */
            pool->stats.last_returncode = -SIGKILL;
            loop__pool_fail(pool);
            return false;
        }
        w->state = WORKER_IDLE;
        loop__pool_dispatch(pool);
        return true;
    }
    if (w->state != WORKER_BUSY || !w->job || w->recv_h.len > LOOP__WORKER_MAX_LEN ||
        w->recv_h.word > 0 || (w->recv_h.word < 0 && w->recv_h.len)) {
        refuse(w);
        return false;
    }
    if (w->recv_h.word == 0) {
        size_t len = (size_t)w->recv_h.len;
        struct pool_reply *box = loop__process_pool_mem(pool, NULL, sizeof(*box) + len);
        if (box) {
            box->realloc = pool->realloc; /* for loop_process_bytes_free() */
            box->ctx = pool->ctx;
            box->pub.len = len;
            box->pub.data = len ? (unsigned char *)(box + 1) : NULL;
            w->reply = &box->pub;
        } else {
            w->discard = true;
            w->refuse = -ENOMEM;
        }
    }
    return true;
}

static void message_in(struct pool_worker *w)
{
    struct pool_job *j = w->job;
    int err = w->discard ? w->refuse : w->recv_h.word;
    loop_process_bytes *reply = w->reply;
    w->reply = NULL;
    w->discard = false;
    w->got = 0;
    w->job = NULL;
    w->state = WORKER_IDLE;
    w->pool->stats.jobs_done++;
    loop__pool_job_end(j, err, reply);
    loop__pool_dispatch(w->pool);
}

/* Read what the worker wrote; up to `rounds` reads (0: until none is left). */
static void read_replies(struct pool_worker *w, int rounds)
{
    unsigned char scratch[4096];
    const size_t hs = sizeof(w->recv_h);
    for (int r = 0; w->out_fd >= 0 && (!rounds || r < rounds); r++) {
        void *dst;
        size_t want;
        if (w->got < hs) {
            dst = (char *)&w->recv_h + w->got;
            want = hs - w->got;
        } else {
            size_t off = w->got - hs;
            want = (size_t)w->recv_h.len - off;
            /* cppcheck-suppress legacyUninitvar ; scratch is only written */
            dst = w->discard ? scratch : w->reply->data + off;
            if (w->discard && want > sizeof(scratch))
                want = sizeof(scratch);
        }
        ssize_t n = read(w->out_fd, dst, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0 || errno != EAGAIN)
                close_replies(w); /* the worker is gone; its exit does the rest */
            return;
        }
        w->got += (size_t)n;
        if (w->got == hs && !header_in(w))
            return;
        if (w->state == WORKER_BUSY && w->got >= hs && w->got - hs == w->recv_h.len)
            message_in(w);
    }
}

static void on_reply(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    read_replies(arg, 16);
}

/* ---- a worker exits ----------------------------------------------------------- */

static void on_worker_exit(loop_process *p, void *arg)
{
    struct pool_worker *w = arg;
    loop_process_pool *pool = w->pool;
    read_replies(w, 0); /* what it wrote before it went */
    bool was_starting = w->state == WORKER_STARTING;
    if (!w->expected) {
        pool->stats.died++;
        pool->stats.last_returncode = p->exit_err ? p->exit_err : p->returncode;
    }
    struct pool_job *j = w->job;
    w->job = NULL;
    bool expected = w->expected;
    loop__pool_drop_worker(w, false);
    if (j)
        loop__pool_job_end(j, -ECHILD, NULL);
    if (was_starting && !expected) {
        loop__pool_fail(pool); /* it could not even start: neither will another */
    } else if (!pool->shutdown && !pool->failed && loop__pool_start_worker(w) != 0) {
        bool any = false;
        for (unsigned i = 0; i < pool->nworkers; i++)
            any |= pool->w[i].state != WORKER_GONE;
        if (!any)
            loop__pool_fail(pool);
    }
    loop__pool_dispatch(pool);
    loop__pool_check_done(pool);
}
