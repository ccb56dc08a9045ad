/*
 * fork: every fd the loop opens is close-on-exec; loop_fork() in a child
 * gives its loop an epoll set, an eventfd and signal plumbing of its own,
 * so the child's loop runs fd handlers, timers, threadsafe calls and
 * signals, while the parent's loop keeps receiving its own events.
 *
 * Children report through their exit status: 0, or a set of bits naming
 * the checks that failed (cmocka's assertions are not used in a child).
 */
#include "fdleak.h"
#include "fixtures.h"
#include "poster.h"
#include "sockets.h"
#include "watchdog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------- */

/* The fds open now that were not in *before: how many, and in *not_cloexec
 * one of them that is not close-on-exec (or -1).  No cmocka: children use it. */
static int new_fds_all_cloexec(const struct fdlist *before, int *not_cloexec)
{
    static int fds[FDLIST_MAX];
    int n = fds_opened_since(before, fds, FDLIST_MAX);
    *not_cloexec = -1;
    for (int i = 0; i < n; i++) {
        int flags = fcntl(fds[i], F_GETFD);
        if (flags == -1 || !(flags & FD_CLOEXEC))
            *not_cloexec = fds[i];
    }
    return n;
}

static int wait_child(pid_t pid)
{
    int status;
    pid_t r;
    do
        r = waitpid(pid, &status, 0);
    while (r < 0 && errno == EINTR);
    assert_int_equal(r, pid);
    if (WIFSIGNALED(status))
        fail_msg("the child was killed by signal %d", WTERMSIG(status));
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* ---- close-on-exec ---------------------------------------------------- */

static void test_every_fd_the_loop_opens_is_close_on_exec(void **state)
{
    (void)state;
    static struct fdlist before;
    fdlist_take(&before);
    loop_t *l = new_real_loop();
    int bad;
    int n = new_fds_all_cloexec(&before, &bad);
    assert_true(n >= 2); /* the epoll set and the eventfd at least */
    if (bad >= 0)
        fail_msg("fd %d, opened by loop_new, is not close-on-exec", bad);
    int flags = fcntl(loop_fd(l), F_GETFD);
    assert_true(flags != -1 && (flags & FD_CLOEXEC));

    /* Nothing the loop does later opens an fd without the flag. */
    int sv[2], runs = 0;
    make_socketpair(sv);
    assert_int_equal(loop_add_reader(l, sv[0], drain_io, &runs), 0);
    assert_int_equal(loop_add_signal(l, SIGUSR1, count_cb, &runs), 0);
    assert_int_equal(loop_call_soon_threadsafe(l, count_cb, &runs), 0);
    assert_int_equal(loop_call_later(l, 1, count_cb, &runs, NULL), 0);
    raise(SIGUSR1);
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_int_equal(loop_run_once(l, -1), 0);
    new_fds_all_cloexec(&before, &bad);
    if (bad >= 0)
        fail_msg("fd %d, opened by the loop, is not close-on-exec", bad);

    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
    assert_same_fds(&before, "by a loop");
}

static void test_loop_fork_fds_are_close_on_exec_and_replace_the_inherited_ones(void **state)
{
    (void)state;
    static struct fdlist before;
    fdlist_take(&before);
    loop_t *l = new_real_loop();
    int runs = 0;
    assert_int_equal(loop_add_signal(l, SIGUSR1, count_cb, &runs), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int status = 0, bad;
        int inherited = new_fds_all_cloexec(&before, &bad);
        if (loop_fork(l) != 0)
            status |= 1;
        /* As many loop fds as before: the inherited ones were closed. */
        if (new_fds_all_cloexec(&before, &bad) != inherited)
            status |= 2;
        if (bad >= 0)
            status |= 4;
        if (loop_free(l) != 0 || !fds_unchanged_since(&before))
            status |= 8;
        _exit(status);
    }
    assert_int_equal(wait_child(pid), 0);
    assert_int_equal(loop_free(l), 0);
    assert_same_fds(&before, "by a loop");
}

/* ---- a child's loop and the parent's ---------------------------------- */

struct child_work {
    int reads, timer_runs, posted_runs, signal_runs;
};

static void child_done_check(loop_t *loop, struct child_work *w)
{
    if (w->reads && w->timer_runs && w->posted_runs && w->signal_runs)
        loop_stop(loop);
}

static void child_timer_cb(loop_t *loop, void *arg)
{
    struct child_work *w = arg;
    w->timer_runs++;
    raise(SIGUSR1); /* now that the child's plumbing is in place */
    child_done_check(loop, w);
}

static void child_post_cb(loop_t *loop, void *arg)
{
    struct child_work *w = arg;
    w->posted_runs++;
    child_done_check(loop, w);
}

static void child_signal_cb(loop_t *loop, void *arg)
{
    struct child_work *w = arg;
    w->signal_runs++;
    child_done_check(loop, w);
}

static void child_read_io(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct child_work *w = arg;
    char buf[16];
    if (read(fd, buf, sizeof(buf)) > 0)
        w->reads++;
    child_done_check(loop, w);
}

/*
 * The child: its own pipe, a timer, a threadsafe call and a signal on its
 * loop.  Status bits: 1 loop_fork, 2 dropping the parent's reader, 4 pipe,
 * 8 reader, 16 signal, 32 timer, 64 running, 128 what ran.
 */
static int child_main(loop_t *l, int parent_fd)
{
    int status = 0;
    if (loop_fork(l) != 0)
        return 1;
    /* The parent's reader is the parent's business: drop it here.  Before
     * loop_fork this would have removed it from the parent's epoll set. */
    if (loop_remove_reader(l, parent_fd) != 0)
        status |= 2;
    close(parent_fd);

    struct child_work w = {0};
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return status | 4;
    if (loop_add_reader(l, p[0], child_read_io, &w) != 0)
        status |= 8;
    if (loop_add_signal(l, SIGUSR1, child_signal_cb, &w) != 0) /* replaces the parent's */
        status |= 16;
    if (loop_call_later(l, LOOP_MS(5), child_timer_cb, &w, NULL) != 0)
        status |= 32;
    if (write(p[1], "c", 1) != 1)
        status |= 4;
    struct poster poster = {.loop = l, .fn = child_post_cb, .arg = &w};
    if (poster_start(&poster) != 0)
        return status | 64;
    if (status == 0 && loop_run(l) != 0)
        status |= 64;
    if (poster_join(&poster) || w.reads != 1 || w.timer_runs != 1 || w.posted_runs != 1 ||
        w.signal_runs != 1)
        status |= 128;
    loop_remove_reader(l, p[0]);
    close(p[0]);
    close(p[1]);
    if (loop_free(l) != 0)
        status |= 64;
    return status;
}

struct parent_work {
    int reads, signal_runs, posted_runs;
};

static void test_child_loop_works_after_loop_fork_and_parent_keeps_its_events(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    struct parent_work pw = {0};
    int p[2];
    make_pipe(p);
    assert_int_equal(loop_add_reader(l, p[0], drain_io, &pw.reads), 0);
    assert_int_equal(loop_add_signal(l, SIGUSR1, count_cb, &pw.signal_runs), 0);

    watchdog_start("a child's loop after loop_fork", 60);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[1]);
        _exit(child_main(l, p[0]));
    }
    int status = wait_child(pid);
    if (status)
        fail_msg("the child's checks failed: status %d", status);

    /* The parent's loop: its reader, its signal and threadsafe calls. */
    assert_int_equal(write(p[1], "p", 1), 1);
    raise(SIGUSR1);
    assert_int_equal(loop_call_soon_threadsafe(l, count_cb, &pw.posted_runs), 0);
    while (!(pw.reads && pw.signal_runs && pw.posted_runs))
        assert_int_equal(loop_run_once(l, -1), 0);
    watchdog_stop();
    assert_int_equal(pw.reads, 1);
    assert_int_equal(pw.signal_runs, 1);
    assert_int_equal(pw.posted_runs, 1);

    assert_int_equal(loop_remove_reader(l, p[0]), 0);
    close_pair(p);
    assert_int_equal(loop_free(l), 0);
}

static void test_parent_loop_keeps_its_events_while_a_forked_child_runs_its_own(void **state)
{
    (void)state;
    /* The child swaps the inherited reader for one of its own; the
     * parent's registration must not notice. */
    loop_t *l = new_real_loop();
    int p[2], go[2], reads = 0;
    make_pipe(p);
    make_pipe(go);
    assert_int_equal(loop_add_reader(l, p[0], drain_io, &reads), 0);
    watchdog_start("a parent and a child loop side by side", 60);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int status = 0, child_reads = 0;
        if (loop_fork(l) != 0)
            _exit(1);
        /* Replace the inherited reader with the child's own on another pipe. */
        if (loop_remove_reader(l, p[0]) != 0)
            status |= 2;
        if (loop_add_reader(l, go[0], drain_io, &child_reads) != 0)
            status |= 4;
        while (!status && child_reads == 0)
            if (loop_run_once(l, -1) != 0)
                status |= 8;
        loop_remove_reader(l, go[0]);
        loop_free(l);
        _exit(status);
    }
    /* While the child waits on its pipe, the parent's loop sees its own. */
    assert_int_equal(write(p[1], "x", 1), 1);
    while (reads == 0)
        assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(write(go[1], "y", 1), 1);
    assert_int_equal(wait_child(pid), 0);
    assert_int_equal(write(p[1], "z", 1), 1);
    while (reads == 1)
        assert_int_equal(loop_run_once(l, -1), 0);
    watchdog_stop();
    assert_int_equal(reads, 2);
    assert_int_equal(loop_remove_reader(l, p[0]), 0);
    for (int i = 0; i < 2; i++) {
        close(p[i]);
        close(go[i]);
    }
    assert_int_equal(loop_free(l), 0);
}

static void test_threadsafe_calls_queued_at_the_fork_run_in_both_processes(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    int runs = 0;
    assert_int_equal(loop_call_soon_threadsafe(l, count_cb, &runs), 0);
    assert_int_equal(loop_call_soon_threadsafe(l, count_cb, &runs), 0);
    watchdog_start("threadsafe calls queued at the fork", 60);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int status = 0;
        if (loop_fork(l) != 0)
            status |= 1;
        if (loop_run(l) != 0) /* the queued calls keep it alive, then it ends */
            status |= 2;
        if (runs != 2)
            status |= 4;
        loop_free(l);
        _exit(status);
    }
    assert_int_equal(wait_child(pid), 0);
    assert_int_equal(loop_run(l), 0);
    watchdog_stop();
    assert_int_equal(runs, 2);
    assert_int_equal(loop_free(l), 0);
}

/* loop_fork from inside a callback: the child's iteration goes on. */
struct forking {
    pid_t pid;       /* in the parent: the child's; in the child: 0 */
    int fork_result; /* the child's loop_fork() */
    int after_runs;  /* callbacks run after the fork */
    int timer_runs;
    int sv[2];
    int reads;
};

static void after_fork_cb(loop_t *loop, void *arg)
{
    (void)loop;
    ((struct forking *)arg)->after_runs++;
}

static void after_fork_timer_cb(loop_t *loop, void *arg)
{
    (void)loop;
    ((struct forking *)arg)->timer_runs++;
}

static void forking_cb(loop_t *loop, void *arg)
{
    struct forking *f = arg;
    f->pid = fork();
    if (f->pid == 0) {
        f->fork_result = loop_fork(loop);
        /* Work for the rest of the child's run. */
        loop_call_soon(loop, after_fork_cb, f, NULL);
        loop_call_later(loop, LOOP_MS(2), after_fork_timer_cb, f, NULL);
        if (write(f->sv[1], "k", 1) != 1)
            f->fork_result = -EIO;
    }
}

static void test_loop_fork_from_a_callback_lets_the_childs_run_go_on(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    struct forking f = {.pid = -1, .fork_result = -1};
    make_socketpair(f.sv);
    assert_int_equal(loop_call_soon(l, forking_cb, &f, NULL), 0);
    watchdog_start("loop_fork from a callback", 60);
    int r = loop_run(l);
    if (f.pid == 0) {
        /* The child, back from its loop_run: it ran the callback and the
         * timer it scheduled, and its reader would have been next. */
        int status = 0;
        if (r != 0 || f.fork_result != 0)
            status |= 1;
        if (f.after_runs != 1 || f.timer_runs != 1)
            status |= 2;
        if (loop_add_reader(l, f.sv[0], drain_io, &f.reads) != 0)
            status |= 4;
        else if (loop_run_once(l, -1) != 0 || f.reads != 1)
            status |= 8;
        loop_remove_reader(l, f.sv[0]);
        loop_free(l);
        _exit(status);
    }
    assert_int_equal(r, 0);
    assert_true(f.pid > 0);
    assert_int_equal(wait_child(f.pid), 0);
    watchdog_stop();
    assert_int_equal(f.after_runs, 0); /* only the child scheduled them */
    close_pair(f.sv);
    assert_int_equal(loop_free(l), 0);
}

/* ---- signals and failures across fork -------------------------------- */

static void test_a_signal_pending_at_the_fork_is_left_to_the_parent(void **state)
{
    (void)state;
    loop_t *l = NULL;
    assert_int_equal(loop_new_with(&l, &(loop_options){.strict_poll = true}), 0);
    int runs = 0;
    assert_int_equal(loop_add_signal(l, SIGUSR1, count_cb, &runs), 0);
    raise(SIGUSR1); /* delivered, not yet handled by the loop */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int code = 0;
        if (loop_fork(l) != 0 || loop_run_once(l, 0) != 0 || runs != 0)
            code = 1; /* the parent's delivery ran here */
        raise(SIGUSR1); /* the child's own still works */
        if (!code && (loop_run_once(l, 0) != 0 || runs != 1))
            code = 2;
        loop_free(l);
        _exit(code);
    }
    assert_int_equal(wait_child(pid), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(runs, 1);
    assert_int_equal(loop_free(l), 0);
}

static void test_a_failed_loop_fork_changes_nothing(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    int fds[2];
    make_socketpair(fds);
    int reads = 0;
    assert_int_equal(loop_add_reader(l, fds[0], drain_io, &reads), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* No fd number left for the child: the new epoll set cannot be made. */
        int lowest_free = dup(0);
        close(lowest_free);
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = (rlim_t)lowest_free;
        int before = loop_fd(l);
        int code = 0;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            code = 3;
        else if (loop_fork(l) != -EMFILE)
            code = 1;
        else if (loop_fd(l) != before || fcntl(before, F_GETFD) < 0)
            code = 2; /* it still holds the fds it had */
        loop_free(l);
        _exit(code);
    }
    assert_int_equal(wait_child(pid), 0);
    /* The parent's registration is untouched by the child's attempt. */
    assert_int_equal(write(fds[1], "x", 1), 1);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(reads, 1);
    assert_int_equal(loop_remove_reader(l, fds[0]), 0);
    assert_int_equal(loop_free(l), 0);
    close_pair(fds);
}

static void test_loop_fork_with_null_is_einval(void **state)
{
    (void)state;
    assert_int_equal(loop_fork(NULL), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_fd_the_loop_opens_is_close_on_exec),
        cmocka_unit_test(test_loop_fork_fds_are_close_on_exec_and_replace_the_inherited_ones),
        cmocka_unit_test(test_child_loop_works_after_loop_fork_and_parent_keeps_its_events),
        cmocka_unit_test(test_parent_loop_keeps_its_events_while_a_forked_child_runs_its_own),
        cmocka_unit_test(test_threadsafe_calls_queued_at_the_fork_run_in_both_processes),
        cmocka_unit_test(test_loop_fork_from_a_callback_lets_the_childs_run_go_on),
        cmocka_unit_test(test_a_signal_pending_at_the_fork_is_left_to_the_parent),
        cmocka_unit_test(test_a_failed_loop_fork_changes_nothing),
        cmocka_unit_test(test_loop_fork_with_null_is_einval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
