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
 * Where pidfd_open() is missing (Linux before 5.3, or valgrind 3.19, which
 * does not know the call), each worker holds the write end of a pipe of
 * its own, which the kernel closes when it exits: the supervisor watches
 * the read end instead of a pidfd and reaps with waitpid(), trying again
 * shortly when the end of file comes a moment before the exit is done.
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

/*
 * Take SIGTERM and SIGINT on the worker's loop.  After the setup, which
 * may first free a loop of the parent's that owns them (loop.h gives each
 * signal to one loop).  Ignored first, so that once the first has come and
 * its handler is removed, a second one does not kill the drain; ignoring
 * a signal discards it if it is pending (blocked since the fork), so such
 * a one is raised again once the handler is there.
 */
static int take_stop_signals(loop_t *loop, struct worker *me)
{
    static const int signals[] = {SIGTERM, SIGINT};
    struct sigaction ign;
    sigset_t pending;
    int err = 0;

    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigpending(&pending);
    for (int i = 0; i < 2 && !err; i++) {
        sigaction(signals[i], &ign, NULL);
        err = loop_add_signal(loop, signals[i], on_stop_signal, me);
    }
    for (int i = 0; i < 2 && !err; i++)
        if (sigismember(&pending, signals[i]))
            raise(signals[i]); /* pending again, until the mask is restored */
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

static void pin(unsigned index)
{
    cpu_set_t set;

    loop__workers_cpu(index, &set);
    if (CPU_COUNT(&set) > 0)
        (void)sched_setaffinity(0, sizeof set, &set); /* best effort */
}

/*
 * The worker process.  SIGTERM and SIGINT stay blocked (as they were
 * across the fork) until its loop handles them: one sent meanwhile waits.
 */
static _Noreturn void child_main(loop_workers *w, struct worker *me, const sigset_t *mask,
                                 const int life[2])
{
    loop_t *loop = NULL;
    bool set_up = false;

    /* The supervisor's end is the workers' end. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != w->owner)
        _exit(1);
    leave_supervisor(w);
    if (life[0] >= 0)
        close(life[0]); /* life[1] stays open until the exit: the supervisor sees that */
    if (w->o.pin)
        pin(me->index);
    int err = loop_new_with(&loop, &w->lo);
    if (!err)
        err = loop__workers_attach(loop, me);
    if (!err) {
        err = w->o.setup(loop, me->index, w->o.arg);
        set_up = !err;
    }
    if (!err)
        err = take_stop_signals(loop, me);
    if (!err) /* a worker that failed ends as it says, not by a pending SIGTERM */
        pthread_sigmask(SIG_SETMASK, mask, NULL);
    report(w, me, err);
    if (!err)
        err = loop_run(loop);
    if (set_up && w->o.teardown)
        w->o.teardown(loop, me->index, w->o.arg);
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

static void send_signal(loop_workers *w, struct worker *wk, int signo)
{
    if (w->no_pidfd || syscall(SYS_pidfd_send_signal, wk->pidfd, signo, NULL, 0) != 0)
        kill(wk->pid, signo); /* not reaped yet: the pid is still this child's */
}

/* A child that cannot be watched is not kept. */
static void kill_and_reap(pid_t pid)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* Fork worker wk; its fd to watch is a pidfd, or the read end of life. */
static int fork_worker(loop_workers *w, struct worker *wk, pid_t *pid, int *fd)
{
    int life[2] = {-1, -1};
    sigset_t block, old;

    if (w->no_pidfd && pipe2(life, O_CLOEXEC) < 0)
        return -errno;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    fflush(NULL); /* what is buffered now would be written by every child too */
    pthread_sigmask(SIG_BLOCK, &block, &old);
    *pid = fork();
    if (*pid == 0)
        child_main(w, wk, &old, life);
    int err = *pid < 0 ? -errno : 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (life[1] >= 0)
        close(life[1]);
    if (err) {
        if (life[0] >= 0)
            close(life[0]);
        return err;
    }
    *fd = w->no_pidfd ? life[0] : pidfd_open_(*pid);
    return *fd < 0 ? -errno : 0;
}

static int spawn(loop_workers *w, struct worker *wk)
{
    pid_t pid = -1;
    int fd = -1;

    wk->gen++;
    wk->ready = wk->setup_failed = false;
    wk->err = 0;
    int err = fork_worker(w, wk, &pid, &fd);
    if (!err)
        err = loop_add_reader(w->ctl, fd, on_child_exit, wk);
    if (err) {
        if (pid > 0)
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

static void child_reaped(loop_workers *w, struct worker *wk, int code, int status)
{
    w->live--;
    take_reports(w); /* what it said before it ended comes first */
    child_ended(w, wk, code, status);
    loop__workers_check(w);
}

/* Without pidfds: reap wk's child, whose end of the life pipe closed. */
static void reap_by_pid(loop_t *ctl, void *arg)
{
    struct worker *wk = arg;
    int status;

    pid_t r = waitpid(wk->pid, &status, WNOHANG);
    if (r == 0) { /* exiting, not yet a zombie: look again soon */
        wk->reap_delay = wk->reap_delay ? 2 * wk->reap_delay : LOOP_MS(1);
        if (wk->reap_delay > LOOP_MS(100))
            wk->reap_delay = LOOP_MS(100);
        if (loop_call_later(ctl, wk->reap_delay, reap_by_pid, wk, NULL) == 0)
            return;
        r = waitpid(wk->pid, &status, 0); /* no memory for a timer: wait here */
    }
    wk->reap_delay = 0;
    if (r < 0) /* reaped by someone else: how it ended is lost */
        child_reaped(wk->w, wk, 0, 0);
    else if (WIFEXITED(status))
        child_reaped(wk->w, wk, CLD_EXITED, WEXITSTATUS(status));
    else
        child_reaped(wk->w, wk, WCOREDUMP(status) ? CLD_DUMPED : CLD_KILLED, WTERMSIG(status));
}

static void on_child_exit(loop_t *ctl, int fd, unsigned events, void *arg)
{
    struct worker *wk = arg;
    loop_workers *w = wk->w;
    siginfo_t si;

    (void)events;
    memset(&si, 0, sizeof si);
    if (!w->no_pidfd && waitid(P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG) < 0) {
        if (errno == EINTR)
            return;          /* level-triggered: called again */
        si.si_pid = wk->pid; /* reaped by someone else: how it ended is lost */
    }
    if (!w->no_pidfd && si.si_pid == 0)
        return;
    loop_remove_reader(ctl, fd);
    close(fd);
    wk->pidfd = -1;
    if (w->no_pidfd)
        reap_by_pid(ctl, wk);
    else
        child_reaped(w, wk, si.si_code, si.si_status);
}

int loop__workers_procs_start(loop_workers *w)
{
    unsigned i = 0;
    int err = 0;

    int probe = pidfd_open_(getpid());
    if (probe >= 0)
        close(probe);
    w->no_pidfd = probe < 0 && errno == ENOSYS;
    /* Only the supervisor's end is non-blocking: a report is never lost. */
    if (pipe2(w->ready_pipe, O_CLOEXEC) < 0 || fcntl(w->ready_pipe[0], F_SETFL, O_NONBLOCK) < 0)
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
            send_signal(w, wk, SIGTERM);
    }
}

void loop__workers_procs_force(loop_workers *w)
{
    for (unsigned i = 0; i < w->o.count; i++)
        if (w->v[i].pid)
            send_signal(w, &w->v[i], SIGKILL);
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
