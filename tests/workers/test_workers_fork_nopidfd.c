/*
 * Processes mode where pidfd_open() is missing (Linux before 5.3, or
 * valgrind 3.19): a seccomp filter makes pidfd_open and pidfd_send_signal
 * fail with ENOSYS in a child of the test, which then runs workers there.
 * The supervisor must still see a worker die, restart it, stop the others
 * gracefully and reap every one, through its pipes and waitpid(), even
 * one whose end of file comes well before its exit.  The
 * scenario runs in that child (no cmocka there); the test checks what it
 * reported and its exit status.
 */
#include "workers_testing.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define N 2

static bool without_pidfds(void)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_open, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_send_signal, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0 &&
           syscall(SYS_pidfd_open, getpid(), 0) < 0 && errno == ENOSYS;
}

struct scenario {
    struct wlog *log;
    int ready, exited;
    pid_t killed, restarted;
    int killed_code, killed_status;
};

static int quiet_setup(loop_t *loop, unsigned index, void *arg)
{
    (void)loop;
    (void)index;
    (void)arg;
    return 0;
}

static void quick_drain(loop_t *loop, unsigned index, void *arg)
{
    struct scenario *s = arg;
    wlog_put(s->log, "drain %u", index);
    loop_call_later(loop, LOOP_MS(2), nop_cb, NULL, NULL); /* a worker process: no cmocka */
}

static void on_event(loop_workers *w, const loop_workers_event *e, void *arg)
{
    struct scenario *s = arg;
    if (e->kind == LOOP_WORKERS_READY) {
        if (++s->ready == N) {
            s->killed = e->pid;
            kill(e->pid, SIGKILL);
        } else if (s->ready == N + 1) {
            s->restarted = e->pid;
            loop_workers_stop(w);
        }
    } else if (s->exited++ == 0) {
        s->killed_code = e->code;
        s->killed_status = e->status;
    }
}

/* In the child with the filter: 0 if all went as it must, else a step number. */
static int run_without_pidfds(struct wlog *log)
{
    struct scenario s = {.log = log};
    loop_workers_options o = {.mode = LOOP_WORKERS_PROCESSES,
                              .count = N,
                              .setup = quiet_setup,
                              .drain = quick_drain,
                              .on_event = on_event,
                              .restart_reset_ns = 1,
                              .arg = &s};
    loop_workers *w = NULL;

    if (!without_pidfds())
        return 2;
    if (loop_workers_start(&w, &o) != 0)
        return 3;
    if (loop_workers_wait(w) != 0)
        return 4;
    if (loop_workers_free(w) != 0)
        return 5;
    if (s.killed_code != CLD_KILLED || s.killed_status != SIGKILL)
        return 6;
    if (s.restarted <= 0 || s.restarted == s.killed || s.exited != N + 1)
        return 7;
    errno = 0;
    if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
        return 8; /* a worker was left */
    return 0;
}

static void test_without_pidfds_workers_are_still_restarted_stopped_and_reaped(void **state)
{
    (void)state;
    static struct wlog log; /* static: big, and valgrind grows no stack in a signal */
    int status;

    wlog_open(&log);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(run_without_pidfds(&log));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 2) {
        wlog_close(&log);
        skip(); /* no seccomp here */
        return;
    }
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(wlog_count(&log, "drain 0") + wlog_count(&log, "drain 1"), N);
    assert_no_child_left();
    wlog_close(&log);
}

/* ---- a worker that closes its end before it exits ------------------------------ */

static struct wlog *keep; /* the one pipe a worker process keeps */

static void exit_5(loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
    _exit(5);
}

/* After its report: close every pipe but the log, then live on a while. */
static void close_pipes(loop_t *loop, void *arg)
{
    (void)arg;
    for (int fd = 3; fd < 1024; fd++) {
        char path[64], target[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n > 5 && strncmp(target, "pipe:", 5) == 0 && fd != keep->fd[1])
            close(fd);
    }
    loop_call_later(loop, LOOP_MS(50), exit_5, NULL, NULL);
}

static int closing_setup(loop_t *loop, unsigned index, void *arg)
{
    (void)index;
    (void)arg;
    return loop_call_soon(loop, close_pipes, NULL, NULL);
}

struct early {
    int code, status, exits;
};

static void stop_at_first_exit(loop_workers *w, const loop_workers_event *e, void *arg)
{
    struct early *s = arg;
    if (e->kind == LOOP_WORKERS_EXITED && s->exits++ == 0) {
        s->code = e->code;
        s->status = e->status;
        loop_workers_stop(w);
    }
}

static int run_closing_worker(void)
{
    struct early s = {0};
    loop_workers_options o = {.mode = LOOP_WORKERS_PROCESSES,
                              .count = 1,
                              .setup = closing_setup,
                              .on_event = stop_at_first_exit,
                              .arg = &s};
    loop_workers *w = NULL;

    if (!without_pidfds())
        return 2;
    if (loop_workers_start(&w, &o) != 0 || loop_workers_wait(w) != 0 || loop_workers_free(w) != 0)
        return 3;
    if (s.code != CLD_EXITED || s.status != 5)
        return 4; /* the end of file came before the exit: it was reaped too soon */
    errno = 0;
    if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
        return 5;
    return 0;
}

static void
test_without_pidfds_a_worker_that_closes_its_pipe_early_is_reaped_when_it_ends(void **state)
{
    (void)state;
    static struct wlog log;
    int status;

    wlog_open(&log);
    keep = &log;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(run_closing_worker());
    assert_int_equal(waitpid(pid, &status, 0), pid);
    wlog_close(&log);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 2) {
        skip(); /* no seccomp here */
        return;
    }
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_no_child_left();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_without_pidfds_workers_are_still_restarted_stopped_and_reaped),
        cmocka_unit_test(
            test_without_pidfds_a_worker_that_closes_its_pipe_early_is_reaped_when_it_ends),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
