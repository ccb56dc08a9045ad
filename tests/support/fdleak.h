/*
 * The open fds of the process, for the suites' fd-leak checks.
 *
 *  - fdlist_take() lists them (sorted); assert_same_fds() fails, naming the
 *    fd, if one was opened or closed since a list was taken;
 *    fds_unchanged_since() says the same without cmocka (for a child).
 *  - A suite whose group setup is snapshot_fds() and whose last test is
 *    test_the_suite_leaked_no_fd() fails if any of its tests left an fd
 *    open (or closed one it did not open).
 *
 * fds at or above the soft limit are valgrind's own, and are left out.
 * Lists are 4 KB: keep them in static storage, not on the stack (valgrind
 * cannot grow the main stack across untouched pages while it delivers a
 * signal, and the suites raise signals).
 */
#ifndef LOOP_TESTS_FDLEAK_H
#define LOOP_TESTS_FDLEAK_H

#include "fixtures.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/resource.h>

#define FDLIST_MAX 1024

struct fdlist {
    int n;
    int fd[FDLIST_MAX]; /* sorted */
};

static inline int fdlist_cmp(const void *x, const void *y)
{
    return *(const int *)x - *(const int *)y;
}

/* List the open fds into *l; returns how many, or -1. */
static inline int fdlist_take(struct fdlist *l)
{
    struct rlimit rl;
    DIR *d = opendir("/proc/self/fd");
    l->n = 0;
    if (!d || getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        if (d)
            closedir(d);
        return l->n = -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd != dirfd(d) && (rlim_t)fd < rl.rlim_cur && l->n < FDLIST_MAX)
            l->fd[l->n++] = fd;
    }
    closedir(d);
    qsort(l->fd, (size_t)l->n, sizeof(int), fdlist_cmp);
    return l->n;
}

static inline bool fdlist_has(const struct fdlist *l, int fd)
{
    return bsearch(&fd, l->fd, (size_t)l->n, sizeof(int), fdlist_cmp) != NULL;
}

/* How many fds are open now. */
static inline int count_open_fds(void)
{
    static struct fdlist now;
    int n = fdlist_take(&now);
    assert_true(n >= 0);
    return n;
}

/* The fds open now that are not in *before, into out[max]; how many. */
static inline int fds_opened_since(const struct fdlist *before, int *out, int max)
{
    static struct fdlist now;
    fdlist_take(&now);
    int n = 0;
    for (int i = 0; i < now.n; i++)
        if (!fdlist_has(before, now.fd[i]) && n < max)
            out[n++] = now.fd[i];
    return n;
}

/* Are exactly the fds of *before open now?  (No cmocka: usable in a child.) */
static inline bool fds_unchanged_since(const struct fdlist *before)
{
    static struct fdlist now;
    if (fdlist_take(&now) != before->n)
        return false;
    for (int i = 0; i < now.n; i++)
        if (now.fd[i] != before->fd[i])
            return false;
    return true;
}

/* Fail, naming the fd, unless exactly the fds of *before are open now. */
static inline void assert_same_fds(const struct fdlist *before, const char *when)
{
    static struct fdlist now;
    assert_true(fdlist_take(&now) >= 0);
    for (int i = 0; i < now.n; i++)
        if (!fdlist_has(before, now.fd[i]))
            fail_msg("fd %d leaked %s", now.fd[i], when);
    for (int i = 0; i < before->n; i++)
        if (!fdlist_has(&now, before->fd[i]))
            fail_msg("fd %d was closed %s, but it was not the loop's", before->fd[i], when);
}

/* ---- the check around a whole suite --------------------------------------- */

static inline struct fdlist *fdleak_suite_fds(void)
{
    static struct fdlist before_the_suite;
    return &before_the_suite;
}

/* The group setup: the fds open before the first test. */
static inline int snapshot_fds(void **state)
{
    (void)state;
    return fdlist_take(fdleak_suite_fds()) < 0 ? -1 : 0;
}

/* Last in the suite: every fd open now was open before the first test. */
static inline void test_the_suite_leaked_no_fd(void **state)
{
    (void)state;
    assert_same_fds(fdleak_suite_fds(), "by this suite");
}

#endif /* LOOP_TESTS_FDLEAK_H */
