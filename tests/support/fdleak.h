/*
 * Open fds of the process, for the suites' fd-leak checks.  A suite whose
 * last test is test_the_suite_leaked_no_fd() and whose group setup is
 * snapshot_fds() fails if any test left an fd open.  Include after
 * <cmocka.h>; define FDLEAK_NO_SUITE_CHECK to take list_fds() alone.
 */
#ifndef LOOP_TESTS_FDLEAK_H
#define LOOP_TESTS_FDLEAK_H

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static inline int fdleak_cmp(const void *x, const void *y)
{
    return *(const int *)x - *(const int *)y;
}

/* Open fds, sorted; those at or above the soft limit are valgrind's own. */
static inline int list_fds(int *fds, int max)
{
    struct rlimit rl;
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d || getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        if (d)
            closedir(d);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd != dirfd(d) && (rlim_t)fd < rl.rlim_cur && n < max)
            fds[n++] = fd;
    }
    closedir(d);
    qsort(fds, (size_t)n, sizeof(int), fdleak_cmp);
    return n;
}

#ifndef FDLEAK_NO_SUITE_CHECK
#define FDLEAK_MAX 256
static int fds_before[FDLEAK_MAX], nfds_before;

/* The group setup: the fds open before the first test. */
static int snapshot_fds(void **state)
{
    (void)state;
    nfds_before = list_fds(fds_before, FDLEAK_MAX);
    return nfds_before < 0 ? -1 : 0;
}

/* Last in the suite: every fd open now was open before the first test. */
static void test_the_suite_leaked_no_fd(void **state)
{
    (void)state;
    int now[FDLEAK_MAX];
    int n = list_fds(now, FDLEAK_MAX);
    if (n != nfds_before || memcmp(now, fds_before, (size_t)n * sizeof(int)) != 0)
        fail_msg("fd leak: %d open fds before the suite, %d after", nfds_before, n);
}
#endif

#endif /* LOOP_TESTS_FDLEAK_H */
