/*
 * loop_process_spawn(): what the child runs and gets (argv, environment,
 * working directory, stdio), how its exit reaches the future, and every
 * error of the call, each leaving no child and no fd behind.
 */
#include "process_testing.h"

static loop_t *loop;

static int setup(void **state)
{
    (void)state;
    loop = new_real_loop();
    watchdog_start("a process test", 60);
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

/* Spawn the helper with its stdout on a pipe; return what it printed. */
static int run_capture(loop_process_options o, struct helper_argv a, char *out, size_t cap)
{
    o.stdio[1].mode = LOOP_PROCESS_PIPE;
    loop_process *p = spawn_helper(loop, o, &a);
    int fd = loop_process_take_pipe(p, 1);
    assert_true(fd >= 0);
    read_to_eof(fd, out, cap);
    close(fd);
    int rc = wait_exit(loop, p);
    loop_process_free(p);
    return rc;
}

static void test_exit_status_is_the_future_result(void **state)
{
    (void)state;
    int codes[] = {0, 3, 255};
    for (int i = 0; i < 3; i++) {
        char code[8];
        snprintf(code, sizeof(code), "%d", codes[i]);
        struct helper_argv a = HELPER("exit", code);
        loop_process *p = spawn_helper(loop, (loop_process_options){0}, &a);
        assert_true(loop_process_pid(p) > 0);
        assert_int_equal(wait_exit(loop, p), codes[i]);
        assert_int_equal(loop_future_state(loop_process_exit(p)), LOOP_FUTURE_DONE);
        loop_process_free(p);
    }
}

static void test_death_by_signal_is_minus_the_signal(void **state)
{
    (void)state;
    struct helper_argv a = HELPER("raise", "15");
    loop_process *p = spawn_helper(loop, (loop_process_options){0}, &a);
    assert_int_equal(wait_exit(loop, p), -SIGTERM);
    loop_process_free(p);

    a = HELPER("sleep");
    p = spawn_helper(loop, (loop_process_options){0}, &a);
    assert_int_equal(loop_process_signal(p, SIGKILL), 0);
    assert_int_equal(wait_exit(loop, p), -SIGKILL);
    loop_process_free(p);
}

static void test_a_running_child_keeps_loop_run_alive(void **state)
{
    (void)state;
    struct helper_argv a = HELPER("exit", "4");
    loop_process *p = spawn_helper(loop, (loop_process_options){0}, &a);
    assert_int_equal(loop_run(loop), 0); /* returns once nothing is left: the child reaped */
    assert_true(loop_future_done(loop_process_exit(p)));
    void *r;
    assert_int_equal(loop_future_result(loop_process_exit(p), &r), 0);
    assert_int_equal(loop_process_returncode(r), 4);
    loop_process_free(p);
}

static void expect_einval(loop_process_options o)
{
    loop_process *p = (loop_process *)&o;
    assert_int_equal(loop_process_spawn(loop, &o, &p), -EINVAL);
    assert_null(p);
}

static void test_null_or_empty_argv_and_bad_options_are_einval(void **state)
{
    (void)state;
    struct fdlist before;
    fdlist_take(&before);
    char *empty[] = {NULL};
    struct helper_argv a = HELPER("exit", "0");
    loop_process_options o = {.argv = a.v};
    loop_process *p;
    assert_int_equal(loop_process_spawn(NULL, &o, &p), -EINVAL);
    assert_int_equal(loop_process_spawn(loop, NULL, &p), -EINVAL);
    assert_int_equal(loop_process_spawn(loop, &o, NULL), -EINVAL);
    expect_einval((loop_process_options){.argv = NULL});
    expect_einval((loop_process_options){.argv = empty});
    o.stdio[2].mode = 7;
    expect_einval(o);
    o = (loop_process_options){.argv = a.v, .nfds = 1};
    expect_einval(o);
    loop_process_fd low = {1, 2}, twice[] = {{1, 5}, {2, 5}}, huge = {1, INT_MAX};
    expect_einval((loop_process_options){.argv = a.v, .fds = &low, .nfds = 1});
    expect_einval((loop_process_options){.argv = a.v, .fds = twice, .nfds = 2});
    expect_einval((loop_process_options){.argv = a.v, .fds = &huge, .nfds = 1});
    assert_same_fds(&before, "by a refused spawn");
    assert_no_children();
}

static void test_closed_fds_given_are_ebadf(void **state)
{
    (void)state;
    struct helper_argv a = HELPER("exit", "0");
    loop_process_options o = {.argv = a.v};
    o.stdio[1] = (loop_process_stdio){LOOP_PROCESS_FD, 999};
    loop_process *p;
    assert_int_equal(loop_process_spawn(loop, &o, &p), -EBADF);
    o.stdio[1].fd = -1;
    assert_int_equal(loop_process_spawn(loop, &o, &p), -EBADF);
    loop_process_fd bad = {999, 5};
    o = (loop_process_options){.argv = a.v, .fds = &bad, .nfds = 1};
    assert_int_equal(loop_process_spawn(loop, &o, &p), -EBADF);
    assert_no_children();
}

static void expect_spawn_error(loop_process_options o, int err)
{
    struct fdlist before;
    fdlist_take(&before);
    loop_process *p = (loop_process *)&o;
    assert_int_equal(loop_process_spawn(loop, &o, &p), err);
    assert_null(p);
    assert_same_fds(&before, "by a failed spawn");
    assert_no_children(); /* the child that could not exec was reaped */
}

static void test_exec_failure_reaches_the_caller_as_enoent(void **state)
{
    (void)state;
    char *missing[] = {"/nonexistent/program", NULL};
    char *unknown[] = {"no-such-program-in-path", NULL};
    char *blank[] = {"", NULL};
    expect_spawn_error((loop_process_options){.argv = missing}, -ENOENT);
    expect_spawn_error((loop_process_options){.argv = unknown}, -ENOENT);
    expect_spawn_error((loop_process_options){.argv = blank}, -ENOENT);
    loop_process_options o = {.argv = unknown};
    o.stdio[0].mode = o.stdio[1].mode = o.stdio[2].mode = LOOP_PROCESS_PIPE;
    expect_spawn_error(o, -ENOENT); /* and its pipes are closed */
}

static void test_a_program_that_may_not_run_is_eacces(void **state)
{
    (void)state;
    char dir[] = "/tmp/loop-process-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char file[PATH_MAX];
    snprintf(file, sizeof(file), "%s/plain", dir);
    int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "#!/bin/sh\n", 10), 10);
    close(fd);
    char *not_executable[] = {file, NULL};
    char *directory[] = {dir, NULL};
    expect_spawn_error((loop_process_options){.argv = not_executable}, -EACCES);
    expect_spawn_error((loop_process_options){.argv = directory}, -EACCES);
    /* Looked up in PATH: found but not executable is EACCES, not ENOENT,
     * wherever the directory is in the list. */
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "PATH=/nonexistent:%s", dir);
    char *env[] = {path, NULL}, *by_name[] = {"plain", NULL};
    expect_spawn_error((loop_process_options){.argv = by_name, .envp = env}, -EACCES);
    snprintf(path, sizeof(path), "PATH=%s:/nonexistent", dir);
    expect_spawn_error((loop_process_options){.argv = by_name, .envp = env}, -EACCES);
    assert_int_equal(unlink(file), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_a_missing_working_directory_is_enoent(void **state)
{
    (void)state;
    struct helper_argv a = HELPER("exit", "0");
    expect_spawn_error((loop_process_options){.argv = a.v, .cwd = "/nonexistent/dir"}, -ENOENT);
}

static void test_argv_env_and_cwd_reach_the_child(void **state)
{
    (void)state;
    char out[256];
    assert_int_equal(
        run_capture((loop_process_options){.cwd = "/tmp"}, HELPER("cwd"), out, sizeof(out)), 0);
    assert_string_equal(out, "/tmp\n");
    setenv("LOOP_PROCESS_TEST_VAR", "inherited", 1);
    assert_int_equal(run_capture((loop_process_options){0}, HELPER("env", "LOOP_PROCESS_TEST_VAR"),
                                 out, sizeof(out)),
                     0);
    assert_string_equal(out, "inherited\n");
    char *env[] = {"LOOP_PROCESS_TEST_VAR=given", NULL};
    assert_int_equal(run_capture((loop_process_options){.envp = env},
                                 HELPER("env", "LOOP_PROCESS_TEST_VAR"), out, sizeof(out)),
                     0);
    assert_string_equal(out, "given\n");
    char *bare[] = {NULL};
    assert_int_equal(
        run_capture((loop_process_options){.envp = bare}, HELPER("env", "HOME"), out, sizeof(out)),
        0);
    assert_string_equal(out, "(unset)\n");
    unsetenv("LOOP_PROCESS_TEST_VAR");
}

static void test_a_name_is_looked_up_in_the_childs_path(void **state)
{
    (void)state;
    char dir[] = "/tmp/loop-process-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char link[PATH_MAX];
    snprintf(link, sizeof(link), "%s/loop-helper", dir);
    assert_int_equal(symlink(self_exe(), link), 0);
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "PATH=/nonexistent:%s", dir);
    char *env[] = {path, NULL};
    struct helper_argv a = HELPER("exit", "7");
    loop_process_options o = {.file = "loop-helper", .envp = env};
    loop_process *p = spawn_helper(loop, o, &a);
    assert_int_equal(wait_exit(loop, p), 7);
    loop_process_free(p);
    assert_int_equal(unlink(link), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_pipes_carry_stdin_stdout_and_stderr(void **state)
{
    (void)state;
    struct helper_argv a = HELPER("cat");
    loop_process_options o = {0};
    o.stdio[0].mode = o.stdio[1].mode = LOOP_PROCESS_PIPE;
    loop_process *p = spawn_helper(loop, o, &a);
    int in = loop_process_take_pipe(p, 0), out = loop_process_take_pipe(p, 1);
    assert_true(in >= 0 && out >= 0);
    assert_int_equal(loop_process_take_pipe(p, 1), -ENOENT); /* handed over once */
    assert_int_equal(loop_process_take_pipe(p, 2), -ENOENT); /* inherited: no pipe */
    assert_int_equal(loop_process_take_pipe(p, 3), -EINVAL);
    assert_int_equal(loop_process_take_pipe(NULL, 0), -EINVAL);
    for (int fd = in; fd >= 0; fd = fd == in ? out : -1) { /* non-blocking, close-on-exec */
        assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    }
    assert_int_equal(write(in, "hello, child", 12), 12);
    close(in);
    char buf[64];
    read_to_eof(out, buf, sizeof(buf));
    close(out);
    assert_string_equal(buf, "hello, child");
    assert_int_equal(wait_exit(loop, p), 0);
    loop_process_free(p);

    /* stderr; and the child's own ends are blocking and inheritable. */
    a = HELPER("flags");
    o = (loop_process_options){0};
    o.stdio[0].mode = LOOP_PROCESS_DEVNULL;
    o.stdio[1].mode = LOOP_PROCESS_PIPE;
    o.stdio[2].mode = LOOP_PROCESS_PIPE;
    p = spawn_helper(loop, o, &a);
    int err = loop_process_take_pipe(p, 2);
    read_to_eof(err, buf, sizeof(buf));
    close(err);
    assert_string_equal(buf, "0:0:0\n1:0:0\n2:0:0\n");
    assert_int_equal(wait_exit(loop, p), 0);
    loop_process_free(p); /* closes the stdout pipe not taken */
}

static void test_devnull_and_given_fds_as_stdio(void **state)
{
    (void)state;
    char out[64];
    loop_process_options o = {0};
    o.stdio[0].mode = LOOP_PROCESS_DEVNULL;
    assert_int_equal(run_capture(o, HELPER("cat"), out, sizeof(out)), 0);
    assert_string_equal(out, ""); /* /dev/null reads as EOF */

    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    o = (loop_process_options){0};
    o.stdio[1] = (loop_process_stdio){LOOP_PROCESS_FD, p[1]};
    struct helper_argv a = HELPER("env", "NO_SUCH_VARIABLE_HERE");
    loop_process *c = spawn_helper(loop, o, &a);
    assert_int_equal(wait_exit(loop, c), 0);
    loop_process_free(c);
    assert_true(fcntl(p[1], F_GETFD) >= 0); /* the caller's fd stays the caller's */
    close(p[1]);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    read_to_eof(p[0], out, sizeof(out));
    close(p[0]);
    assert_string_equal(out, "(unset)\n");
}

static void ignore_signal(int signo)
{
    (void)signo;
}

/* The SigBlk, SigIgn and SigCgt lines of a child's /proc/self/status. */
static void child_signal_state(char *out, size_t cap)
{
    /* cat, not this binary: a sanitizer's runtime installs handlers of its
     * own as it starts. */
    char *argv[] = {"cat", "/proc/self/status", NULL};
    char status[4096];
    loop_process_options o = {.argv = argv};
    o.stdio[1].mode = LOOP_PROCESS_PIPE;
    loop_process *p = NULL;
    assert_int_equal(loop_process_spawn(loop, &o, &p), 0);
    int fd = loop_process_take_pipe(p, 1);
    read_to_eof(fd, status, sizeof(status));
    close(fd);
    assert_int_equal(wait_exit(loop, p), 0);
    loop_process_free(p);
    out[0] = '\0';
    for (char *line = strtok(status, "\n"); line; line = strtok(NULL, "\n"))
        if (!strncmp(line, "SigBlk:", 7) || !strncmp(line, "SigIgn:", 7) ||
            !strncmp(line, "SigCgt:", 7))
            snprintf(out + strlen(out), cap - strlen(out), "%s\n", line);
}

static void test_the_child_starts_with_default_signals_and_an_empty_mask(void **state)
{
    (void)state;
    /* The parent ignores SIGPIPE, handles SIGUSR1 through the loop and
     * SIGTERM by hand, and blocks SIGUSR2. */
    struct sigaction ign = {.sa_handler = SIG_IGN}, handle = {.sa_handler = ignore_signal};
    struct sigaction old_pipe, old_term;
    sigaction(SIGPIPE, &ign, &old_pipe);
    sigaction(SIGTERM, &handle, &old_term);
    assert_int_equal(loop_add_signal(loop, SIGUSR1, nop_cb, NULL), 0);
    sigset_t block, old_mask;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &block, &old_mask);

    char out[256];
    child_signal_state(out, sizeof(out));

    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    assert_int_equal(loop_remove_signal(loop, SIGUSR1), 0);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    assert_string_equal(out, "SigBlk:\t0000000000000000\n"
                             "SigIgn:\t0000000000000000\n"
                             "SigCgt:\t0000000000000000\n");
}

static int sigchld_seen;
static void count_sigchld(int signo)
{
    (void)signo;
    sigchld_seen++;
}

static void test_no_sigchld_handler_is_installed_and_a_users_stays(void **state)
{
    (void)state;
    struct sigaction before, after;
    sigaction(SIGCHLD, NULL, &before);
    struct helper_argv a = HELPER("exit", "1");
    loop_process *p = spawn_helper(loop, (loop_process_options){0}, &a);
    assert_int_equal(wait_exit(loop, p), 1);
    loop_process_free(p);
    sigaction(SIGCHLD, NULL, &after);
    assert_true(before.sa_handler == SIG_DFL && after.sa_handler == SIG_DFL);

    /* A program's own handler (one that does not reap) is left alone. */
    struct sigaction mine = {.sa_handler = count_sigchld, .sa_flags = SA_RESTART}, old;
    sigaction(SIGCHLD, &mine, &old);
    p = spawn_helper(loop, (loop_process_options){0}, &a);
    assert_int_equal(wait_exit(loop, p), 1);
    loop_process_free(p);
    sigaction(SIGCHLD, NULL, &after);
    sigaction(SIGCHLD, &old, NULL);
    assert_true(after.sa_handler == count_sigchld);
    assert_int_equal(sigchld_seen, 1);
}

static void test_a_child_reaped_by_someone_else_fails_with_echild(void **state)
{
    (void)state;
    struct helper_argv a = HELPER("exit", "2");
    loop_process *p = spawn_helper(loop, (loop_process_options){0}, &a);
    siginfo_t si;
    assert_int_equal(waitid(P_PID, (id_t)loop_process_pid(p), &si, WEXITED), 0);
    assert_int_equal(loop_run_until_complete(loop, loop_process_exit(p), NULL), -ECHILD);
    loop_process_free(p);
}

static void test_signals_after_the_exit_are_esrch(void **state)
{
    (void)state;
    struct helper_argv a = HELPER("exit", "0");
    loop_process *p = spawn_helper(loop, (loop_process_options){0}, &a);
    assert_int_equal(loop_process_signal(p, 0), 0); /* not reaped: it is there */
    siginfo_t si; /* exited, but the loop has not seen it: a zombie, still ours */
    assert_int_equal(waitid(P_PID, (id_t)loop_process_pid(p), &si, WEXITED | WNOWAIT), 0);
    assert_int_equal(loop_process_signal(p, SIGTERM), 0);
    assert_int_equal(wait_exit(loop, p), 0); /* the signal came too late to matter */
    assert_int_equal(loop_process_signal(p, SIGTERM), -ESRCH);
    assert_int_equal(loop_process_signal(p, 0), -ESRCH);
    assert_int_equal(loop_process_signal(p, -1), -EINVAL);
    assert_int_equal(loop_process_signal(p, 1000), -EINVAL);
    assert_int_equal(loop_process_signal(NULL, SIGTERM), -EINVAL);
    assert_int_equal(loop_process_pid(NULL), -EINVAL);
    assert_null(loop_process_exit(NULL));
    loop_process_free(p);
    loop_process_free(NULL);
}

static void test_a_freed_handle_still_has_its_child_reaped(void **state)
{
    (void)state;
    struct helper_argv a = HELPER("exit", "5");
    loop_process *p = spawn_helper(loop, (loop_process_options){0}, &a);
    loop_future *f = loop_process_exit(p);
    loop_future_ref(f);
    int pid = loop_process_pid(p);
    loop_process_free(p);
    void *r;
    assert_int_equal(loop_run_until_complete(loop, f, &r), 0);
    assert_int_equal(loop_process_returncode(r), 5);
    loop_future_unref(f);
    assert_false(is_unreaped_child(pid));
}

int main(int argc, char **argv)
{
    int rc = process_helper(argc, argv);
    if (rc >= 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exit_status_is_the_future_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_death_by_signal_is_minus_the_signal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_running_child_keeps_loop_run_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_or_empty_argv_and_bad_options_are_einval, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_closed_fds_given_are_ebadf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_failure_reaches_the_caller_as_enoent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_program_that_may_not_run_is_eacces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_missing_working_directory_is_enoent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_argv_env_and_cwd_reach_the_child, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_name_is_looked_up_in_the_childs_path, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipes_carry_stdin_stdout_and_stderr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_devnull_and_given_fds_as_stdio, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_the_child_starts_with_default_signals_and_an_empty_mask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_sigchld_handler_is_installed_and_a_users_stays,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_child_reaped_by_someone_else_fails_with_echild,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_signals_after_the_exit_are_esrch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_freed_handle_still_has_its_child_reaped, setup,
                                        teardown),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
