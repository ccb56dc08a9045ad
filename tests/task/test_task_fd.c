/*
 * Waiting for fd readiness from a task: the ready bits, a timeout as
 * -ETIMEDOUT, a cancel as -ECANCELED, and no handler left behind.
 */
#include "task_testing.h"

#include <unistd.h>

struct fd_wait {
    int fd;
    unsigned events;
    int64_t timeout;
    int got;
    uint64_t now;
};

static int wait_it(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct fd_wait *w = arg;
    w->got = loop_task_wait_fd(w->fd, w->events, w->timeout);
    w->now = loop_now(loop);
    return 0;
}

static void write_byte(loop_t *loop, void *arg)
{
    (void)loop;
    assert_int_equal(write(*(int *)arg, "x", 1), 1);
}

static void test_wait_fd_returns_the_ready_events_and_removes_its_handler(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct fd_wait w = {.fd = p[0], .events = LOOP_READABLE, .timeout = -1};
    loop_task *t = spawn(l, wait_it, &w);
    assert_int_equal(loop_call_later(l, LOOP_MS(2), write_byte, &p[1], NULL), 0);
    assert_int_equal(run_task(l, t, NULL), 0);
    assert_int_equal(w.got, LOOP_READABLE);
    assert_u64_eq(w.now, LOOP_MS(2));
    assert_int_equal(loop_remove_reader(l, p[0]), -ENOENT); /* none left */
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
    close(p[0]);
    close(p[1]);
}

static void test_wait_fd_times_out_with_etimedout(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct fd_wait w = {.fd = p[0], .events = LOOP_READABLE, .timeout = LOOP_MS(5)};
    loop_task *t = spawn(l, wait_it, &w);
    assert_int_equal(run_task(l, t, NULL), 0);
    assert_int_equal(w.got, -ETIMEDOUT);
    assert_u64_eq(w.now, LOOP_MS(5));
    assert_int_equal(loop_remove_reader(l, p[0]), -ENOENT);
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
    close(p[0]);
    close(p[1]);
}

static void cancel_cb(loop_t *loop, void *arg)
{
    (void)loop;
    assert_int_equal(loop_task_cancel(arg), 1);
}

static void test_a_cancelled_wait_fd_returns_ecanceled_and_leaves_no_handler(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct fd_wait w = {.fd = p[1], .events = LOOP_READABLE, .timeout = LOOP_SEC(60)};
    loop_task *t = spawn(l, wait_it, &w);
    assert_int_equal(loop_call_later(l, LOOP_MS(1), cancel_cb, t, NULL), 0);
    assert_int_equal(run_task(l, t, NULL), 0);
    assert_int_equal(w.got, -ECANCELED);
    assert_int_equal(loop_remove_reader(l, p[1]), -ENOENT);
    assert_int_equal(loop_timeout_ns(l), -1); /* its timer went too */
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
    close(p[0]);
    close(p[1]);
}

static void test_wait_fd_checks_its_input(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    assert_int_equal(loop_task_wait_fd(0, LOOP_READABLE, -1), -EPERM);
    assert_int_equal(loop_task_wait_fd(0, 0, -1), -EINVAL);
    assert_int_equal(loop_task_wait_fd(0, LOOP_HUP, -1), -EINVAL);
    struct fd_wait w = {.fd = -1, .events = LOOP_WRITABLE, .timeout = LOOP_MS(1)};
    loop_task *t = spawn(l, wait_it, &w);
    assert_int_equal(run_task(l, t, NULL), 0);
    assert_int_equal(w.got, -EBADF);
    assert_int_equal(loop_timeout_ns(l), -1); /* no timer left behind */
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wait_fd_returns_the_ready_events_and_removes_its_handler),
        cmocka_unit_test(test_wait_fd_times_out_with_etimedout),
        cmocka_unit_test(test_a_cancelled_wait_fd_returns_ecanceled_and_leaves_no_handler),
        cmocka_unit_test(test_wait_fd_checks_its_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
