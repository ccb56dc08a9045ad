/*
 * Child processes after the spawn: watching, reaping, signalling, and the
 * per-loop registry that kills and reaps what is left when the loop goes.
 *
 * A process object lives while its handle is held or its child is not
 * reaped (and while the completion of its exit future waits for a retry).
 * The registry lists every object, so that loop_free() can reap the
 * children, drop the futures (which die with the loop) and leave the
 * handles still held as empty shells for loop_process_free().
 */
#include "process_internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const int registry_key;

void *loop__process_mem(struct loop__process_registry *r, void *ptr, size_t size)
{
    return r->realloc(r->ctx, ptr, size);
}

static void release_registry(loop_t *loop, void *data);

struct loop__process_registry *loop__process_registry(loop_t *loop)
{
    struct loop__process_registry *r = loop_attached(loop, &registry_key);
    if (r)
        return r;
    /*
     * loop_free() releases the last attached first, and this registry drops
     * futures when released: the futures' own registry (attached with the
     * loop's first future) must be attached before it, to go after it.
     */
    loop_future *f;
    if (loop_future_new(loop, &f) != 0)
        return NULL;
    loop_future_unref(f);
    r = loop_attach_new(loop, &registry_key, sizeof(*r), release_registry);
    if (r)
        loop_get_allocator(loop, &r->realloc, &r->ctx);
    return r;
}

/* ---- reaping --------------------------------------------------------------- */

static int wait_child(int pid, int pidfd, int options, siginfo_t *si)
{
    int r;
    memset(si, 0, sizeof(*si));
    while ((r = waitid(P_PIDFD, (id_t)pidfd, si, WEXITED | options)) < 0 && errno == EINTR)
        ;
    if (r < 0 && errno == EINVAL) /* Linux 5.3: pidfds, but no waitid on them */
        while ((r = waitid(P_PID, (id_t)pid, si, WEXITED | options)) < 0 && errno == EINTR)
            ;
    return r < 0 ? -errno : 0;
}

static int returncode(const siginfo_t *si)
{
    return si->si_code == CLD_EXITED ? si->si_status : -si->si_status;
}

static int send_signal(struct loop__process_registry *r, int pid, int pidfd, int signo)
{
    if (r && !r->no_pidfd_signal) {
        if (syscall(SYS_pidfd_send_signal, pidfd, signo, NULL, 0) == 0)
            return 0;
        if (errno != ENOSYS)
            return -errno;
        r->no_pidfd_signal = true;
    }
    return kill(pid, signo) == 0 ? 0 : -errno;
}

int loop__process_kill_reap(int pid, int pidfd, struct loop__process_registry *r)
{
    siginfo_t si;
    send_signal(r, pid, pidfd, SIGKILL);
    return wait_child(pid, pidfd, 0, &si) == 0 ? returncode(&si) : -SIGKILL;
}

static void destroy(loop_process *p)
{
    for (int i = 0; i < 3; i++)
        if (p->pipes[i] >= 0)
            close(p->pipes[i]);
    struct loop__process_registry *r = p->reg;
    if (r) {
        if (p->prev)
            p->prev->next = p->next;
        else
            r->all = p->next;
        if (p->next)
            p->next->prev = p->prev;
    }
    loop_future_unref(p->exit);
    p->realloc(p->ctx, p, 0);
}

static void settle_later(loop_t *loop, void *arg);

/* Complete the exit future; if the ready queue cannot grow, try again from
 * it (and if even that cannot be queued, the future stays pending). */
static void settle(loop_process *p)
{
    int rc = p->exit_err ? loop_future_set_error(p->exit, p->exit_err)
                         : loop_future_set_result(p->exit, (void *)(intptr_t)p->returncode);
    p->settling = rc == -ENOMEM && loop_call_soon(p->loop, settle_later, p, NULL) == 0;
    if (!p->held && !p->settling)
        destroy(p);
}

static void settle_later(loop_t *loop, void *arg)
{
    (void)loop;
    loop_process *p = arg;
    p->settling = false;
    settle(p);
}

static void on_exit_readable(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    loop_process *p = arg;
    siginfo_t si;
    int err = wait_child(p->pid, fd, WNOHANG, &si);
    if (!err && si.si_pid == 0)
        return; /* not exited: nothing to reap yet */
    loop_remove_reader(loop, fd);
    close(fd);
    p->pidfd = -1;
    p->live = false;
    if (err)
        p->exit_err = -ECHILD; /* reaped by someone else: the status is lost */
    else
        p->returncode = returncode(&si);
    if (p->on_exit) {
        p->settling = true; /* the hook may free the handle: not p itself, yet */
        p->on_exit(p, p->on_exit_arg);
        p->settling = false;
    }
    settle(p);
}

void loop__process_reap_now(loop_process *p)
{
    if (!p->live)
        return;
    loop_remove_reader(p->loop, p->pidfd);
    p->returncode = loop__process_kill_reap(p->pid, p->pidfd, p->reg);
    close(p->pidfd);
    p->pidfd = -1;
    p->live = false;
    settle(p);
}

int loop__process_adopt(loop_t *loop, loop_process *p)
{
    int err = loop_add_reader(loop, p->pidfd, on_exit_readable, p);
    if (err)
        return err;
    struct loop__process_registry *r = p->reg;
    p->realloc = r->realloc;
    p->ctx = r->ctx;
    p->live = true;
    p->next = r->all;
    if (r->all)
        r->all->prev = p;
    r->all = p;
    return 0;
}

/* ---- the handle ------------------------------------------------------------ */

loop_future *loop_process_exit(const loop_process *p)
{
    return p ? p->exit : NULL;
}

int loop_process_pid(const loop_process *p)
{
    return p ? p->pid : -EINVAL;
}

int loop_process_signal(loop_process *p, int signo)
{
    if (!p || signo < 0 || signo >= NSIG)
        return -EINVAL;
    if (!p->live)
        return -ESRCH;
    return send_signal(p->reg, p->pid, p->pidfd, signo);
}

int loop_process_take_pipe(loop_process *p, int n)
{
    if (!p || n < 0 || n > 2)
        return -EINVAL;
    int fd = p->pipes[n];
    p->pipes[n] = -1;
    return fd >= 0 ? fd : -ENOENT;
}

void loop_process_free(loop_process *p)
{
    if (!p)
        return;
    p->held = false;
    for (int i = 0; i < 3; i++) {
        if (p->pipes[i] >= 0)
            close(p->pipes[i]);
        p->pipes[i] = -1;
    }
    if (!p->live && !p->settling)
        destroy(p);
}

/* ---- the loop goes --------------------------------------------------------- */

static void release_registry(loop_t *loop, void *data)
{
    struct loop__process_registry *r = data;
    while (r->pools)
        loop__process_pool_orphan(r->pools); /* unlinks it */
    loop_process *next;
    for (loop_process *p = r->all; p; p = next) {
        next = p->next;
        if (p->live) {
            loop_remove_reader(loop, p->pidfd);
            loop__process_kill_reap(p->pid, p->pidfd, r);
            close(p->pidfd);
            p->pidfd = -1;
            p->live = false;
        }
        /* The futures go with the loop (their registry is released next). */
        loop_future_unref(p->exit);
        p->exit = NULL;
        p->loop = NULL;
        p->reg = NULL;
        p->prev = p->next = NULL;
        p->settling = false;
        if (!p->held)
            p->realloc(p->ctx, p, 0);
    }
    loop__process_mem(r, r->stack, 0);
    loop__process_mem(r, r->map, 0);
    loop__process_mem(r, r, 0);
}
