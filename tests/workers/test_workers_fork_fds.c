/*
 * Processes mode, what a worker process holds and what failures leave:
 * a worker sees none of the supervisor's fds (its loop, its eventfd, the
 * other workers' pidfds, the read end of the report pipe), only its own
 * loop's, the write end of that pipe (and its life pipe's, without
 * pidfds); it is pinned when asked; and
 * every allocation of a start and stop failed in turn is -ENOMEM, with no
 * memory, fd or child left.
 */
#include "workers_testing.h"

#include <sched.h>
#include <sys/syscall.h>

#define N 2

static struct fdlist before_start;

struct kinds {
    int epoll, eventfd, timerfd, pidfd, pipe, other;
};

/* The fds opened since before_start, by kind. */
static struct kinds new_fd_kinds(void)
{
    static int fds[FDLIST_MAX];
    struct kinds k = {0};
    int n = fds_opened_since(&before_start, fds, FDLIST_MAX);
    for (int i = 0; i < n; i++) {
        char path[64], target[128];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fds[i]);
        ssize_t len = readlink(path, target, sizeof target - 1);
        target[len > 0 ? len : 0] = 0;
        if (strstr(target, "[eventpoll]"))
            k.epoll++;
        else if (strstr(target, "[eventfd]"))
            k.eventfd++;
        else if (strstr(target, "[timerfd]"))
            k.timerfd++;
        else if (strstr(target, "[pidfd]"))
            k.pidfd++;
        else if (strncmp(target, "pipe:", 5) == 0)
            k.pipe++;
        else
            k.other++;
    }
    return k;
}

struct run {
    struct wlog log;
    int ready;
};

static int report_fds(loop_t *loop, unsigned index, void *arg)
{
    struct run *r = arg;
    struct kinds k = new_fd_kinds();
    cpu_set_t mine;
    (void)loop;
    sched_getaffinity(0, sizeof mine, &mine);
    wlog_put(&r->log, "worker %u epoll %d eventfd %d timerfd %d pidfd %d pipe %d other %d cpus %d",
             index, k.epoll, k.eventfd, k.timerfd, k.pidfd, k.pipe, k.other, CPU_COUNT(&mine));
    return 0;
}

static void stop_when_ready(loop_workers *w, const loop_workers_event *e, void *arg)
{
    struct run *r = arg;
    if (e->kind == LOOP_WORKERS_READY && ++r->ready == N + 1)
        loop_workers_stop(w);
    if (e->kind == LOOP_WORKERS_READY && r->ready == N)
        kill(e->pid, SIGKILL); /* its replacement reports too */
}

static void test_a_worker_process_holds_none_of_the_supervisors_fds(void **state)
{
    (void)state;
    static struct run r;
    loop_workers_options o = {.mode = LOOP_WORKERS_PROCESSES,
                              .count = N,
                              .setup = report_fds,
                              .on_event = stop_when_ready,
                              .restart_reset_ns = 1,
                              .pin = true,
                              .arg = &r};
    loop_workers *w = NULL;

    /* Where pidfd_open() is missing (valgrind), a worker holds a pipe more. */
    int probe = (int)syscall(SYS_pidfd_open, getpid(), 0);
    bool pidfds = probe >= 0;
    if (pidfds)
        close(probe);
    wlog_open(&r.log);
    fdlist_take(&before_start); /* the log's pipe is the program's, from before */
    assert_int_equal(loop_workers_start(&w, &o), 0);
    assert_int_equal(loop_workers_wait(w), 0);
    assert_int_equal(loop_workers_free(w), 0);
    assert_no_child_left();
    /* Its loop: one epoll set, one eventfd, at most one timerfd; and the
     * write end of the report pipe. */
    const char *log = wlog_read(&r.log);
    int lines = 0;
    for (const char *p = log; (p = strstr(p, "worker ")) != NULL; p++, lines++) {
        unsigned index;
        struct kinds k;
        int cpus;
        assert_int_equal(sscanf(p,
                                "worker %u epoll %d eventfd %d timerfd %d pidfd %d pipe %d "
                                "other %d cpus %d",
                                &index, &k.epoll, &k.eventfd, &k.timerfd, &k.pidfd, &k.pipe,
                                &k.other, &cpus),
                         8);
        assert_int_equal(k.epoll, 1);
        assert_int_equal(k.eventfd, 1);
        assert_true(k.timerfd <= 1);
        assert_int_equal(k.pidfd, 0);
        assert_int_equal(k.pipe, pidfds ? 1 : 2); /* without pidfds, its life pipe too */
        assert_int_equal(k.other, 0);
        assert_int_equal(cpus, 1); /* pinned */
    }
    assert_int_equal(lines, N + 1);
    wlog_close(&r.log);
}

/* ---- allocation failures ------------------------------------------------------ */

static int plain_setup(loop_t *loop, unsigned index, void *arg)
{
    (void)index;
    (void)arg;
    return loop_call_later(loop, LOOP_SEC(3600), nop_cb, NULL, NULL);
}

static void plain_drain(loop_t *loop, unsigned index, void *arg)
{
    (void)index;
    (void)arg;
    loop_stop(loop);
}

static void test_each_failed_allocation_is_enomem_and_leaves_nothing(void **state)
{
    (void)state;
    static struct fdlist before;
    fdlist_take(&before);
    for (long at = 1;; at++) {
        struct counting_alloc a = {.fail_at = at};
        loop_options lo = {.realloc = counting_realloc, .alloc_ctx = &a};
        loop_workers_options o = {.mode = LOOP_WORKERS_PROCESSES,
                                  .count = N,
                                  .setup = plain_setup,
                                  .drain = plain_drain,
                                  .loop_options = &lo};
        loop_workers *w = NULL;
        int err = loop_workers_start(&w, &o);
        if (err == 0) {
            assert_int_equal(loop_workers_stop(w), 0);
            err = loop_workers_wait(w);
            /* A worker whose own loop met the failure after its setup
             * ended with status 1: restarted, or -ECHILD in the stop. */
            if (err == -ECHILD)
                err = -ENOMEM;
            assert_int_equal(loop_workers_free(w), 0);
        } else {
            assert_null(w);
        }
        if (err != 0 && err != -ENOMEM)
            fail_msg("allocation %ld failed: %s, not -ENOMEM", at, loop_strerror(err));
        assert_int_equal(a.live_blocks, 0);
        assert_int_equal(a.bad_frees, 0);
        assert_same_fds(&before, "after a run with a failed allocation");
        assert_no_child_left();
        /* The children count their allocations in their own copy: the
         * sweep ends when the parent's run met no failure. */
        if (a.failures == 0 && err == 0) {
            assert_true(at > 5);
            break;
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_worker_process_holds_none_of_the_supervisors_fds),
        cmocka_unit_test(test_each_failed_allocation_is_enomem_and_leaves_nothing),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
