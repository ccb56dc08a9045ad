/*
 * The parent's side of a spawn: check the options, make the pipes, write
 * the child's plan, clone, and learn from the errno pipe whether the exec
 * happened.
 *
 * Everything that can fail for want of memory is done before the clone,
 * except registering the pidfd with the loop; a failure there kills and
 * reaps the child before the call returns.  The child's stack is made once
 * per loop and reused: a loop spawns from one thread, one child at a time,
 * and CLONE_VFORK holds the parent until the child has exec'd or exited.
 */
#include "process_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

extern char **environ;

/* The fds the parent makes for one spawn; -1 where none. */
struct spawn_fds {
    int child_end[3];  /* the child's end of each pipe */
    int parent_end[3]; /* and the parent's */
    int err[2];        /* the errno pipe */
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void close_all(struct spawn_fds *s)
{
    for (int i = 0; i < 3; i++) {
        close_fd(&s->child_end[i]);
        close_fd(&s->parent_end[i]);
    }
    close_fd(&s->err[0]);
    close_fd(&s->err[1]);
}

static bool fd_open(int fd)
{
    return fd >= 0 && fcntl(fd, F_GETFD) >= 0;
}

static int check_options(const loop_process_options *o)
{
    if (!o->argv || !o->argv[0] || (o->nfds && !o->fds))
        return -EINVAL;
    for (int i = 0; i < 3; i++) {
        switch (o->stdio[i].mode) {
        case LOOP_PROCESS_INHERIT:
        case LOOP_PROCESS_DEVNULL:
        case LOOP_PROCESS_PIPE:
            break;
        case LOOP_PROCESS_FD:
            if (!fd_open(o->stdio[i].fd))
                return -EBADF;
            break;
        default:
            return -EINVAL;
        }
    }
    if (o->nfds > (size_t)INT_MAX - 3)
        return -EINVAL;
    for (size_t i = 0; i < o->nfds; i++) {
        if (o->fds[i].child_fd < 3 || o->fds[i].child_fd >= INT_MAX - 1)
            return -EINVAL;
        if (!fd_open(o->fds[i].parent_fd))
            return -EBADF;
    }
    return 0;
}

static int by_dst(const void *x, const void *y)
{
    const struct loop__fdmap *a = x, *b = y;
    return (a->dst > b->dst) - (a->dst < b->dst);
}

/* The fd map of the plan, in the registry's scratch array: fds 0-2 that
 * are not inherited, then the extra fds by number.  The pipes' child ends
 * are filled in once made. */
static int make_map(struct loop__process_registry *r, const loop_process_options *o,
                    struct loop__process_plan *pl)
{
    size_t need = 3 + o->nfds;
    if (need > r->map_cap) {
        struct loop__fdmap *m = loop__process_mem(r, r->map, need * sizeof(*m));
        if (!m)
            return -ENOMEM;
        r->map = m;
        r->map_cap = need;
    }
    int n = 0;
    for (int i = 0; i < 3; i++) {
        const loop_process_stdio *s = &o->stdio[i];
        if (s->mode == LOOP_PROCESS_INHERIT)
            continue;
        int src = s->mode == LOOP_PROCESS_FD ? s->fd : -1;
        r->map[n++] = (struct loop__fdmap){.src = src, .dst = i, .moved = -1};
    }
    int first = n;
    for (size_t i = 0; i < o->nfds; i++)
        r->map[n++] = (struct loop__fdmap){o->fds[i].parent_fd, o->fds[i].child_fd, -1};
    qsort(r->map + first, (size_t)(n - first), sizeof(*r->map), by_dst);
    for (int i = first + 1; i < n; i++)
        if (r->map[i].dst == r->map[i - 1].dst)
            return -EINVAL;
    pl->map = r->map;
    pl->nmap = n;
    pl->high = n > first ? r->map[n - 1].dst + 1 : 3;
    return 0;
}

/* The PATH to look the program up in: the child's environment's, else ours. */
static const char *search_path(const loop_process_options *o, const char *file)
{
    if (strchr(file, '/'))
        return NULL;
    const char *path = NULL;
    if (o->envp) {
        for (char *const *e = o->envp; *e; e++)
            if (strncmp(*e, "PATH=", 5) == 0) {
                path = *e + 5;
                break;
            }
    }
    if (!path)
        path = getenv("PATH");
    return path ? path : "/bin:/usr/bin";
}

/* The pipes of fds 0-2 and the errno pipe, all close-on-exec; the parent's
 * ends of the stdio pipes non-blocking. */
static int make_pipes(const loop_process_options *o, struct spawn_fds *s,
                      struct loop__process_plan *pl)
{
    int m = 0;
    for (int i = 0; i < 3; i++) {
        if (o->stdio[i].mode == LOOP_PROCESS_INHERIT)
            continue;
        if (o->stdio[i].mode == LOOP_PROCESS_PIPE) {
            int p[2];
            if (pipe2(p, O_CLOEXEC) != 0)
                return -errno;
            s->child_end[i] = i == 0 ? p[0] : p[1];
            s->parent_end[i] = i == 0 ? p[1] : p[0];
            if (fcntl(s->parent_end[i], F_SETFL, O_NONBLOCK) != 0)
                return -errno;
            pl->map[m].src = s->child_end[i];
        }
        m++;
    }
    return pipe2(s->err, O_CLOEXEC) != 0 ? -errno : 0;
}

/* How the child closes what it must not keep: close_range(), probed once
 * per loop, or one close per number below the fd limit. */
static void choose_closing(struct loop__process_registry *r, struct loop__process_plan *pl)
{
    if (r->close_range == 0)
        r->close_range = syscall(SYS_close_range, ~0U, ~0U, 0) == 0 ? 1 : -1;
    pl->no_close_range = r->close_range < 0;
    pl->max_fd = INT_MAX;
    struct rlimit rl;
    if (pl->no_close_range && getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < INT_MAX)
        pl->max_fd = (int)rl.rlim_cur - 1;
}

/* The child's errno, if it could not exec (0 if it did). */
static int read_child_errno(int fd)
{
    int err = 0;
    size_t got = 0;
    while (got < sizeof(err)) {
        ssize_t n = read(fd, (char *)&err + got, sizeof(err) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return got ? EIO : 0; /* EOF: the exec closed the pipe */
        got += (size_t)n;
    }
    return err > 0 ? err : EIO;
}

/* Clone the child with every signal blocked, so that no handler of ours
 * runs in it before it has set them all to default. */
static int clone_child(struct loop__process_registry *r, struct loop__process_plan *pl, int *pidfd)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int pid = loop__process_clone(loop__process_child, pl, r->stack + LOOP__PROCESS_STACK,
                                  CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, pidfd);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid > 0 && *pidfd < 0) { /* a kernel before 5.2 ignores CLONE_PIDFD */
        *pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (*pidfd < 0) {
            int err = errno == ENOSYS ? -ENOSYS : -errno;
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
            return err;
        }
    }
    return pid;
}

/* Everything before the clone that may fail: the object, its future, the
 * stack, the plan and the fds. */
static int prepare(loop_t *loop, const loop_process_options *o, struct loop__process_plan *pl,
                   struct spawn_fds *s, loop_process **pp)
{
    struct loop__process_registry *r = loop__process_registry(loop);
    if (!r)
        return -ENOMEM;
    if (!r->stack && !(r->stack = loop__process_mem(r, NULL, LOOP__PROCESS_STACK)))
        return -ENOMEM;
    int err = make_map(r, o, pl);
    if (err)
        return err;
    loop_process *p = loop__process_mem(r, NULL, sizeof(*p));
    if (!p)
        return -ENOMEM;
    *p = (loop_process){.loop = loop, .reg = r, .pidfd = -1, .pipes = {-1, -1, -1}, .held = true};
    *pp = p;
    err = loop_future_new(loop, &p->exit);
    if (err)
        return err;
    err = make_pipes(o, s, pl);
    if (err)
        return err;
    pl->file = o->file ? o->file : o->argv[0];
    pl->search = search_path(o, pl->file);
    pl->argv = o->argv;
    pl->envp = o->envp ? o->envp : environ;
    pl->cwd = o->cwd;
    pl->err_fd = s->err[1];
    choose_closing(r, pl);
    return 0;
}

static void discard(struct loop__process_registry *r, loop_process *p)
{
    if (!p)
        return;
    loop_future_unref(p->exit);
    loop__process_mem(r, p, 0);
}

int loop_process_spawn(loop_t *loop, const loop_process_options *opts, loop_process **out)
{
    if (out)
        *out = NULL;
    if (!loop || !opts || !out)
        return -EINVAL;
    int err = check_options(opts);
    if (err)
        return err;
    struct loop__process_plan pl = {0};
    struct spawn_fds s = {{-1, -1, -1}, {-1, -1, -1}, {-1, -1}};
    loop_process *p = NULL;
    err = prepare(loop, opts, &pl, &s, &p);
    int pidfd = -1;
    int pid = err ? err : clone_child(p->reg, &pl, &pidfd);
    for (int i = 0; i < 3; i++)
        close_fd(&s.child_end[i]);
    close_fd(&s.err[1]);
    if (pid > 0) {
        int child_err = read_child_errno(s.err[0]);
        if (child_err) {
            siginfo_t si;
            while (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0 && errno == EINTR)
                ;
            close(pidfd);
            pid = -child_err;
        }
    }
    if (pid > 0) {
        p->pid = pid;
        p->pidfd = pidfd;
        err = loop__process_adopt(loop, p);
        if (err) {
            loop__process_kill_reap(pid, pidfd, p->reg);
            close(pidfd);
            pid = err;
        }
    }
    if (pid < 0) {
        close_all(&s);
        discard(p ? p->reg : NULL, p);
        return pid;
    }
    close_fd(&s.err[0]);
    for (int i = 0; i < 3; i++)
        p->pipes[i] = s.parent_end[i];
    *out = p;
    return 0;
}
