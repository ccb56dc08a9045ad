/*
 * The fds a child gets: exactly 0-2 and those passed, whatever the parent
 * has open (10,000 fds included) and however the numbers cross; no fd is
 * left behind when the fds run out (EMFILE); and the close-one-by-one path
 * for kernels without close_range() closes as much.
 */
#include "process_testing.h"

#include "../../src/process/process_internal.h"

#include <sys/resource.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

static loop_t *loop;

static int setup(void **state)
{
    (void)state;
    loop = new_real_loop();
    watchdog_start("a process fd test", 120);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    watchdog_stop();
    assert_int_equal(loop_free(loop), 0);
    assert_no_children();
    return 0;
}

/* What the helper run with options o printed on its stdout (a pipe). */
static void capture(loop_t *l, loop_process_options o, struct helper_argv a, char *out, size_t cap)
{
    o.stdio[1].mode = LOOP_PROCESS_PIPE;
    loop_process *p = spawn_helper(l, o, &a);
    int fd = loop_process_take_pipe(p, 1);
    read_to_eof(fd, out, cap);
    close(fd);
    assert_int_equal(wait_exit(l, p), 0);
    loop_process_free(p);
}

static void test_the_child_sees_only_stdio_and_the_fds_passed(void **state)
{
    (void)state;
    int plain = open("/dev/null", O_RDONLY); /* not close-on-exec: still not passed */
    int p[2];
    assert_int_equal(pipe(p), 0);
    char out[256];
    capture(loop, (loop_process_options){0}, HELPER("fds"), out, sizeof(out));
    assert_string_equal(out, "0 1 2\n");
    loop_process_fd pass[] = {{p[1], 9}, {plain, 4}};
    capture(loop, (loop_process_options){.fds = pass, .nfds = 2}, HELPER("fds"), out, sizeof(out));
    assert_string_equal(out, "0 1 2 4 9\n");
    close(plain);
    close(p[0]);
    close(p[1]);
}

/* Open n copies of /dev/null; the highest fd. */
static int open_many(int n)
{
    int fd = open("/dev/null", O_RDONLY), last = fd;
    for (int i = 1; i < n && last >= 0; i++)
        last = dup(fd);
    return last;
}

static void test_ten_thousand_open_fds_are_not_inherited(void **state)
{
    (void)state;
    /* In a child of the test, so that the suite keeps its limit and fds. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = rl.rlim_max < 20000 ? rl.rlim_max : 20000;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < 10100)
            _exit(10);
        loop_t *l = NULL;
        if (loop_new(&l) != 0 || open_many(10000) < 10000)
            _exit(11);
        int p[2];
        if (pipe(p) != 0 || dup2(p[1], 9500) != 9500)
            _exit(12);
        loop_process_fd pass = {9500, 7};
        struct helper_argv a = HELPER("fds");
        loop_process_options o = {.argv = a.v, .fds = &pass, .nfds = 1};
        o.stdio[1].mode = LOOP_PROCESS_PIPE;
        loop_process *c = NULL;
        if (loop_process_spawn(l, &o, &c) != 0)
            _exit(13);
        char out[256];
        int fd = loop_process_take_pipe(c, 1);
        struct pollfd pfd = {fd, POLLIN, 0};
        size_t got = 0;
        ssize_t n;
        while (poll(&pfd, 1, -1) > 0 && (n = read(fd, out + got, sizeof(out) - 1 - got)) > 0)
            got += (size_t)n;
        out[got] = '\0';
        void *r = (void *)1;
        if (loop_run_until_complete(l, loop_process_exit(c), &r) != 0 || r != NULL)
            _exit(14);
        _exit(strcmp(out, "0 1 2 7\n") == 0 ? 0 : 15);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_fd_numbers_that_cross_land_where_asked(void **state)
{
    (void)state;
    /* Two pipes whose write ends sit at 40 and 41 and swap places in the
     * child; a third whose write end is 50 becomes the child's stdout while
     * fd 50 of the child is a fourth. */
    int a[2], b[2], c[2], d[2];
    assert_int_equal(pipe2(a, O_CLOEXEC | O_NONBLOCK), 0);
    assert_int_equal(pipe2(b, O_CLOEXEC | O_NONBLOCK), 0);
    assert_int_equal(pipe2(c, O_CLOEXEC | O_NONBLOCK), 0);
    assert_int_equal(pipe2(d, O_CLOEXEC | O_NONBLOCK), 0);
    assert_int_equal(dup2(a[1], 40), 40);
    assert_int_equal(dup2(b[1], 41), 41);
    close(a[1]);
    close(b[1]);
    assert_int_equal(dup2(c[1], 50), 50);
    close(c[1]);
    loop_process_fd pass[] = {{40, 41}, {41, 40}, {d[1], 50}};
    struct helper_argv args =
        HELPER("write", "40", "to-b", "41", "to-a", "50", "to-d", "1", "to-c");
    loop_process_options o = {.fds = pass, .nfds = 3};
    o.stdio[1] = (loop_process_stdio){LOOP_PROCESS_FD, 50};
    loop_process *p = spawn_helper(loop, o, &args);
    assert_int_equal(wait_exit(loop, p), 0);
    loop_process_free(p);
    close(40);
    close(41);
    close(50);
    close(d[1]);
    char buf[32];
    struct {
        int fd;
        const char *text;
    } want[] = {{a[0], "to-a"}, {b[0], "to-b"}, {c[0], "to-c"}, {d[0], "to-d"}};
    for (int i = 0; i < 4; i++) {
        read_to_eof(want[i].fd, buf, sizeof(buf));
        assert_string_equal(buf, want[i].text);
        close(want[i].fd);
    }
}

/* Fill every free fd number below the limit; how many were filled. */
static int fill_fds(int *fds, int max)
{
    int n = 0;
    while (n < max && (fds[n] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        n++;
    assert_int_equal(errno, EMFILE);
    return n;
}

static void test_running_out_of_fds_is_emfile_and_leaves_nothing(void **state)
{
    (void)state;
    /* valgrind 3.19 emulates the clone as a fork, and its own bookkeeping
     * of that fork aborts valgrind when the process is out of fds (an
     * assertion in its syscall wrapper): the other runs cover this one. */
    if (RUNNING_ON_VALGRIND)
        skip();
    struct rlimit old;
    getrlimit(RLIMIT_NOFILE, &old);
    struct fdlist before;
    fdlist_take(&before);
    struct rlimit low = {(rlim_t)before.fd[before.n - 1] + 64, old.rlim_max};
    static int filler[FDLIST_MAX];
    int ok = 0, emfile = 0;
    /* Leave k fds free, k = 0..15: a spawn with three pipes needs eight
     * for its pipes and one for the pidfd, and the child four more to move
     * its fds above the targets. */
    for (int k = 0; k < 16; k++) {
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
        int n = fill_fds(filler, FDLIST_MAX);
        for (int i = 0; i < k && n > 0; i++)
            close(filler[--n]);
        struct helper_argv a = HELPER("exit", "0");
        loop_process_options o = {.argv = a.v};
        o.stdio[0].mode = o.stdio[1].mode = o.stdio[2].mode = LOOP_PROCESS_PIPE;
        loop_process *p = NULL;
        int err = loop_process_spawn(loop, &o, &p);
        while (n > 0)
            close(filler[--n]);
        setrlimit(RLIMIT_NOFILE, &old);
        if (err == 0) {
            ok++;
            assert_int_equal(wait_exit(loop, p), 0);
            loop_process_free(p);
        } else {
            emfile++;
            assert_int_equal(err, -EMFILE);
            assert_null(p);
        }
        assert_same_fds(&before, "by a spawn short of fds");
        assert_no_children();
    }
    assert_true(emfile > 0 && ok > 0);
}

/* The child's side alone, in a fork of the test, told that there is no
 * close_range(): it must close everything by hand before the exec. */
static void test_without_close_range_every_fd_is_closed_one_by_one(void **state)
{
    (void)state;
    int out[2], err[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    assert_int_equal(pipe2(err, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        open_many(50); /* left open, not close-on-exec */
        struct helper_argv a = HELPER("fds");
        struct loop__fdmap map[] = {{out[1], 1, -1}};
        struct loop__process_plan plan = {.file = a.v[0],
                                          .argv = a.v,
                                          .envp = environ,
                                          .err_fd = err[1],
                                          .high = 3,
                                          .nmap = 1,
                                          .map = map,
                                          .no_close_range = true,
                                          .max_fd = 1023};
        _exit(loop__process_child(&plan));
    }
    close(out[1]);
    close(err[1]);
    char buf[256];
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    read_to_eof(out[0], buf, sizeof(buf));
    int child_err = 0;
    assert_int_equal(read(err[0], &child_err, sizeof(child_err)), 0); /* it exec'd */
    close(out[0]);
    close(err[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_string_equal(buf, "0 1 2\n");
}

int main(int argc, char **argv)
{
    int rc = process_helper(argc, argv);
    if (rc >= 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_the_child_sees_only_stdio_and_the_fds_passed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ten_thousand_open_fds_are_not_inherited, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fd_numbers_that_cross_land_where_asked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_running_out_of_fds_is_emfile_and_leaves_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_without_close_range_every_fd_is_closed_one_by_one,
                                        setup, teardown),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
