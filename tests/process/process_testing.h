/*
 * What the process suites share: the suite's own binary as the child
 * program (run with "--helper MODE ..."), children and zombies counted from
 * /proc, and short ways to spawn, wait and read.
 *
 * Each suite's main() starts with
 *
 *     int rc = process_helper(argc, argv);
 *     if (rc >= 0)
 *         return rc;
 *
 * so that the same executable is both the tests and the children they
 * spawn: the children then report exactly what they see (their fds, their
 * signal state, their environment) without any other program.
 */
#ifndef LOOP_TESTS_PROCESS_TESTING_H
#define LOOP_TESTS_PROCESS_TESTING_H

#include "fdleak.h"
#include "fixtures.h"
#include "watchdog.h"

#include "loop_process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the helper modes ------------------------------------------------------- */

static inline void helper_list_fds(void)
{
    struct fdlist l;
    DIR *d = opendir("/proc/self/fd");
    l.n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d) && l.n < FDLIST_MAX)
            l.fd[l.n++] = atoi(e->d_name);
    if (d)
        closedir(d);
    qsort(l.fd, (size_t)l.n, sizeof(int), fdlist_cmp);
    for (int i = 0; i < l.n; i++)
        printf(i ? " %d" : "%d", l.fd[i]);
    printf("\n");
}

static inline int helper_cat(void)
{
    char buf[4096];
    ssize_t n;
    while ((n = read(0, buf, sizeof(buf))) > 0)
        if (write(1, buf, (size_t)n) != n)
            return 1;
    return n < 0 ? 1 : 0;
}

/* The helper's modes; the exit status says whether it did what it was told. */
static inline int process_helper_run(int argc, char **argv)
{
    const char *mode = argv[2];
    if (!strcmp(mode, "exit") && argc > 3)
        return atoi(argv[3]);
    if (!strcmp(mode, "raise") && argc > 3) {
        raise(atoi(argv[3]));
        return 100; /* the signal did not kill it */
    }
    if (!strcmp(mode, "fds"))
        helper_list_fds();
    else if (!strcmp(mode, "cat"))
        return helper_cat();
    else if (!strcmp(mode, "sleep"))
        for (;;)
            pause();
    else if (!strcmp(mode, "cwd")) {
        char buf[PATH_MAX];
        printf("%s\n", getcwd(buf, sizeof(buf)) ? buf : "?");
    } else if (!strcmp(mode, "env") && argc > 3) {
        const char *v = getenv(argv[3]);
        printf("%s\n", v ? v : "(unset)");
    } else if (!strcmp(mode, "write")) { /* write FD TEXT [FD TEXT ...] */
        for (int i = 3; i + 1 < argc; i += 2) {
            size_t len = strlen(argv[i + 1]);
            if (write(atoi(argv[i]), argv[i + 1], len) != (ssize_t)len)
                return 1;
        }
    } else if (!strcmp(mode, "flags")) { /* fd flags of 0, 1 and 2 */
        for (int fd = 0; fd < 3; fd++)
            fprintf(stderr, "%d:%d:%d\n", fd, fcntl(fd, F_GETFD), fcntl(fd, F_GETFL) & O_NONBLOCK);
    } else {
        return 99;
    }
    fflush(stdout);
    return 0;
}

/* The helper's exit status if this process is a helper, else -1. */
static inline int process_helper(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[1], "--helper") != 0)
        return -1;
    return process_helper_run(argc, argv);
}

/* ---- spawning the helper ------------------------------------------------------ */

static inline const char *self_exe(void)
{
    static char path[PATH_MAX];
    if (!path[0]) {
        ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
        assert_true(n > 0);
        path[n] = '\0';
    }
    return path;
}

/* argv for the helper: {self, "--helper", args..., NULL}; up to 14 args. */
struct helper_argv {
    char *v[17];
};

static inline struct helper_argv helper_args(const char *const *args)
{
    struct helper_argv a = {{(char *)self_exe(), (char *)"--helper"}};
    int n = 2;
    for (; args[n - 2] && n < 16; n++)
        a.v[n] = (char *)args[n - 2];
    a.v[n] = NULL;
    return a;
}

#define HELPER(...) (helper_args((const char *const[]){__VA_ARGS__, NULL}))

/* Spawn with options o (argv replaced by the helper's) and assert success. */
static inline loop_process *spawn_helper(loop_t *loop, loop_process_options o,
                                         struct helper_argv *a)
{
    loop_process *p = NULL;
    o.argv = a->v;
    int err = loop_process_spawn(loop, &o, &p);
    if (err)
        fail_msg("spawn %s: %s", a->v[2], loop_strerror(err));
    assert_non_null(p);
    return p;
}

/* Run the loop until p's child is reaped; its returncode. */
static inline int wait_exit(loop_t *loop, loop_process *p)
{
    void *r = NULL;
    assert_int_equal(loop_run_until_complete(loop, loop_process_exit(p), &r), 0);
    return loop_process_returncode(r);
}

/* Read a non-blocking fd until EOF (poll waits; the watchdog bounds it). */
static inline size_t read_to_eof(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n > 0) {
            got += (size_t)n;
            assert_true(got < cap - 1);
            continue;
        }
        if (n == 0)
            break;
        assert_true(errno == EAGAIN || errno == EINTR);
        struct pollfd pfd = {fd, POLLIN, 0};
        poll(&pfd, 1, -1);
    }
    buf[got] = '\0';
    return got;
}

/* ---- children and zombies, from /proc ------------------------------------------ */

/* How many processes whose parent is us are in /proc; zombies only if asked. */
static inline int count_children(bool zombies_only)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        const char *p = strrchr(buf, ')');
        char state;
        int ppid;
        if (p && sscanf(p + 1, " %c %d", &state, &ppid) == 2 && ppid == getpid() &&
            (!zombies_only || state == 'Z'))
            n++;
    }
    closedir(d);
    return n;
}

/* Is pid a child of ours that nobody has reaped (running or a zombie)? */
static inline bool is_unreaped_child(int pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

static inline void assert_no_children(void)
{
    assert_int_equal(count_children(false), 0);
}

#endif /* LOOP_TESTS_PROCESS_TESTING_H */
