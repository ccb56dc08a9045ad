/*
 * The child's side of a spawn, from the clone to the exec.
 *
 * The child shares the parent's memory (CLONE_VM) while the parent waits
 * (CLONE_VFORK), so it may do nothing that touches shared state: no malloc,
 * no lock, no stdio, and no libc function that a sanitizer intercepts
 * (ThreadSanitizer's interceptors would update the parent thread's state).
 * It makes raw system calls through syscall(), and nothing else.  This file
 * is built without sanitizers and without builtins (see CMakeLists.txt),
 * and copies bytes through a volatile pointer, so that no instrumentation
 * and no memcpy/memset call is slipped in.
 *
 * Every signal is blocked on entry (the parent blocked them all around the
 * clone), so no handler of the parent can run here before the exec.
 */
#include "process_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The kernel's struct sigaction (rt_sigaction), on x86-64 and AArch64. */
struct kernel_sigaction {
    unsigned long handler; /* SIG_DFL is 0 */
    unsigned long flags;
    void *restorer;
    unsigned long mask;
};

#define KERNEL_SIGSET_SIZE 8 /* bytes: 64 signals */
#define KERNEL_NSIG 64

static int fail(void)
{
    return errno ? errno : EIO;
}

/* Copy each source above every target first, so that no dup3() overwrites
 * a source that a later one still needs, and no source is its own target
 * (dup3 would refuse, and dup2 would leave close-on-exec set). */
static int place_fds(struct loop__process_plan *pl)
{
    int devnull = -1;
    for (int i = 0; i < pl->nmap; i++) {
        int src = pl->map[i].src;
        if (src < 0) {
            if (devnull < 0) {
                int fd = (int)syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDWR | O_CLOEXEC);
                if (fd < 0)
                    return fail();
                devnull = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, pl->high);
                syscall(SYS_close, fd);
                if (devnull < 0)
                    return fail();
            }
            pl->map[i].moved = devnull;
            continue;
        }
        pl->map[i].moved = (int)syscall(SYS_fcntl, src, F_DUPFD_CLOEXEC, pl->high);
        if (pl->map[i].moved < 0)
            return fail();
    }
    for (int i = 0; i < pl->nmap; i++)
        if (syscall(SYS_dup3, pl->map[i].moved, pl->map[i].dst, 0) < 0)
            return fail();
    return 0;
}

static int close_span(const struct loop__process_plan *pl, unsigned lo, unsigned hi)
{
    if (lo > hi)
        return 0;
    if (!pl->no_close_range) {
        if (syscall(SYS_close_range, lo, hi, 0) == 0)
            return 0;
        if (errno != ENOSYS)
            return fail();
    }
    /* No close_range(): one close per number, up to the highest fd the
     * parent could have (its RLIMIT_NOFILE). */
    for (unsigned fd = lo; fd <= hi && fd <= (unsigned)pl->max_fd; fd++)
        syscall(SYS_close, fd);
    return 0;
}

/* Close every fd but 0-2, the targets (map[].dst) and keep (the errno
 * pipe, which closes itself at the exec). */
static int close_others(const struct loop__process_plan *pl, int keep)
{
    unsigned lo = 3;
    for (int i = 0; i < pl->nmap; i++) {
        unsigned dst = (unsigned)pl->map[i].dst;
        if (dst < 3)
            continue;
        int err = close_span(pl, lo, dst - 1);
        if (err)
            return err;
        lo = dst + 1;
    }
    int err = close_span(pl, lo, (unsigned)keep - 1);
    return err ? err : close_span(pl, (unsigned)keep + 1, ~0U);
}

/* Default action for every signal that has another, then an empty mask. */
static int reset_signals(void)
{
    for (int s = 1; s <= KERNEL_NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP)
            continue;
        struct kernel_sigaction old;
        if (syscall(SYS_rt_sigaction, s, NULL, &old, KERNEL_SIGSET_SIZE) != 0)
            continue; /* not a signal this kernel has */
        if (old.handler == 0)
            continue;
        struct kernel_sigaction dfl;
        dfl.handler = 0;
        dfl.flags = 0;
        dfl.restorer = NULL;
        dfl.mask = 0;
        if (syscall(SYS_rt_sigaction, s, &dfl, NULL, KERNEL_SIGSET_SIZE) != 0)
            return fail();
    }
    unsigned long none = 0;
    return syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, KERNEL_SIGSET_SIZE) ? fail() : 0;
}

/* Byte by byte through a volatile pointer, so that no compiler turns the
 * loop into a call of memcpy (which a sanitizer would intercept). */
static size_t put(volatile char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i];
    return n;
}

static size_t length(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

/* execvpe()'s search: each directory of the PATH in turn; a directory that
 * cannot hold the program is skipped; EACCES anywhere wins at the end. */
static int exec_search(const struct loop__process_plan *pl)
{
    char path[PATH_MAX];
    size_t flen = length(pl->file);
    if (flen == 0)
        return ENOENT;
    bool denied = false;
    int last = ENOENT;
    for (const char *dir = pl->search;;) {
        const char *end = dir;
        while (*end && *end != ':')
            end++;
        size_t dlen = (size_t)(end - dir);
        if (dlen + 1 + flen + 1 > sizeof(path)) {
            last = ENAMETOOLONG;
        } else {
            size_t n = put(path, dir, dlen);
            if (dlen) /* an empty entry is the working directory */
                n += put(path + n, "/", 1);
            put(path + n, pl->file, flen + 1);
            syscall(SYS_execve, path, pl->argv, pl->envp);
            switch (errno) {
            case EACCES:
                denied = true;
                /* fall through */
            case ENOENT:
            case ENOTDIR:
            case ESTALE:
            case ENODEV:
            case ETIMEDOUT:
                last = errno;
                break;
            default:
                return fail();
            }
        }
        if (!*end)
            break;
        dir = end + 1;
    }
    return denied ? EACCES : last;
}

static int run(struct loop__process_plan *pl, int *err_fd)
{
    int fd = (int)syscall(SYS_fcntl, *err_fd, F_DUPFD_CLOEXEC, pl->high);
    if (fd < 0)
        return fail();
    *err_fd = fd;
    int err = place_fds(pl);
    if (!err && pl->cwd && syscall(SYS_chdir, pl->cwd) != 0)
        err = fail();
    if (!err)
        err = close_others(pl, fd);
    if (!err)
        err = reset_signals();
    if (err)
        return err;
    if (pl->search)
        return exec_search(pl);
    syscall(SYS_execve, pl->file, pl->argv, pl->envp);
    return fail();
}

int loop__process_child(void *arg)
{
    struct loop__process_plan *pl = arg;
    int fd = pl->err_fd;
    int err = run(pl, &fd);
    while (syscall(SYS_write, fd, &err, sizeof(err)) < 0 && errno == EINTR)
        ;
    return 127;
}
