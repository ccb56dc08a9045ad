/*
 * Resources: the loop's fds and memory come back, and its fds never leak
 * into programs it execs.
 *
 *  - /proc/self/fd is the same before and after each test (and the suite):
 *    loops created and freed with every feature in use, loops whose
 *    creation failed half-way (-EMFILE at each of its fds, -ENOMEM at each
 *    of its allocations), a forked child's loop_fork.
 *  - Every fd the loop opens is close-on-exec: O_CLOEXEC in
 *    /proc/self/fdinfo, and a program exec'd from a callback does not have
 *    them; the same after loop_fork() in a child.
 */
#include "counting_alloc.h"
#include "fdleak.h"
#include "fixtures.h"
#include "sockets.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* O_CLOEXEC as /proc/self/fdinfo reports it (flags, in octal). */
static bool cloexec(int fd)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    unsigned long flags = 0;
    bool found = false;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "flags: %lo", &flags) == 1) {
            found = true;
            break;
        }
    fclose(f);
    return found && (flags & O_CLOEXEC) && (fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

/* A loop with everything that may open an fd in use. */
static void use_everything(loop_t *loop, int sock)
{
    assert_int_equal(loop_add_reader(loop, sock, nop_io, NULL), 0);
    assert_int_equal(loop_add_writer(loop, sock, nop_io, NULL), 0);
    assert_int_equal(loop_call_soon_threadsafe(loop, nop_cb, NULL), 0);
    assert_int_equal(loop_add_signal(loop, SIGUSR2, nop_cb, NULL), 0);
    assert_int_equal(loop_call_later(loop, 1000, nop_cb, NULL, NULL), 0);
    assert_int_equal(loop_run_once(loop, 0), 0);
    raise(SIGUSR2);
    assert_int_equal(loop_run_once(loop, 0), 0);
}

static void test_loops_created_and_freed_leak_no_fd(void **state)
{
    (void)state;
    int sv[2];
    make_socketpair(sv);
    static struct fdlist before;
    fdlist_take(&before);
    for (int i = 0; i < 300; i++) {
        loop_t *loop;
        assert_int_equal(loop_new_with(&loop, &(loop_options){.clock = (enum loop_clock)(i % 2)}),
                         0);
        if (i % 3)
            use_everything(loop, sv[0]);
        if (i % 3 == 1) { /* freed with everything still registered */
            assert_int_equal(loop_free(loop), 0);
            continue;
        }
        if (i % 3 == 2) {
            assert_int_equal(loop_remove_reader(loop, sv[0]), 0);
            assert_int_equal(loop_remove_writer(loop, sv[0]), 0);
            assert_int_equal(loop_remove_signal(loop, SIGUSR2), 0);
        }
        assert_int_equal(loop_free(loop), 0);
    }
    assert_same_fds(&before, "by 300 loops created and freed");
    /* The user's fds are the user's: never closed by the loop. */
    assert_true(fcntl(sv[0], F_GETFD) >= 0);
    close_pair(sv);
}

/* ---- failures half-way through loop_new ------------------------------------ */

static void test_failed_loop_new_leaks_nothing(void **state)
{
    (void)state;
    static struct fdlist before;
    fdlist_take(&before);
    int failures = 0;
    for (int k = 0; k < 64; k++) {
        struct counting_alloc f = {0};
        counting_alloc_fail_after(&f, k);
        loop_options o = {.realloc = counting_realloc, .alloc_ctx = &f};
        loop_t *loop = (loop_t *)&f; /* must be overwritten */
        int err = loop_new_with(&loop, &o);
        if (err) {
            assert_int_equal(err, -ENOMEM);
            assert_null(loop);
            assert_int_equal(f.live_blocks, 0);
            failures++;
            continue;
        }
        /* It got all it needed: now use it with allocations failing. */
        counting_alloc_fail_after(&f, 0);
        int sv[2];
        make_socketpair(sv);
        int r = loop_add_reader(loop, sv[0], nop_io, NULL);
        assert_true(r == 0 || r == -ENOMEM);
        r = loop_call_soon_threadsafe(loop, nop_cb, NULL);
        assert_true(r == 0 || r == -ENOMEM);
        r = loop_call_later(loop, 5, nop_cb, NULL, NULL);
        assert_true(r == 0 || r == -ENOMEM);
        counting_alloc_never_fail(&f);
        loop_remove_reader(loop, sv[0]);
        assert_int_equal(loop_free(loop), 0);
        assert_int_equal(f.live_blocks, 0);
        close_pair(sv);
        break;
    }
    assert_true(failures >= 1);
    assert_same_fds(&before, "by loop_new_with failing with -ENOMEM");
}

/* The lowest free fd number. */
static int lowest_free_fd(void)
{
    int fd = dup(0);
    assert_true(fd >= 0);
    close(fd);
    return fd;
}

static void test_loop_new_out_of_fds_leaks_nothing(void **state)
{
    (void)state;
    struct rlimit saved;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    static struct fdlist before;
    fdlist_take(&before);
    /* Allow exactly k more fds for k = 0, 1, 2, ...: each of the loop's
     * fds in turn is the one that fails. */
    int first_ok = -1;
    for (int k = 0; k < 8 && first_ok < 0; k++) {
        int low = lowest_free_fd();
        struct rlimit rl = saved;
        rl.rlim_cur = (rlim_t)(low + k);
        /* Every number above low must be free for "k more" to mean k. */
        bool holes = false;
        for (int i = 0; i < before.n; i++)
            holes |= before.fd[i] > low && before.fd[i] < low + k;
        if (holes)
            break;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
        loop_t *loop;
        int err = loop_new(&loop);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
        if (err == 0) {
            first_ok = k;
            assert_int_equal(loop_free(loop), 0);
        } else {
            assert_int_equal(err, -EMFILE);
            assert_null(loop);
        }
        assert_same_fds(&before, "by loop_new failing with -EMFILE");
    }
    assert_true(first_ok >= 1);
    printf("resources: a loop needs %d fds of its own\n", first_ok);
}

/* ---- close-on-exec -------------------------------------------------------------- */

/* Exec a shell that fails if any of fds[] is open in it. */
static int exec_sees_none(const int *fds, int n)
{
    char script[1024] = "for f in";
    for (int i = 0; i < n; i++)
        snprintf(script + strlen(script), sizeof(script) - strlen(script), " %d", fds[i]);
    strncat(script, "; do [ -e /proc/$$/fd/$f ] && exit 1; done; exit 0",
            sizeof(script) - strlen(script) - 1);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(127);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_every_fd_of_the_loop_is_close_on_exec(void **state)
{
    (void)state;
    int sv[2];
    make_socketpair(sv);
    static struct fdlist before;
    fdlist_take(&before);
    loop_t *loop;
    assert_int_equal(loop_new(&loop), 0);
    use_everything(loop, sv[0]);
    int fds[16];
    int n = fds_opened_since(&before, fds, 16);
    assert_true(n >= 1);
    bool has_epfd = false;
    for (int i = 0; i < n; i++) {
        if (!cloexec(fds[i]))
            fail_msg("the loop's fd %d is not close-on-exec", fds[i]);
        has_epfd |= fds[i] == loop_fd(loop);
    }
    assert_true(has_epfd);
    assert_int_equal(exec_sees_none(fds, n), 0);
    printf("resources: the loop's %d fds are close-on-exec\n", n);

    /* A child's loop_fork() makes new fds: close-on-exec too, and the
     * child leaks none of the parent's loop fds it replaced. */
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        static struct fdlist pre;
        fdlist_take(&pre);
        if (loop_fork(loop) != 0)
            _exit(2);
        int cfds[16];
        int m = 0;
        static struct fdlist post;
        fdlist_take(&post);
        for (int i = 0; i < post.n; i++)
            if (!fdlist_has(&pre, post.fd[i]) && m < 16)
                cfds[m++] = post.fd[i];
        for (int i = 0; i < m; i++)
            if (!cloexec(cfds[i]))
                _exit(3);
        for (int i = 0; i < post.n; i++) /* the loop's fds, whatever their number */
            if (!fdlist_has(&before, post.fd[i]) && !cloexec(post.fd[i]))
                _exit(4);
        if (post.n > pre.n)
            _exit(5); /* the replaced fds were closed, not leaked */
        if (loop_run_once(loop, 0) != 0)
            _exit(6);
        if (loop_free(loop) != 0)
            _exit(7);
        static struct fdlist end;
        fdlist_take(&end);
        for (int i = 0; i < end.n; i++)
            if (!fdlist_has(&before, end.fd[i])) {
                char link[64], target[256] = "?";
                snprintf(link, sizeof(link), "/proc/self/fd/%d", end.fd[i]);
                ssize_t len = readlink(link, target, sizeof(target) - 1);
                target[len > 0 ? len : 1] = 0;
                fprintf(stderr, "child: fd %d (%s) left open after loop_free\n", end.fd[i], target);
                _exit(8);
            }
        for (int i = 0; i < before.n; i++)
            if (!fdlist_has(&end, before.fd[i])) {
                fprintf(stderr, "child: fd %d, open before the loop, was closed\n", before.fd[i]);
                _exit(9);
            }
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status))
        fail_msg("in a child after loop_fork: check %d failed", WEXITSTATUS(status));

    assert_int_equal(loop_free(loop), 0);
    assert_same_fds(&before, "by a loop that used every feature");
    close_pair(sv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loops_created_and_freed_leak_no_fd),
        cmocka_unit_test(test_failed_loop_new_leaks_nothing),
        cmocka_unit_test(test_loop_new_out_of_fds_leaks_nothing),
        cmocka_unit_test(test_every_fd_of_the_loop_is_close_on_exec),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
