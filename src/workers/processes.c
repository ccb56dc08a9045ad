/*
 * Processes mode: nginx's master and workers.
 *
 * The supervisor forks each worker, opens a pidfd for it and watches that
 * on its loop: no SIGCHLD handler is installed, and waitid(P_PIDFD) reaps
 * exactly that child.  A worker reports the result of its setup through a
 * pipe shared by all of them (one 12-byte message: index, generation,
 * error; atomic under PIPE_BUF).  A worker that ends while the workers
 * run is forked again, at once if it had lived long enough, else after a
 * delay that doubles with each early death in a row.  The stop is SIGTERM
 * to each worker through its pidfd, then SIGKILL at the deadline.
 *
 * Forks happen outside the supervisor loop's callbacks (a restart timer
 * only marks the worker and stops the loop; run_ctl() forks when it
 * returns), so that the child can free its copy of that loop.  SIGTERM and
 * SIGINT are blocked across the fork: one sent to the child before it
 * handles them itself waits, pending, instead of waking the parent's loop
 * through the eventfd they share.
 */
#include "workers_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

struct report {
    uint32_t index, gen;
    int32_t err;
};

/* ---- in the worker process ------------------------------------------------ */

static void on_stop_signal(loop_t *loop, void *arg)
{
    loop__workers_drain(loop, arg);
}

/* Let go of what is the supervisor's: its fds, its loop, its signals. */
static void leave_supervisor(loop_workers *w)
{
    for (unsigned i = 0; i < w->o.count; i++)
        if (w->v[i].pidfd >= 0)
            close(w->v[i].pidfd);
    close(w->ready_pipe[0]);
    close(w->ctl_efd);
    /* Its fds are copies: closing them here leaves the parent's epoll set
     * as it is.  Its signals go back to the dispositions they had. */
    loop_free(w->ctl);
    w->ctl = NULL;
}

static int open_worker_loop(loop_workers *w, struct worker *me, loop_t **loop)
{
    /* Ignored: so that a second SIGTERM, once the first is being
     * handled and its handler removed, does not kill the drain. */
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGTERM, &ign, NULL);
    sigaction(SIGINT, &ign, NULL);

    int err = loop_new_with(loop, &w->lo);
    if (!err)
        err = loop__workers_attach(*loop, me);
    if (!err)
        err = loop_add_signal(*loop, SIGTERM, on_stop_signal, me);
    if (!err)
        err = loop_add_signal(*loop, SIGINT, on_stop_signal, me);
    return err;
}

static void report(loop_workers *w, struct worker *me, int err)
{
    struct report r = {me->index, me->gen, err};
    ssize_t n;

    do
        n = write(w->ready_pipe[1], &r, sizeof r);
    while (n < 0 && errno == EINTR);
}

static _Noreturn void child_main(loop_workers *w, struct worker *me, const sigset_t *mask)
{
    loop_t *loop = NULL;
    bool ready = false;

    /* The supervisor's end is the workers' end. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != w->owner)
        _exit(1);
    leave_supervisor(w);
    if (w->o.pin) {
        cpu_set_t set;
        loop__workers_cpu(me->index, &set);
        if (CPU_COUNT(&set) > 0)
            (void)sched_setaffinity(0, sizeof set, &set); /* best effort */
    }
    int err = open_worker_loop(w, me, &loop);
    pthread_sigmask(SIG_SETMASK, mask, NULL);
    if (!err) {
        err = w->o.setup(loop, me->index, w->o.arg);
        ready = !err;
    }
    report(w, me, err);
    if (ready) {
        err = loop_run(loop);
        if (w->o.teardown)
            w->o.teardown(loop, me->index, w->o.arg);
    }
    if (loop)
        loop_free(loop);
    close(w->ready_pipe[1]);
    loop__workers_mem(w, w->v, 0);
    loop__workers_mem(w, w, 0);
    fflush(NULL);
    _exit(err ? 1 : 0);
}

/* ---- in the supervisor ---------------------------------------------------- */

static void on_child_exit(loop_t *ctl, int fd, unsigned events, void *arg);

static int pidfd_open_(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static void send_signal(struct worker *wk, int signo)
{
    if (syscall(SYS_pidfd_send_signal, wk->pidfd, signo, NULL, 0) != 0 && errno == ENOSYS)
        kill(wk->pid, signo);
}

/* A child that cannot be watched is not kept. */
static void kill_and_reap(pid_t pid)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

static int spawn(loop_workers *w, struct worker *wk)
{
    sigset_t block, old;

    wk->gen++;
    wk->ready = wk->setup_failed = false;
    wk->err = 0;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    fflush(NULL); /* what is buffered now would be written by every child too */
    pthread_sigmask(SIG_BLOCK, &block, &old);
    pid_t pid = fork();
    if (pid == 0)
        child_main(w, wk, &old);
    int err = pid < 0 ? -errno : 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err)
        return err;
    int fd = pidfd_open_(pid);
    err = fd < 0 ? -errno : loop_add_reader(w->ctl, fd, on_child_exit, wk);
    if (err) {
        kill_and_reap(pid);
        if (fd >= 0)
            close(fd);
        wk->gen++; /* its report, if it sent one, is stale */
        return err;
    }
    wk->pid = pid;
    wk->pidfd = fd;
    loop_update_time(w->ctl);
    wk->started = loop_now(w->ctl);
    w->live++;
    return 0;
}

/* The start heard from this worker (or will hear nothing more). */
static void mark_reported(loop_workers *w, struct worker *wk)
{
    if (w->starting && !wk->reported) {
        wk->reported = true;
        w->nreported++;
    }
}

static void take_reports(loop_workers *w)
{
    struct report r;

    while (read(w->ready_pipe[0], &r, sizeof r) == (ssize_t)sizeof r) {
        if (r.index >= w->o.count || r.gen != w->v[r.index].gen)
            continue;
        struct worker *wk = &w->v[r.index];
        if (r.err) {
            wk->setup_failed = true;
            wk->err = r.err;
            if (!w->starting) /* a restart's setup failed: starting again cannot help */
                loop__workers_error(w, r.err);
        } else {
            wk->ready = true;
            loop__workers_event(w, LOOP_WORKERS_READY, wk, 0, 0, 0);
        }
        mark_reported(w, wk);
    }
}

static void on_reports(loop_t *ctl, int fd, unsigned events, void *arg)
{
    (void)ctl;
    (void)fd;
    (void)events;
    take_reports(arg);
    loop__workers_check(arg);
}

/* How long to wait before forking wk again (and count an early death). */
static uint64_t restart_delay(loop_workers *w, struct worker *wk)
{
    const loop_workers_options *o = &w->o;

    loop_update_time(w->ctl);
    if (wk->ready && loop_now(w->ctl) - wk->started >= o->restart_reset_ns) {
        wk->fails = 0;
        return 0;
    }
    uint64_t d = o->restart_delay_ns;
    for (unsigned k = 0; k < wk->fails && d < o->restart_delay_max_ns; k++)
        d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
    wk->fails++;
    return d < o->restart_delay_max_ns ? d : o->restart_delay_max_ns;
}

static void on_restart_due(loop_t *ctl, void *arg)
{
    struct worker *wk = arg;

    wk->restart = (loop_handle){0};
    wk->spawn_due = true;
    wk->w->spawn_due = true;
    loop_stop(ctl); /* run_ctl() forks, outside this callback */
}

/* Schedule wk's next fork; UINT64_MAX if that failed (then the workers stop). */
static uint64_t schedule_restart(loop_workers *w, struct worker *wk)
{
    uint64_t delay = restart_delay(w, wk);

    if (loop_call_later(w->ctl, delay, on_restart_due, wk, &wk->restart) != 0) {
        loop__workers_error(w, -ENOMEM);
        return UINT64_MAX;
    }
    return delay;
}

static void child_ended(loop_workers *w, struct worker *wk, int code, int status)
{
    bool clean = code == CLD_EXITED && status == 0;
    uint64_t restart = UINT64_MAX;

    if (w->stopping) {
        if (!clean)
            loop__workers_error(w, -ECHILD);
    } else if (w->starting && !wk->reported) {
        wk->setup_failed = true; /* died before its setup reported */
        wk->err = -ECHILD;
        mark_reported(w, wk);
    } else if (!wk->setup_failed) {
        restart = schedule_restart(w, wk);
    }
    loop__workers_event(w, LOOP_WORKERS_EXITED, wk, code, status, restart);
    wk->pid = 0;
}

static void on_child_exit(loop_t *ctl, int fd, unsigned events, void *arg)
{
    struct worker *wk = arg;
    loop_workers *w = wk->w;
    siginfo_t si;

    (void)events;
    memset(&si, 0, sizeof si);
    if (waitid(P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG) < 0) {
        if (errno == EINTR)
            return;          /* level-triggered: called again */
        si.si_pid = wk->pid; /* reaped by someone else: how it ended is lost */
    }
    if (si.si_pid == 0)
        return;
    loop_remove_reader(ctl, fd);
    close(fd);
    wk->pidfd = -1;
    w->live--;
    take_reports(w); /* what it said before it ended comes first */
    child_ended(w, wk, si.si_code, si.si_status);
    loop__workers_check(w);
}

int loop__workers_procs_start(loop_workers *w)
{
    unsigned i = 0;
    int err = 0;

    if (pipe2(w->ready_pipe, O_CLOEXEC) < 0)
        err = -errno;
    else if (fcntl(w->ready_pipe[0], F_SETFL, O_NONBLOCK) < 0)
        err = -errno;
    else
        err = loop_add_reader(w->ctl, w->ready_pipe[0], on_reports, w);
    for (; i < w->o.count && !err; i++)
        err = spawn(w, &w->v[i]);
    if (err && i > 0)
        i--; /* the one that failed never started */
    for (; i < w->o.count; i++)
        mark_reported(w, &w->v[i]);
    return err;
}

void loop__workers_procs_respawn(loop_workers *w)
{
    if (!w->spawn_due)
        return;
    w->spawn_due = false;
    for (unsigned i = 0; i < w->o.count; i++) {
        struct worker *wk = &w->v[i];
        if (!wk->spawn_due)
            continue;
        wk->spawn_due = false;
        if (!w->stopping && spawn(w, wk) != 0) {
            wk->ready = false; /* counts as an early death: try again later */
            schedule_restart(w, wk);
        }
    }
}

void loop__workers_procs_stop(loop_workers *w)
{
    for (unsigned i = 0; i < w->o.count; i++) {
        struct worker *wk = &w->v[i];
        loop_cancel(w->ctl, wk->restart);
        wk->restart = (loop_handle){0};
        wk->spawn_due = false;
        if (wk->pid)
            send_signal(wk, SIGTERM);
    }
}

void loop__workers_procs_force(loop_workers *w)
{
    for (unsigned i = 0; i < w->o.count; i++)
        if (w->v[i].pid)
            send_signal(&w->v[i], SIGKILL);
}

void loop__workers_procs_release(loop_workers *w)
{
    for (unsigned i = 0; w->v && i < w->o.count; i++)
        if (w->v[i].pidfd >= 0)
            close(w->v[i].pidfd);
    for (int k = 0; k < 2; k++)
        if (w->ready_pipe[k] >= 0)
            close(w->ready_pipe[k]);
}
