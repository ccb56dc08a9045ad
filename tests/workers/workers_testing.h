/*
 * What the workers suites share: a thread-safe counting allocator (worker
 * threads allocate from their loops while the supervisor does), the
 * number of threads of this process, a check that no child is left (no
 * zombie, nothing running), and a pipe that worker processes write lines
 * to for the parent to read once they have ended.
 */
#ifndef LOOP_TESTS_WORKERS_TESTING_H
#define LOOP_TESTS_WORKERS_TESTING_H

#include "fixtures.h"

#include "counting_alloc.h"
#include "fdleak.h"
#include "loop_workers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* counting_realloc under a lock: for allocators shared by threads. */
struct locked_alloc {
    pthread_mutex_t lock;
    struct counting_alloc a;
};

static inline void *locked_realloc(void *ctx, void *ptr, size_t size)
{
    struct locked_alloc *l = ctx;
    pthread_mutex_lock(&l->lock);
    void *p = counting_realloc(&l->a, ptr, size);
    pthread_mutex_unlock(&l->lock);
    return p;
}

/* How many threads this process has now (sanitizers may run their own). */
static inline int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* The threads the suite began with: the main one, and any of a sanitizer's. */
static int base_threads;

/* Threads beyond those the suite began with. */
static inline int extra_threads(void)
{
    return count_threads() - base_threads;
}

/*
 * The extra threads once those joined have left /proc/self/task: a joined
 * thread's tid is released before the kernel takes the thread out of its
 * group, so it may still be listed for a moment on a loaded machine.
 * Polls for up to 10 s; a thread that never goes is still counted.
 */
static inline int extra_threads_settled(void)
{
    for (int i = 0; i < 10000 && extra_threads() > 0; i++)
        usleep(1000);
    return extra_threads();
}

static inline void *no_work(void *arg)
{
    return arg;
}

/*
 * The group setup of a threads suite: its threads and fds at the start.
 * ThreadSanitizer starts a thread of its own with the first other thread:
 * one made and joined first lets it start before the count.
 */
static inline int threads_suite_setup(void **state)
{
    pthread_t t;
    if (pthread_create(&t, NULL, no_work, NULL) != 0 || pthread_join(t, NULL) != 0)
        return -1;
    base_threads = count_threads();
    return snapshot_fds(state);
}

/* No child of this process is left, running or zombie. */
static inline void assert_no_child_left(void)
{
    errno = 0;
    pid_t p = waitpid(-1, NULL, WNOHANG);
    if (p != -1 || errno != ECHILD)
        fail_msg("a child is left: waitpid(-1) gave %d (%s)", (int)p, strerror(errno));
}

/* The current disposition of signo. */
static inline void (*disposition(int signo))(int)
{
    struct sigaction sa;
    assert_int_equal(sigaction(signo, NULL, &sa), 0);
    return sa.sa_handler;
}

/* ---- a log that worker processes (or threads) append lines to ------------- */

struct wlog {
    int fd[2];
    char buf[8192];
    size_t len;
};

static inline void wlog_open(struct wlog *l)
{
    memset(l, 0, sizeof *l);
    assert_int_equal(pipe2(l->fd, O_CLOEXEC), 0);
    assert_int_equal(fcntl(l->fd[0], F_SETFL, O_NONBLOCK), 0);
}

/* One line, in one write (atomic below PIPE_BUF, whoever writes it). */
static inline void wlog_put(struct wlog *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void wlog_put(struct wlog *l, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(l->fd[1], line, (size_t)n);
    (void)w;
}

/* Read what was written (the writers have ended); NUL-terminated. */
static inline const char *wlog_read(struct wlog *l)
{
    ssize_t n;
    while (l->len < sizeof l->buf - 1 &&
           (n = read(l->fd[0], l->buf + l->len, sizeof l->buf - 1 - l->len)) > 0)
        l->len += (size_t)n;
    l->buf[l->len] = 0;
    return l->buf;
}

/* How many lines of the log are exactly `line`. */
static inline int wlog_count(struct wlog *l, const char *line)
{
    const char *p = wlog_read(l);
    size_t n = strlen(line);
    int count = 0;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len == n && strncmp(p, line, n) == 0)
            count++;
        p += len + (eol != NULL);
    }
    return count;
}

static inline void wlog_close(struct wlog *l)
{
    close(l->fd[0]);
    close(l->fd[1]);
}

#endif /* LOOP_TESTS_WORKERS_TESTING_H */
