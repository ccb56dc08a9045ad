/*
 * Helpers for programs whose loops block in the kernel: a watchdog that
 * turns a lost wake-up (a test blocked forever) into a clear failure, and a
 * way to wait until a thread sleeps in its epoll wait.  Plain C, no cmocka:
 * tests/examples/daemon_check.c uses the watchdog too.
 *
 * None of them asserts on elapsed time: the watchdog's limit is a
 * hang detector, far above anything a passing run needs.
 */
#ifndef TESTS_WATCHDOG_H
#define TESTS_WATCHDOG_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct watchdog_state {
    const char *volatile what; /* what the program is waiting for */
    void (*volatile on_fire)(void);
};

static inline struct watchdog_state *watchdog_state_(void)
{
    static struct watchdog_state s = {"", NULL};
    return &s;
}

static inline void watchdog_fire_(int signo)
{
    (void)signo;
    struct watchdog_state *s = watchdog_state_();
    static const char msg[] = "\nwatchdog: still blocked after the time limit: ";
    ssize_t n = write(2, msg, sizeof(msg) - 1);
    n = write(2, s->what, strlen(s->what));
    n = write(2, "\n", 1);
    (void)n;
    if (s->on_fire)
        s->on_fire();
    _exit(3);
}

/* Say what the program waits for now, for the watchdog's message. */
static inline void watchdog_what(const char *what)
{
    watchdog_state_()->what = what;
}

/* Call fn (async-signal-safe: it runs in the handler) before exiting, say
 * to kill a child that would outlive the program. */
static inline void watchdog_on_fire(void (*fn)(void))
{
    watchdog_state_()->on_fire = fn;
}

/* Exit the process with a message naming `what` if not stopped in time. */
static inline void watchdog_start(const char *what, unsigned seconds)
{
    watchdog_what(what);
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

#endif /* TESTS_WATCHDOG_H */
