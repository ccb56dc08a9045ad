/*
 * Helpers for suites whose loops block in the kernel: a watchdog that turns
 * a lost wake-up (a test blocked forever) into a clear failure, a way to
 * wait until a thread sleeps in its epoll wait, and fd bookkeeping.
 *
 * None of them asserts on elapsed time: the watchdog's limit is a
 * hang detector, far above anything a passing run needs.
 */
#ifndef TESTS_WATCHDOG_H
#define TESTS_WATCHDOG_H

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *watchdog_what_ = "";

static inline void watchdog_fire_(int signo)
{
    (void)signo;
    static const char msg[] = "\nwatchdog: still blocked after the time limit: ";
    ssize_t n = write(2, msg, sizeof(msg) - 1);
    n = write(2, watchdog_what_, strlen(watchdog_what_));
    n = write(2, "\n", 1);
    (void)n;
    _exit(3);
}

/* Exit the process with a message naming `what` if not stopped in time. */
static inline void watchdog_start(const char *what, unsigned seconds)
{
    watchdog_what_ = what;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = watchdog_fire_;
    sigaction(SIGALRM, &sa, NULL);
    alarm(seconds);
}

static inline void watchdog_stop(void)
{
    alarm(0);
    signal(SIGALRM, SIG_DFL);
}

static inline pid_t test_gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/*
 * Is thread tid asleep in an epoll wait (or, for a host loop, in poll)?
 * /proc/self/task/TID/syscall names the system call a blocked thread is
 * in; where it cannot be read, the thread's state (S: sleeping) is the next
 * best evidence.
 */
static inline bool thread_blocked_in_poll(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
    FILE *f = fopen(path, "r");
    if (f) {
        long nr = -2;
        int ok = fscanf(f, "%ld", &nr) == 1;
        fclose(f);
        if (ok && nr >= 0) {
            return nr == SYS_epoll_wait || nr == SYS_epoll_pwait
#ifdef SYS_epoll_pwait2
                   || nr == SYS_epoll_pwait2
#endif
#ifdef SYS_poll
                   || nr == SYS_poll
#endif
                   || nr == SYS_ppoll;
        }
    }
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] == 'S';
}

/* Wait, with no limit of its own (the watchdog has one), until tid blocks. */
static inline void wait_until_blocked(pid_t tid)
{
    const struct timespec ms = {0, 1000000};
    while (!thread_blocked_in_poll(tid))
        nanosleep(&ms, NULL);
}

/* The open fds of this process below 1024, from /proc/self/fd. */
struct fd_snapshot {
    unsigned char open[1024];
};

static inline void fds_snapshot(struct fd_snapshot *s)
{
    memset(s, 0, sizeof(*s));
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd != dirfd(d) && fd >= 0 && fd < 1024)
            s->open[fd] = 1;
    }
    closedir(d);
}

/* How many fds are open now that were not in *before (negative: fewer). */
static inline int fds_added_since(const struct fd_snapshot *before)
{
    struct fd_snapshot now;
    fds_snapshot(&now);
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        n += (int)now.open[fd] - (int)before->open[fd];
    return n;
}

#endif /* TESTS_WATCHDOG_H */
