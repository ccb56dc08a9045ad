/*
 * What C libraries that drive an event loop need of the fd table: the
 * interest-mask form (loop_watch_fd), one call per iteration for one
 * handler watching both ways, idempotent re-adds that keep a queued
 * dispatch, and an fd closed without removing its handler, reopened under
 * the same number and added again.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixtures.h"
#include "sockets.h"
#include "watchdog.h"

struct calls {
    int n;
    unsigned events[8];
    void *args[8];
};

static void record(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    struct calls *c = arg;
    if (c->n < 8) {
        c->events[c->n] = events;
        c->args[c->n] = arg;
    }
    c->n++;
}

static loop_t *strict_loop(void)
{
    return new_loop_with((loop_options){.strict_poll = true});
}

/* One iteration that does not block for long if nothing is ready. */
static void iterate(loop_t *l)
{
    watchdog_start("one iteration", 60);
    assert_int_equal(loop_run_once(l, LOOP_SEC(2)), 0);
    watchdog_stop();
}

/* ---- the mask form ---------------------------------------------------- */

static void test_one_handler_watching_both_ways_gets_one_call_with_every_bit(void **state)
{
    (void)state;
    loop_t *l = strict_loop();
    int sv[2];
    make_socketpair(sv);
    assert_int_equal(write(sv[1], "x", 1), 1); /* sv[0]: readable and writable */
    struct calls c = {0};
    assert_int_equal(loop_watch_fd(l, sv[0], LOOP_READABLE | LOOP_WRITABLE, record, &c), 0);
    iterate(l);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.events[0] & (LOOP_READABLE | LOOP_WRITABLE), LOOP_READABLE | LOOP_WRITABLE);

    /* The same through add_reader and add_writer with one fn and arg. */
    assert_int_equal(loop_watch_fd(l, sv[0], 0, NULL, NULL), 0);
    assert_int_equal(loop_add_reader(l, sv[0], record, &c), 0);
    assert_int_equal(loop_add_writer(l, sv[0], record, &c), 0);
    c.n = 0;
    iterate(l);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.events[0] & (LOOP_READABLE | LOOP_WRITABLE), LOOP_READABLE | LOOP_WRITABLE);
    assert_int_equal(loop_watch_fd(l, sv[0], 0, NULL, NULL), 0);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(loop_free(l), 0);
}

static void test_a_separate_reader_and_writer_each_see_their_own_side(void **state)
{
    (void)state;
    loop_t *l = strict_loop();
    int sv[2];
    make_socketpair(sv);
    assert_int_equal(write(sv[1], "x", 1), 1);
    struct calls r = {0}, w = {0};
    assert_int_equal(loop_add_reader(l, sv[0], record, &r), 0);
    assert_int_equal(loop_add_writer(l, sv[0], record, &w), 0);
    iterate(l);
    assert_int_equal(r.n, 1);
    assert_int_equal(w.n, 1);
    assert_int_equal(r.events[0] & (LOOP_READABLE | LOOP_WRITABLE), LOOP_READABLE);
    assert_int_equal(w.events[0] & (LOOP_READABLE | LOOP_WRITABLE), LOOP_WRITABLE);
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    assert_int_equal(loop_remove_writer(l, sv[0]), 0);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(loop_free(l), 0);
}

static void test_watch_sets_the_interest_whatever_it_was(void **state)
{
    (void)state;
    loop_t *l = strict_loop();
    int sv[2];
    make_socketpair(sv);
    assert_int_equal(write(sv[1], "x", 1), 1);
    struct calls old = {0}, c = {0};
    assert_int_equal(loop_add_reader(l, sv[0], record, &old), 0);

    /* Writable only: the old reader is gone, fn is the writer. */
    assert_int_equal(loop_watch_fd(l, sv[0], LOOP_WRITABLE, record, &c), 0);
    iterate(l);
    assert_int_equal(old.n, 0);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.events[0] & (LOOP_READABLE | LOOP_WRITABLE), LOOP_WRITABLE);
    assert_int_equal(loop_remove_reader(l, sv[0]), -ENOENT);

    /* Readable only. */
    assert_int_equal(loop_watch_fd(l, sv[0], LOOP_READABLE, record, &c), 0);
    c.n = 0;
    iterate(l);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.events[0] & (LOOP_READABLE | LOOP_WRITABLE), LOOP_READABLE);

    /* None: nothing is watched, and loop_run has nothing to wait for. */
    assert_int_equal(loop_watch_fd(l, sv[0], 0, NULL, NULL), 0);
    assert_int_equal(loop_remove_reader(l, sv[0]), -ENOENT);
    assert_int_equal(loop_remove_writer(l, sv[0]), -ENOENT);
    watchdog_start("loop_run with nothing watched", 60);
    assert_int_equal(loop_run(l), 0);
    watchdog_stop();
    assert_int_equal(loop_watch_fd(l, sv[0], 0, NULL, NULL), 0); /* none again: still 0 */
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(loop_free(l), 0);
}

static void test_watch_rejects_bad_input_and_keeps_the_handlers_on_failure(void **state)
{
    (void)state;
    loop_t *l = strict_loop();
    int sv[2];
    make_socketpair(sv);
    struct calls c = {0};
    assert_int_equal(loop_watch_fd(NULL, sv[0], LOOP_READABLE, record, &c), -EINVAL);
    assert_int_equal(loop_watch_fd(l, sv[0], LOOP_READABLE, NULL, &c), -EINVAL);
    assert_int_equal(loop_watch_fd(l, sv[0], LOOP_HUP, record, &c), -EINVAL);
    assert_int_equal(loop_watch_fd(l, sv[0], 0x100, record, &c), -EINVAL);
    assert_int_equal(loop_watch_fd(l, -1, LOOP_READABLE, record, &c), -EBADF);
    assert_int_equal(loop_watch_fd(l, -1, 0, NULL, NULL), -EBADF);
    assert_int_equal(loop_watch_fd(l, loop_fd(l), LOOP_READABLE, record, &c), -EINVAL);

    /* A regular file cannot be watched: -EPERM, and nothing is left behind. */
    char path[] = "/tmp/loop-watch-XXXXXX";
    int file = mkstemp(path);
    assert_true(file >= 0);
    unlink(path);
    assert_int_equal(loop_watch_fd(l, file, LOOP_READABLE, record, &c), -EPERM);
    assert_int_equal(loop_remove_reader(l, file), -ENOENT);

    /* A failed change leaves the handlers that were there. */
    assert_int_equal(loop_add_reader(l, sv[0], record, &c), 0);
    assert_int_equal(loop_watch_fd(l, sv[0], 0x100, record, NULL), -EINVAL);
    assert_int_equal(write(sv[1], "x", 1), 1);
    iterate(l);
    assert_int_equal(c.n, 1);
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close(file);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(loop_free(l), 0);
}

static void test_mask_changes_cost_no_system_call_until_the_poll(void **state)
{
    (void)state;
    loop_t *l = strict_loop();
    int sv[2];
    make_socketpair(sv);
    struct calls c = {0};
    loop_stats_t before, after;
    assert_int_equal(loop_watch_fd(l, sv[0], LOOP_READABLE, record, &c), 0); /* first: ADD now */
    assert_int_equal(loop_stats(l, &before), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(loop_watch_fd(l, sv[0], i & 1 ? LOOP_READABLE : LOOP_WRITABLE, record, &c),
                         0);
    assert_int_equal(loop_stats(l, &after), 0);
    assert_int_equal(after.syscalls, before.syscalls);
    assert_int_equal(loop_run_once(l, 0), 0); /* one epoll_ctl, one wait */
    assert_int_equal(loop_stats(l, &after), 0);
    assert_true(after.syscalls - before.syscalls <= 2);
    assert_int_equal(loop_watch_fd(l, sv[0], 0, NULL, NULL), 0);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(loop_free(l), 0);
}

/* ---- idempotent re-adds ----------------------------------------------- */

struct readd {
    int fds[2];
    int runs[2];
};

/* Whichever of the two readers runs first adds the other's reader again,
 * with the same fn and arg: the other's queued dispatch must still run. */
static void readd_other(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct readd *r = arg;
    int me = fd == r->fds[0] ? 0 : 1;
    r->runs[me]++;
    assert_int_equal(loop_add_reader(loop, r->fds[!me], readd_other, r), 0);
    assert_int_equal(loop_add_writer(loop, r->fds[!me], readd_other, r), 0);
    assert_int_equal(loop_remove_writer(loop, r->fds[!me]), 0);
}

static void test_adding_the_same_reader_again_keeps_its_queued_dispatch(void **state)
{
    (void)state;
    loop_t *l = strict_loop();
    int a[2], b[2];
    make_socketpair(a);
    make_socketpair(b);
    struct readd r = {.fds = {a[0], b[0]}};
    assert_int_equal(loop_add_reader(l, a[0], readd_other, &r), 0);
    assert_int_equal(loop_add_reader(l, b[0], readd_other, &r), 0);
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "x", 1), 1);
    iterate(l);
    assert_int_equal(r.runs[0], 1);
    assert_int_equal(r.runs[1], 1);
    assert_int_equal(loop_remove_reader(l, a[0]), 0);
    assert_int_equal(loop_remove_reader(l, b[0]), 0);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    assert_int_equal(loop_free(l), 0);
}

/* ---- closed without removing, reopened, added again -------------------- */

/* Close sv[0] behind the loop's back and make a new pair whose first fd
 * takes the same number. */
static void reopen_same_number(int sv[2])
{
    int old = sv[0];
    close(sv[0]);
    close(sv[1]);
    int nv[2];
    make_socketpair(nv);
    if (nv[0] != old) { /* the lowest free number comes back first */
        assert_int_equal(nv[1], old);
        nv[1] = nv[0];
        nv[0] = old;
    }
    sv[0] = nv[0];
    sv[1] = nv[1];
}

static void check_reopened_reader_fires(bool same_fn_and_arg, bool via_watch)
{
    loop_t *l = strict_loop();
    int sv[2];
    make_socketpair(sv);
    struct calls first = {0}, second = {0};
    assert_int_equal(loop_add_reader(l, sv[0], record, &first), 0);
    assert_int_equal(loop_run_once(l, 0), 0); /* registered with the kernel, nothing ready */
    int number = sv[0];
    reopen_same_number(sv);
    assert_int_equal(sv[0], number);

    struct calls *c = same_fn_and_arg ? &first : &second;
    if (via_watch)
        assert_int_equal(loop_watch_fd(l, sv[0], LOOP_READABLE, record, c), 0);
    else
        assert_int_equal(loop_add_reader(l, sv[0], record, c), 0);
    assert_int_equal(write(sv[1], "x", 1), 1);
    iterate(l);
    assert_int_equal(c->n, 1);
    assert_int_equal(c->args[0], c);
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(loop_free(l), 0);
}

static void test_a_reader_added_again_on_a_reused_fd_number_fires(void **state)
{
    (void)state;
    check_reopened_reader_fires(false, false);
}

static void test_the_same_reader_added_again_on_a_reused_fd_number_fires(void **state)
{
    (void)state;
    check_reopened_reader_fires(true, false);
}

static void test_watch_again_on_a_reused_fd_number_fires(void **state)
{
    (void)state;
    check_reopened_reader_fires(false, true);
    check_reopened_reader_fires(true, true);
}

static void test_re_adding_on_a_reused_number_reports_what_epoll_refuses(void **state)
{
    (void)state;
    loop_t *l = strict_loop();
    int sv[2];
    make_socketpair(sv);
    struct calls c = {0};
    assert_int_equal(loop_add_reader(l, sv[0], record, &c), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    int number = sv[0];
    close(sv[0]);
    /* The number now names a regular file, which epoll cannot watch. */
    char path[] = "/tmp/loop-watch-XXXXXX";
    int file = mkstemp(path);
    assert_int_equal(file, number);
    unlink(path);
    struct calls other = {0};
    assert_int_equal(loop_add_reader(l, file, record, &other), -EPERM);
    assert_int_equal(loop_remove_reader(l, file), 0); /* the old entry, as it was */
    close(file);
    close(sv[1]);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_handler_watching_both_ways_gets_one_call_with_every_bit),
        cmocka_unit_test(test_a_separate_reader_and_writer_each_see_their_own_side),
        cmocka_unit_test(test_watch_sets_the_interest_whatever_it_was),
        cmocka_unit_test(test_watch_rejects_bad_input_and_keeps_the_handlers_on_failure),
        cmocka_unit_test(test_mask_changes_cost_no_system_call_until_the_poll),
        cmocka_unit_test(test_adding_the_same_reader_again_keeps_its_queued_dispatch),
        cmocka_unit_test(test_a_reader_added_again_on_a_reused_fd_number_fires),
        cmocka_unit_test(test_the_same_reader_added_again_on_a_reused_fd_number_fires),
        cmocka_unit_test(test_watch_again_on_a_reused_fd_number_fires),
        cmocka_unit_test(test_re_adding_on_a_reused_number_reports_what_epoll_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
