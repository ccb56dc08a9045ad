/*
 * Bad fds and arguments to the fd calls: negative, closed, huge, regular
 * files and directories, the loop's own fd, NULL loop or handler, and
 * removals of what was never added.  None of them registers anything.
 */
#include "fixtures.h"
#include "io_probe.h"
#include "sockets.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

/* ---- bad fds and arguments ------------------------------------------------------ */

static void test_negative_fd_is_ebadf(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct io_probe p = {0};
    assert_int_equal(loop_add_reader(l, -1, probe_reader, &p), -EBADF);
    assert_int_equal(loop_add_writer(l, -1, probe_writer, &p), -EBADF);
    assert_int_equal(loop_add_reader(l, INT_MIN, probe_reader, &p), -EBADF);
    assert_int_equal(loop_remove_reader(l, -1), -EBADF);
    assert_int_equal(loop_remove_writer(l, -1), -EBADF);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_closed_fd_is_ebadf(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int p[2];
    make_pipe(p);
    close(p[0]);
    close(p[1]);
    struct io_probe pr = {0};
    assert_int_equal(loop_add_reader(l, p[0], probe_reader, &pr), -EBADF);
    assert_int_equal(loop_add_writer(l, p[1], probe_writer, &pr), -EBADF);
    /* Nothing was registered. */
    assert_int_equal(loop_remove_reader(l, p[0]), -ENOENT);
    assert_int_equal(loop_remove_writer(l, p[1]), -ENOENT);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(pr.runs, 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_closed_fd_below_a_watched_one_is_ebadf(void **state)
{
    (void)state;
    /* A closed number inside the range the loop already tracks. */
    loop_t *l = new_virtual_loop(false);
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    struct io_probe pr = {0};
    int hi = b[0] > a[0] ? b[0] : a[0];
    int lo = b[0] > a[0] ? a[0] : b[0];
    assert_int_equal(loop_add_reader(l, hi, probe_reader, &pr), 0);
    assert_int_equal(close(lo), 0);
    assert_int_equal(loop_add_reader(l, lo, probe_reader, &pr), -EBADF);
    assert_int_equal(loop_remove_reader(l, lo), -ENOENT);
    assert_int_equal(loop_remove_reader(l, hi), 0);
    close(hi);
    close(a[1]);
    close(b[1]);
    assert_int_equal(loop_free(l), 0);
}

static void test_huge_fd_is_ebadf(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct io_probe p = {0};
    assert_int_equal(loop_add_reader(l, 1 << 30, probe_reader, &p), -EBADF);
    assert_int_equal(loop_add_writer(l, 1 << 30, probe_writer, &p), -EBADF);
    assert_int_equal(loop_add_reader(l, INT_MAX, probe_reader, &p), -EBADF);
    /* Not negative, just never registered. */
    assert_int_equal(loop_remove_reader(l, 1 << 30), -ENOENT);
    assert_int_equal(loop_remove_writer(l, INT_MAX), -ENOENT);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_regular_file_and_directory_are_eperm(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct io_probe p = {0};
    FILE *f = tmpfile();
    assert_non_null(f);
    int ffd = fileno(f);
    assert_int_equal(loop_add_reader(l, ffd, probe_reader, &p), -EPERM);
    assert_int_equal(loop_add_writer(l, ffd, probe_writer, &p), -EPERM);
    assert_int_equal(loop_remove_reader(l, ffd), -ENOENT);
    assert_int_equal(loop_remove_writer(l, ffd), -ENOENT);

    int dfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    assert_int_equal(loop_add_reader(l, dfd, probe_reader, &p), -EPERM);
    assert_int_equal(loop_add_writer(l, dfd, probe_writer, &p), -EPERM);
    assert_int_equal(loop_remove_reader(l, dfd), -ENOENT);

    /* Nothing registered: run returns at once. */
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(p.runs, 0);
    close(dfd);
    fclose(f);
    assert_int_equal(loop_free(l), 0);
}

static void test_eperm_on_a_second_direction_leaves_the_first_intact(void **state)
{
    (void)state;
    /* A failed add must not disturb what is registered on other fds. */
    loop_t *l = new_virtual_loop(false);
    int sv[2];
    make_socketpair(sv);
    put(sv[1], "x");
    struct io_probe r = {0}, bad = {0};
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &r), 0);
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(loop_add_reader(l, fileno(f), probe_reader, &bad), -EPERM);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(r.runs, 1);
    assert_int_equal(bad.runs, 0);
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    fclose(f);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void test_null_loop_or_fn_is_einval(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int sv[2];
    make_socketpair(sv);
    struct io_probe p = {0};
    assert_int_equal(loop_add_reader(NULL, sv[0], probe_reader, &p), -EINVAL);
    assert_int_equal(loop_add_writer(NULL, sv[0], probe_writer, &p), -EINVAL);
    assert_int_equal(loop_add_reader(l, sv[0], NULL, &p), -EINVAL);
    assert_int_equal(loop_add_writer(l, sv[0], NULL, &p), -EINVAL);
    assert_int_equal(loop_remove_reader(NULL, sv[0]), -EINVAL);
    assert_int_equal(loop_remove_writer(NULL, sv[0]), -EINVAL);
    assert_int_equal(loop_remove_reader(l, sv[0]), -ENOENT);
    assert_int_equal(loop_remove_writer(l, sv[0]), -ENOENT);
    assert_int_equal(loop_run(l), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void test_the_loops_own_fd_is_einval(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int epfd = loop_fd(l);
    assert_true(epfd >= 0);
    struct io_probe p = {0};
    assert_int_equal(loop_add_reader(l, epfd, probe_reader, &p), -EINVAL);
    assert_int_equal(loop_add_writer(l, epfd, probe_writer, &p), -EINVAL);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_remove_of_an_unregistered_fd_is_enoent(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int sv[2];
    make_socketpair(sv);
    struct io_probe p = {0};
    assert_int_equal(loop_remove_reader(l, sv[0]), -ENOENT);
    assert_int_equal(loop_remove_writer(l, sv[0]), -ENOENT);
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &p), 0);
    assert_int_equal(loop_remove_writer(l, sv[0]), -ENOENT); /* only a reader */
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    assert_int_equal(loop_remove_reader(l, sv[0]), -ENOENT);
    assert_int_equal(loop_remove_reader(l, 0), -ENOENT);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_negative_fd_is_ebadf),
        cmocka_unit_test(test_closed_fd_is_ebadf),
        cmocka_unit_test(test_closed_fd_below_a_watched_one_is_ebadf),
        cmocka_unit_test(test_huge_fd_is_ebadf),
        cmocka_unit_test(test_regular_file_and_directory_are_eperm),
        cmocka_unit_test(test_eperm_on_a_second_direction_leaves_the_first_intact),
        cmocka_unit_test(test_null_loop_or_fn_is_einval),
        cmocka_unit_test(test_the_loops_own_fd_is_einval),
        cmocka_unit_test(test_remove_of_an_unregistered_fd_is_enoent),
    };
    alarm(120);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
