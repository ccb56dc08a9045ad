/*
 * The bad-input table of include/loop.h, in one place: every function
 * returns the documented negative errno for each kind of bad argument, a
 * failed call that takes a callback schedules nothing, every code has a
 * message, and loop_version() is the version of the header.
 */
#include "fixtures.h"
#include "sockets.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void never_cb(loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
    fail_msg("a callback of a failed call ran");
}

static void never_io(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    (void)arg;
    fail_msg("a handler of a failed call ran");
}

static void test_lifecycle_calls_reject_null(void **state)
{
    (void)state;
    assert_int_equal(loop_new(NULL), -EINVAL);
    assert_int_equal(loop_new_with(NULL, NULL), -EINVAL);
    assert_int_equal(loop_free(NULL), -EINVAL);
    assert_int_equal(loop_run(NULL), -EINVAL);
    assert_int_equal(loop_run_once(NULL, -1), -EINVAL);
    assert_int_equal(loop_run_once(NULL, 0), -EINVAL);
    assert_int_equal(loop_advance(NULL, 0), -EINVAL);
    assert_true(loop_now(NULL) == 0);
    assert_int_equal(loop_cancel(NULL, (loop_handle){1}), -EINVAL);
}

static void test_unknown_clock_is_einval(void **state)
{
    (void)state;
    loop_t *l = NULL;
    const int bad[] = {2, 3, 100, -1, INT_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        loop_options o = {.clock = (enum loop_clock)bad[i]};
        assert_int_equal(loop_new_with(&l, &o), -EINVAL);
    }
}

static void test_advance_on_the_real_clock_is_einval(void **state)
{
    (void)state;
    loop_t *l = NULL;
    assert_int_equal(loop_new(&l), 0);
    assert_int_equal(loop_advance(l, 0), -EINVAL);
    assert_int_equal(loop_advance(l, 1), -EINVAL);
    assert_int_equal(loop_free(l), 0);
}

static void test_scheduling_calls_with_bad_arguments_are_einval_and_schedule_nothing(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct {
        const char *what;
        int rc;
    } r[16];
    int n = 0;
    loop_handle h[16];
    for (int i = 0; i < 16; i++)
        h[i].id = UINT64_C(0x5555);

#define TRY(call)                                                                                  \
    do {                                                                                           \
        r[n].what = #call;                                                                         \
        r[n].rc = (call);                                                                          \
        n++;                                                                                       \
    } while (0)

    TRY(loop_call_soon(NULL, never_cb, NULL, &h[0]));
    TRY(loop_call_soon(l, NULL, NULL, &h[1]));
    TRY(loop_call_later(NULL, 1, never_cb, NULL, &h[2]));
    TRY(loop_call_later(l, 1, NULL, NULL, &h[3]));
    TRY(loop_call_at(NULL, 1, never_cb, NULL, &h[4]));
    TRY(loop_call_at(l, 1, NULL, NULL, &h[5]));
    TRY(loop_call_every(NULL, 1, never_cb, NULL, &h[6]));
    TRY(loop_call_every(l, 1, NULL, NULL, &h[7]));
    TRY(loop_call_every(l, 0, never_cb, NULL, &h[8]));
    TRY(loop_call_soon(l, NULL, NULL, NULL));
    TRY(loop_call_later(l, 0, NULL, NULL, NULL));
    TRY(loop_call_at(l, 0, NULL, NULL, NULL));
    TRY(loop_call_every(l, 0, never_cb, NULL, NULL));
#undef TRY

    for (int i = 0; i < n; i++) {
        if (r[i].rc != -EINVAL)
            fail_msg("%s returned %d, not -EINVAL", r[i].what, r[i].rc);
    }
    for (int i = 0; i <= 8; i++)
        if (h[i].id != 0)
            fail_msg("out of failed call %d was not set to {0}", i);

    /* Nothing was scheduled: the loop has nothing to do. */
    assert_int_equal(loop_run(l), 0);
    assert_true(loop_now(l) == 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_cancel_of_handles_that_name_nothing_is_enoent(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    assert_int_equal(loop_cancel(l, (loop_handle){0}), -ENOENT);
    assert_int_equal(loop_cancel(l, (loop_handle){1}), -ENOENT);
    assert_int_equal(loop_cancel(l, (loop_handle){UINT64_MAX}), -ENOENT);
    assert_int_equal(loop_cancel(l, (loop_handle){UINT64_C(1) << 32}), -ENOENT);
    assert_int_equal(loop_free(l), 0);
}

static void test_fd_calls_with_bad_arguments_return_their_documented_codes(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int sv[2];
    make_socketpair(sv);
    FILE *file = tmpfile();
    assert_non_null(file);
    int dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dir >= 0);
    /* Closed last, so that no later open takes these numbers. */
    int closed[2];
    assert_int_equal(pipe(closed), 0);
    close(closed[0]);
    close(closed[1]);

    const struct {
        int fd;
        bool null_loop, null_fn;
        int want;
    } t[] = {
        {sv[0], true, false, -EINVAL},        {sv[0], false, true, -EINVAL},
        {-1, false, false, -EBADF},           {-100, false, false, -EBADF},
        {closed[0], false, false, -EBADF},    {closed[1], false, false, -EBADF},
        {1 << 30, false, false, -EBADF},      {INT_MAX, false, false, -EBADF},
        {fileno(file), false, false, -EPERM}, {dir, false, false, -EPERM},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        loop_t *target = t[i].null_loop ? NULL : l;
        loop_io_fn *fn = t[i].null_fn ? NULL : never_io;
        int rr = loop_add_reader(target, t[i].fd, fn, NULL);
        int rw = loop_add_writer(target, t[i].fd, fn, NULL);
        if (rr != t[i].want || rw != t[i].want)
            fail_msg("row %zu (fd %d): add_reader %d, add_writer %d, want %d", i, t[i].fd, rr, rw,
                     t[i].want);
        /* None of them registered anything. */
        if (t[i].fd >= 0) {
            assert_int_equal(loop_remove_reader(l, t[i].fd), -ENOENT);
            assert_int_equal(loop_remove_writer(l, t[i].fd), -ENOENT);
        }
    }

    /* Removal: NULL loop, negative fd, nothing registered. */
    assert_int_equal(loop_remove_reader(NULL, sv[0]), -EINVAL);
    assert_int_equal(loop_remove_writer(NULL, sv[0]), -EINVAL);
    assert_int_equal(loop_remove_reader(l, -1), -EBADF);
    assert_int_equal(loop_remove_writer(l, -1), -EBADF);
    assert_int_equal(loop_remove_reader(l, sv[0]), -ENOENT);
    assert_int_equal(loop_remove_writer(l, sv[1]), -ENOENT);

    /* Nothing is watched: run returns at once. */
    assert_int_equal(loop_run(l), 0);
    close(dir);
    fclose(file);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void never_slow(loop_t *loop, const loop_slow_info *info, void *arg)
{
    (void)loop;
    (void)info;
    (void)arg;
}

static void test_other_entry_points_return_their_documented_codes(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    loop_t *other = new_virtual_loop(false);

    /* reschedule */
    assert_int_equal(loop_reschedule(NULL, (loop_handle){1}, 1), -EINVAL);
    assert_int_equal(loop_reschedule_at(NULL, (loop_handle){1}, 1), -EINVAL);
    assert_int_equal(loop_reschedule(l, (loop_handle){0}, 1), -ENOENT);
    assert_int_equal(loop_reschedule_at(l, (loop_handle){0}, 1), -ENOENT);
    loop_handle h;
    assert_int_equal(loop_call_later(l, 5, never_cb, NULL, &h), 0);
    assert_int_equal(loop_cancel(l, h), 0);
    assert_int_equal(loop_reschedule(l, h, 1), -ENOENT);
    assert_int_equal(loop_reschedule_at(l, h, 1), -ENOENT);

    /* threadsafe calls */
    assert_int_equal(loop_call_soon_threadsafe(NULL, never_cb, NULL), -EINVAL);
    assert_int_equal(loop_call_soon_threadsafe(l, NULL, NULL), -EINVAL);

    /* signals */
    assert_int_equal(loop_add_signal(NULL, SIGUSR1, never_cb, NULL), -EINVAL);
    assert_int_equal(loop_add_signal(l, SIGUSR1, NULL, NULL), -EINVAL);
    const int bad_signals[] = {0, -1, 4096, SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof bad_signals / sizeof bad_signals[0]; i++) {
        int rc = loop_add_signal(l, bad_signals[i], never_cb, NULL);
        if (rc != -EINVAL)
            fail_msg("loop_add_signal(%d) returned %d, not -EINVAL", bad_signals[i], rc);
    }
    assert_int_equal(loop_remove_signal(NULL, SIGUSR1), -EINVAL);
    assert_int_equal(loop_remove_signal(l, 0), -EINVAL);
    assert_int_equal(loop_remove_signal(l, 4096), -EINVAL);
    assert_int_equal(loop_remove_signal(l, SIGUSR1), -ENOENT);
    /* One loop at a time owns a signal. */
    assert_int_equal(loop_add_signal(other, SIGUSR2, never_cb, NULL), 0);
    assert_int_equal(loop_add_signal(l, SIGUSR2, never_cb, NULL), -EBUSY);
    assert_int_equal(loop_remove_signal(l, SIGUSR2), -ENOENT);
    assert_int_equal(loop_remove_signal(other, SIGUSR2), 0);

    /* embedding, hooks, observability, fork */
    assert_int_equal(loop_fd(NULL), -EINVAL);
    assert_true(loop_fd(l) >= 0);
    assert_true(loop_timeout_ns(NULL) == -1);
    assert_int_equal(loop_on_before_poll(NULL, never_cb, NULL), -EINVAL);
    assert_int_equal(loop_on_after_poll(NULL, never_cb, NULL), -EINVAL);
    loop_stats_t st;
    assert_int_equal(loop_stats(NULL, &st), -EINVAL);
    assert_int_equal(loop_stats(l, NULL), -EINVAL);
    assert_int_equal(loop_set_slow_callback(NULL, 1, never_slow, NULL), -EINVAL);
    assert_int_equal(loop_fork(NULL), -EINVAL);

    /* None of the failed calls left anything behind. */
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_run(other), 0);
    assert_int_equal(loop_free(other), 0);
    assert_int_equal(loop_free(l), 0);
}

static void try_reentry(loop_t *loop, void *arg)
{
    int *rc = arg;
    rc[0] = loop_run(loop);
    rc[1] = loop_run_once(loop, 0);
    rc[2] = loop_free(loop);
}

static void test_run_run_once_and_free_inside_a_callback_are_ebusy(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int rc[3] = {1, 1, 1};
    assert_int_equal(loop_call_soon(l, try_reentry, rc, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(rc[0], -EBUSY);
    assert_int_equal(rc[1], -EBUSY);
    assert_int_equal(rc[2], -EBUSY);
    assert_int_equal(loop_free(l), 0);
}

static void test_every_code_has_a_message(void **state)
{
    (void)state;
    const int codes[] = {-EINVAL, -EBADF, -EPERM, -ENOENT, -EBUSY,  -ENOMEM, -EMFILE,
                         -EEXIST, 0,      1,      -4096,   INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *m = loop_strerror(codes[i]);
        assert_non_null(m);
        assert_true(m[0] != '\0');
    }
}

static void test_strerror_gives_a_text_for_every_code(void **state)
{
    (void)state;
    const int known[] = {-EINVAL, -EBADF, -ENOMEM, -EPERM, -EBUSY, -ENOENT};
    const size_t n = sizeof known / sizeof known[0];
    for (size_t i = 0; i < n; i++) {
        const char *s = loop_strerror(known[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        /* Each documented code has its own message. */
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, loop_strerror(known[j]));
    }
    const int odd[] = {0, -EMFILE, -99999, 99999, EINVAL, INT_MIN, INT_MAX, -1};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        const char *s = loop_strerror(odd[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
    }
}

static void test_codes_of_the_layers_get_the_c_library_text(void **state)
{
    (void)state;
    const int codes[] = {-ECONNREFUSED, -EADDRINUSE, -EPIPE, -ETIMEDOUT, -ECANCELED, -ESHUTDOWN};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        assert_string_equal(loop_strerror(codes[i]), strerrordesc_np(-codes[i]));
    assert_string_equal(loop_strerror(-99999), "unknown error");
    assert_string_equal(loop_strerror(INT_MIN), "unknown error");
}

static void test_version_matches_the_version_macros(void **state)
{
    (void)state;
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", LOOP_VERSION_MAJOR, LOOP_VERSION_MINOR,
             LOOP_VERSION_PATCH);
    assert_non_null(loop_version());
    assert_string_equal(loop_version(), want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle_calls_reject_null),
        cmocka_unit_test(test_unknown_clock_is_einval),
        cmocka_unit_test(test_advance_on_the_real_clock_is_einval),
        cmocka_unit_test(test_scheduling_calls_with_bad_arguments_are_einval_and_schedule_nothing),
        cmocka_unit_test(test_cancel_of_handles_that_name_nothing_is_enoent),
        cmocka_unit_test(test_fd_calls_with_bad_arguments_return_their_documented_codes),
        cmocka_unit_test(test_other_entry_points_return_their_documented_codes),
        cmocka_unit_test(test_run_run_once_and_free_inside_a_callback_are_ebusy),
        cmocka_unit_test(test_every_code_has_a_message),
        cmocka_unit_test(test_strerror_gives_a_text_for_every_code),
        cmocka_unit_test(test_codes_of_the_layers_get_the_c_library_text),
        cmocka_unit_test(test_version_matches_the_version_macros),
    };
    alarm(120);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
