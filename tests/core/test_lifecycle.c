/*
 * Lifecycle of a loop: creation and destruction, what keeps loop_run()
 * alive, loop_stop(), and re-entrancy (-EBUSY).  The loop's clock:
 * test_clock.c.
 */
#include "fdleak.h"
#include "fixtures.h"
#include "record.h"
#include "sockets.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

/* ---- creation and destruction ---------------------------------------- */

static void test_new_with_null_out_is_einval(void **state)
{
    (void)state;
    assert_int_equal(loop_new(NULL), -EINVAL);
    assert_int_equal(loop_new_with(NULL, NULL), -EINVAL);
    assert_int_equal(loop_new_with(NULL, &(loop_options){0}), -EINVAL);
}

static void test_new_with_unknown_clock_is_einval_and_leaks_no_fd(void **state)
{
    (void)state;
    int before = count_open_fds();
    loop_t *l = NULL;
    loop_options o = {.clock = (enum loop_clock)7};
    assert_int_equal(loop_new_with(&l, &o), -EINVAL);
    o.clock = (enum loop_clock) - 1;
    assert_int_equal(loop_new_with(&l, &o), -EINVAL);
    assert_int_equal(count_open_fds(), before);
}

static void test_new_with_null_options_gives_defaults(void **state)
{
    (void)state;
    loop_t *l = NULL;
    assert_int_equal(loop_new_with(&l, NULL), 0);
    assert_non_null(l);
    /* The default clock is the real one, on which loop_advance() fails. */
    assert_int_equal(loop_advance(l, 1), -EINVAL);
    assert_int_equal(loop_free(l), 0);

    assert_int_equal(loop_new_with(&l, &(loop_options){0}), 0);
    assert_int_equal(loop_advance(l, 1), -EINVAL);
    assert_int_equal(loop_free(l), 0);
}

static void test_free_null_is_einval(void **state)
{
    (void)state;
    assert_int_equal(loop_free(NULL), -EINVAL);
}

static void test_run_and_run_once_null_are_einval(void **state)
{
    (void)state;
    assert_int_equal(loop_run(NULL), -EINVAL);
    assert_int_equal(loop_run_once(NULL, 0), -EINVAL);
    assert_int_equal(loop_run_once(NULL, -1), -EINVAL);
}

static void test_free_closes_the_loops_own_fds(void **state)
{
    (void)state;
    int before = count_open_fds();
    loop_t *l = new_real_loop();
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(count_open_fds(), before);

    l = new_virtual_loop(false);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(count_open_fds(), before);
}

static void test_loop_fds_are_close_on_exec(void **state)
{
    (void)state;
    /* Remember which fds are open before the loop exists. */
    char open_before[1024] = {0};
    for (int fd = 0; fd < 1024; fd++)
        open_before[fd] = fcntl(fd, F_GETFD) != -1;
    loop_t *l = new_real_loop();
    int found = 0;
    for (int fd = 0; fd < 1024; fd++) {
        if (open_before[fd])
            continue;
        int flags = fcntl(fd, F_GETFD);
        if (flags == -1)
            continue;
        found++;
        assert_true(flags & FD_CLOEXEC);
    }
    assert_true(found >= 1); /* at least the epoll fd */
    assert_int_equal(loop_free(l), 0);
}

static void test_free_with_pending_work_runs_nothing_and_keeps_user_fds(void **state)
{
    (void)state;
    int before = count_open_fds();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    assert_int_equal(write(sv[1], "x", 1), 1);

    loop_t *l = new_real_loop();
    int ran = 0;
    loop_handle h;
    assert_int_equal(loop_call_soon(l, count_cb, &ran, NULL), 0);
    assert_int_equal(loop_call_soon(l, count_cb, &ran, &h), 0);
    assert_int_equal(loop_call_later(l, 0, count_cb, &ran, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_SEC(100), count_cb, &ran, &h), 0);
    assert_int_equal(loop_call_at(l, 0, count_cb, &ran, NULL), 0);
    assert_int_equal(loop_call_every(l, LOOP_MS(1), count_cb, &ran, &h), 0);
    assert_int_equal(loop_add_reader(l, sv[0], count_io, &ran), 0);
    assert_int_equal(loop_add_writer(l, sv[0], count_io, &ran), 0);
    assert_int_equal(loop_add_writer(l, sv[1], count_io, &ran), 0);
    loop_ref(l);

    assert_int_equal(loop_free(l), 0);
    assert_int_equal(ran, 0);

    /* The user's fds are still open and usable. */
    assert_true(fcntl(sv[0], F_GETFD) != -1);
    assert_true(fcntl(sv[1], F_GETFD) != -1);
    char c;
    assert_int_equal(read(sv[0], &c, 1), 1);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(count_open_fds(), before);
}

static void test_many_loops_are_independent(void **state)
{
    (void)state;
    loop_t *a = new_virtual_loop(false);
    loop_t *b = new_virtual_loop(false);
    int ran_a = 0, ran_b = 0;
    assert_int_equal(loop_call_soon(a, count_cb, &ran_a, NULL), 0);
    assert_int_equal(loop_call_at(b, LOOP_SEC(3), count_cb, &ran_b, NULL), 0);
    loop_stop(a);

    /* b's run neither runs a's work nor consumes a's stop. */
    assert_int_equal(loop_run(b), 0);
    assert_int_equal(ran_a, 0);
    assert_int_equal(ran_b, 1);
    assert_u64_eq(loop_now(b), LOOP_SEC(3));
    assert_u64_eq(loop_now(a), 0);

    assert_int_equal(loop_advance(b, 5), 0);
    assert_u64_eq(loop_now(a), 0);

    /* a's stop is still pending: its run is one iteration. */
    struct chain c = {.left = 3};
    assert_int_equal(loop_call_soon(a, chain_cb, &c, NULL), 0);
    assert_int_equal(loop_run(a), 0);
    assert_int_equal(ran_a, 1);
    assert_int_equal(c.ran, 1);
    assert_int_equal(loop_free(a), 0);
    assert_int_equal(loop_free(b), 0);
}

/* ---- loop_run and what keeps it alive --------------------------------- */

static void test_run_returns_at_once_when_nothing_is_scheduled(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(loop_free(l), 0);

    l = new_virtual_loop(false);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_u64_eq(loop_now(l), 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_run_returns_when_the_last_callback_has_run(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct chain c = {.left = 10};
    int timer_ran = 0;
    assert_int_equal(loop_call_soon(l, chain_cb, &c, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_SEC(5), count_cb, &timer_ran, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(c.ran, 10);
    assert_int_equal(timer_ran, 1);
    assert_u64_eq(loop_now(l), LOOP_SEC(5));
    assert_int_equal(loop_free(l), 0);
}

static void test_ref_keeps_the_loop_waiting_until_unref(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);

    /* Nothing alive: the iteration does not wait, the clock stays. */
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_u64_eq(loop_now(l), 0);

    /* A ref: the iteration waits for its cap. */
    loop_ref(l);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_u64_eq(loop_now(l), LOOP_MS(10));

    /* Two refs need two unrefs. */
    loop_ref(l);
    loop_unref(l);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_u64_eq(loop_now(l), LOOP_MS(20));

    loop_unref(l);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_u64_eq(loop_now(l), LOOP_MS(20));
    assert_int_equal(loop_free(l), 0);
}

static void test_unref_without_ref_does_nothing(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    loop_unref(l);
    loop_unref(l);
    loop_ref(l);
    /* One ref taken after two unmatched unrefs still holds the loop. */
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_u64_eq(loop_now(l), LOOP_MS(10));
    loop_unref(l);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_u64_eq(loop_now(l), LOOP_MS(10));
    assert_int_equal(loop_free(l), 0);
}

struct ref_probe {
    int fired;
    uint64_t fired_at;
};

static void unref_cb(loop_t *loop, void *arg)
{
    struct ref_probe *p = arg;
    p->fired++;
    p->fired_at = loop_now(loop);
    loop_unref(loop);
}

static void ref_later_cb(loop_t *loop, void *arg)
{
    /* Takes a ref and schedules its release one second later, from a
     * callback: loop_run must keep going across that gap. */
    loop_ref(loop);
    assert_int_equal(loop_call_later(loop, LOOP_SEC(1), unref_cb, arg, NULL), 0);
}

static void test_run_returns_once_a_callback_drops_the_last_ref(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct ref_probe p = {0};
    assert_int_equal(loop_call_soon(l, ref_later_cb, &p, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(p.fired, 1);
    assert_u64_eq(p.fired_at, LOOP_SEC(1));
    /* Nothing left and no ref: a further run returns at once. */
    assert_int_equal(loop_run(l), 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(1));
    assert_int_equal(loop_free(l), 0);
}

/* ---- loop_stop --------------------------------------------------------- */

static void test_stop_before_run_runs_one_iteration_and_returns(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct chain c = {.left = 3};
    int timer_ran = 0;
    assert_int_equal(loop_call_soon(l, chain_cb, &c, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_SEC(1), count_cb, &timer_ran, NULL), 0);
    loop_stop(l);
    assert_int_equal(loop_run(l), 0);
    /* One iteration: the first link ran, the one it queued did not, and
     * the iteration did not wait for the timer. */
    assert_int_equal(c.ran, 1);
    assert_int_equal(timer_ran, 0);
    assert_u64_eq(loop_now(l), 0);

    /* The stop was consumed: the next run goes to the end. */
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(c.ran, 3);
    assert_int_equal(timer_ran, 1);
    assert_int_equal(loop_free(l), 0);
}

static void test_stop_before_run_with_nothing_scheduled_returns(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    loop_ref(l); /* would block forever without the stop */
    loop_stop(l);
    assert_int_equal(loop_run(l), 0);
    loop_unref(l);
    assert_int_equal(loop_free(l), 0);
}

static void test_stop_is_consumed_by_run_once(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    loop_ref(l);
    loop_stop(l);
    /* The pending stop makes this iteration not wait... */
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_u64_eq(loop_now(l), 0);
    /* ...and is consumed by it: the next one waits its cap. */
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_u64_eq(loop_now(l), LOOP_MS(10));
    loop_unref(l);

    /* A stop consumed by run_once does not cut a later loop_run short. */
    loop_stop(l);
    assert_int_equal(loop_run_once(l, 0), 0);
    struct chain c = {.left = 5};
    assert_int_equal(loop_call_soon(l, chain_cb, &c, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(c.ran, 5);
    assert_int_equal(loop_free(l), 0);
}

static void test_stop_from_callback_lets_the_current_iteration_finish(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct record log = {0};
    struct mark e1 = {&log, 1}, e2 = {&log, 2}, e3 = {&log, 3}, et = {&log, 4};
    int stops = 0;
    struct chain c = {.left = 2};

    /* One iteration's snapshot: [chain, stop, e1, e2, timer]. */
    assert_int_equal(loop_call_at(l, 0, record_cb, &et, NULL), 0);
    assert_int_equal(loop_call_soon(l, chain_cb, &c, NULL), 0);
    assert_int_equal(loop_call_soon(l, stop_cb, &stops, NULL), 0);
    assert_int_equal(loop_call_soon(l, record_cb, &e1, NULL), 0);
    assert_int_equal(loop_call_soon(l, record_cb, &e2, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_SEC(1), record_cb, &e3, NULL), 0);

    assert_int_equal(loop_run(l), 0);
    assert_int_equal(stops, 1);
    assert_int_equal(log.n, 3);
    assert_int_equal(log.id[0], 1);
    assert_int_equal(log.id[1], 2);
    assert_int_equal(log.id[2], 4);
    /* The link queued during the stopped iteration waits. */
    assert_int_equal(c.ran, 1);
    assert_u64_eq(loop_now(l), 0);

    assert_int_equal(loop_run(l), 0);
    assert_int_equal(c.ran, 2);
    assert_int_equal(log.n, 4);
    assert_int_equal(log.id[3], 3);
    assert_int_equal(loop_free(l), 0);
}

static void test_stop_twice_is_one_stop(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    loop_stop(l);
    loop_stop(l);
    struct chain c = {.left = 4};
    assert_int_equal(loop_call_soon(l, chain_cb, &c, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(c.ran, 1);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(c.ran, 4);
    assert_int_equal(loop_free(l), 0);
}

/* ---- re-entrancy ------------------------------------------------------- */

struct reentry {
    loop_t *other;
    int run_rc, run_once_rc, run_once0_rc, free_rc, other_run_rc, soon_rc;
    int ran;
};

static void reentry_cb(loop_t *loop, void *arg)
{
    struct reentry *r = arg;
    r->ran++;
    r->run_rc = loop_run(loop);
    r->run_once_rc = loop_run_once(loop, -1);
    r->run_once0_rc = loop_run_once(loop, 0);
    r->free_rc = loop_free(loop);
    r->other_run_rc = r->other ? loop_run(r->other) : 0;
    /* The loop is intact: scheduling still works. */
    r->soon_rc = loop_call_soon(loop, count_cb, &r->ran, NULL);
}

static void test_run_run_once_and_free_from_a_callback_are_ebusy(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct reentry r = {0};
    assert_int_equal(loop_call_soon(l, reentry_cb, &r, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(r.run_rc, -EBUSY);
    assert_int_equal(r.run_once_rc, -EBUSY);
    assert_int_equal(r.run_once0_rc, -EBUSY);
    assert_int_equal(r.free_rc, -EBUSY);
    assert_int_equal(r.soon_rc, 0);
    assert_int_equal(r.ran, 2);
    assert_int_equal(loop_free(l), 0);
}

static void reentry_io_cb(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    assert_int_equal(loop_remove_reader(loop, fd), 0);
    reentry_cb(loop, arg);
}

static void test_run_and_free_from_timer_and_io_callbacks_are_ebusy(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct reentry r = {0};
    assert_int_equal(loop_call_later(l, LOOP_MS(5), reentry_cb, &r, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(r.run_rc, -EBUSY);
    assert_int_equal(r.run_once_rc, -EBUSY);
    assert_int_equal(r.free_rc, -EBUSY);
    assert_int_equal(r.ran, 2);

    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write(sv[1], "x", 1), 1);
    struct reentry rio = {0};
    assert_int_equal(loop_add_reader(l, sv[0], reentry_io_cb, &rio), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(rio.run_rc, -EBUSY);
    assert_int_equal(rio.run_once_rc, -EBUSY);
    assert_int_equal(rio.free_rc, -EBUSY);
    assert_int_equal(rio.ran, 2);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(loop_free(l), 0);
}

static void test_running_another_loop_from_a_callback_is_allowed(void **state)
{
    (void)state;
    loop_t *outer = new_virtual_loop(false);
    loop_t *inner = new_virtual_loop(false);
    int inner_ran = 0;
    struct reentry r = {.other = inner};
    assert_int_equal(loop_call_soon(inner, count_cb, &inner_ran, NULL), 0);
    assert_int_equal(loop_call_soon(outer, reentry_cb, &r, NULL), 0);
    assert_int_equal(loop_run(outer), 0);
    assert_int_equal(r.other_run_rc, 0);
    assert_int_equal(inner_ran, 1);
    assert_int_equal(r.run_rc, -EBUSY);
    assert_int_equal(loop_free(inner), 0);
    assert_int_equal(loop_free(outer), 0);
}

static void test_loop_usable_after_run_returns(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    for (int round = 0; round < 3; round++) {
        int ran = 0;
        assert_int_equal(loop_call_soon(l, count_cb, &ran, NULL), 0);
        assert_int_equal(loop_call_later(l, LOOP_MS(1), count_cb, &ran, NULL), 0);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(ran, 2);
    }
    assert_u64_eq(loop_now(l), LOOP_MS(3));
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_with_null_out_is_einval),
        cmocka_unit_test(test_new_with_unknown_clock_is_einval_and_leaks_no_fd),
        cmocka_unit_test(test_new_with_null_options_gives_defaults),
        cmocka_unit_test(test_free_null_is_einval),
        cmocka_unit_test(test_run_and_run_once_null_are_einval),
        cmocka_unit_test(test_free_closes_the_loops_own_fds),
        cmocka_unit_test(test_loop_fds_are_close_on_exec),
        cmocka_unit_test(test_free_with_pending_work_runs_nothing_and_keeps_user_fds),
        cmocka_unit_test(test_many_loops_are_independent),
        cmocka_unit_test(test_run_returns_at_once_when_nothing_is_scheduled),
        cmocka_unit_test(test_run_returns_when_the_last_callback_has_run),
        cmocka_unit_test(test_ref_keeps_the_loop_waiting_until_unref),
        cmocka_unit_test(test_unref_without_ref_does_nothing),
        cmocka_unit_test(test_run_returns_once_a_callback_drops_the_last_ref),
        cmocka_unit_test(test_stop_before_run_runs_one_iteration_and_returns),
        cmocka_unit_test(test_stop_before_run_with_nothing_scheduled_returns),
        cmocka_unit_test(test_stop_is_consumed_by_run_once),
        cmocka_unit_test(test_stop_from_callback_lets_the_current_iteration_finish),
        cmocka_unit_test(test_stop_twice_is_one_stop),
        cmocka_unit_test(test_run_run_once_and_free_from_a_callback_are_ebusy),
        cmocka_unit_test(test_run_and_free_from_timer_and_io_callbacks_are_ebusy),
        cmocka_unit_test(test_running_another_loop_from_a_callback_is_allowed),
        cmocka_unit_test(test_loop_usable_after_run_returns),
    };
    /* A hang is a failure, not a wait for the harness's time limit. */
    alarm(120);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
