/*
 * Timers as C libraries use them: a timeout held in a variable and armed
 * again and again (loop_arm), pushed back on every command without a
 * system call per iteration, and the time to it as a host loop asks for
 * it (loop_timeout_ns, loop_timeout_ms).
 */

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixtures.h"
#include "watchdog.h"

static loop_t *virtual_loop(void)
{
    return new_virtual_loop(false);
}

struct fired {
    int n;
    uint64_t at;
};

static void fire(loop_t *loop, void *arg)
{
    struct fired *f = arg;
    f->n++;
    f->at = loop_now(loop);
}

/* ---- loop_arm ---------------------------------------------------------- */

static void test_arm_of_an_empty_handle_schedules_and_sets_it(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_handle t = {0};
    struct fired f = {0};
    assert_int_equal(loop_arm(l, &t, LOOP_MS(5), fire, &f), 0);
    assert_true(t.id != 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(f.n, 1);
    assert_true(f.at == LOOP_MS(5));
    assert_int_equal(loop_cancel(l, t), -ENOENT); /* it ran */
    assert_int_equal(loop_free(l), 0);
}

static void test_arm_of_a_pending_timer_moves_it_and_keeps_its_handle(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_handle t = {0};
    struct fired f = {0};
    assert_int_equal(loop_arm(l, &t, LOOP_MS(5), fire, &f), 0);
    loop_handle first = t;
    assert_int_equal(loop_arm(l, &t, LOOP_MS(20), fire, &f), 0); /* later */
    assert_true(t.id == first.id);
    assert_int_equal(loop_arm(l, &t, LOOP_MS(10), fire, &f), 0); /* earlier again */
    assert_true(t.id == first.id);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(f.n, 1);
    assert_true(f.at == LOOP_MS(10));
    assert_int_equal(loop_free(l), 0);
}

static void test_arm_after_the_timer_ran_schedules_it_again(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_handle t = {0};
    struct fired f = {0};
    assert_int_equal(loop_arm(l, &t, LOOP_MS(5), fire, &f), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_arm(l, &t, LOOP_MS(5), fire, &f), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(f.n, 2);
    assert_true(f.at == LOOP_MS(10));
    /* Cancelled, likewise. */
    assert_int_equal(loop_cancel(l, t), -ENOENT);
    assert_int_equal(loop_arm(l, &t, LOOP_MS(1), fire, &f), 0);
    assert_int_equal(loop_cancel(l, t), 0);
    assert_int_equal(loop_arm(l, &t, LOOP_MS(1), fire, &f), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(f.n, 3);
    assert_int_equal(loop_free(l), 0);
}

struct pair_of_timers {
    loop_handle second;
    struct fired f;
};

static void arm_the_other(loop_t *loop, void *arg)
{
    struct pair_of_timers *p = arg;
    assert_int_equal(loop_arm(loop, &p->second, LOOP_MS(10), fire, &p->f), 0);
}

static void test_arm_of_a_timer_queued_in_this_iteration_takes_it_back(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    struct pair_of_timers p = {0};
    /* Both fall due in one iteration; the first re-arms the second, whose
     * run is already queued behind it. */
    assert_int_equal(loop_call_later(l, LOOP_MS(5), arm_the_other, &p, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_MS(5), fire, &p.f, &p.second), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(p.f.n, 1);
    assert_true(p.f.at == LOOP_MS(15));
    assert_int_equal(loop_free(l), 0);
}

static void test_arm_gives_the_timer_the_new_function_and_argument(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_handle t = {0};
    struct fired a = {0}, b = {0};
    assert_int_equal(loop_arm(l, &t, LOOP_MS(5), fire, &a), 0);
    assert_int_equal(loop_arm_at(l, &t, LOOP_MS(7), fire, &b), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(a.n, 0);
    assert_int_equal(b.n, 1);
    assert_true(b.at == LOOP_MS(7));
    assert_int_equal(loop_free(l), 0);
}

static void test_arm_with_a_handle_of_another_loop_leaves_that_loop_alone(void **state)
{
    (void)state;
    loop_t *a = virtual_loop(), *b = virtual_loop();
    loop_handle t = {0};
    struct fired fa = {0}, fb = {0};
    assert_int_equal(loop_arm(a, &t, LOOP_MS(5), fire, &fa), 0);
    loop_handle of_a = t;
    assert_int_equal(loop_arm(b, &t, LOOP_MS(9), fire, &fb), 0); /* names nothing in b */
    assert_true(t.id != of_a.id);
    assert_int_equal(loop_run(a), 0);
    assert_int_equal(loop_run(b), 0);
    assert_int_equal(fa.n, 1);
    assert_true(fa.at == LOOP_MS(5));
    assert_int_equal(fb.n, 1);
    assert_true(fb.at == LOOP_MS(9));
    assert_int_equal(loop_free(a), 0);
    assert_int_equal(loop_free(b), 0);
}

static void test_arm_rejects_null_arguments(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_handle t = {0};
    struct fired f = {0};
    assert_int_equal(loop_arm(NULL, &t, 1, fire, &f), -EINVAL);
    assert_int_equal(loop_arm(l, NULL, 1, fire, &f), -EINVAL);
    assert_int_equal(loop_arm(l, &t, 1, NULL, &f), -EINVAL);
    assert_int_equal(loop_arm_at(NULL, &t, 1, fire, &f), -EINVAL);
    assert_int_equal(loop_arm_at(l, NULL, 1, fire, &f), -EINVAL);
    assert_int_equal(loop_arm_at(l, &t, 1, NULL, &f), -EINVAL);
    assert_true(t.id == 0);
    assert_int_equal(loop_free(l), 0);
}

/* ---- the time to the next timer, as a host asks -------------------------- */

static void never(loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
    fail_msg("this timer was not to run");
}

static void test_timeout_ns_reports_a_pushed_back_deadline(void **state)
{
    (void)state;
    loop_t *l;
    assert_int_equal(loop_new(&l), 0);
    loop_handle h;
    assert_int_equal(loop_call_later(l, LOOP_MS(100), never, NULL, &h), 0);
    assert_int_equal(loop_reschedule(l, h, LOOP_MS(200)), 0);
    int64_t t = loop_timeout_ns(l);
    /* Real time runs between the calls: the answer is at most 200 ms, and
     * far more than the 100 ms of the old deadline. */
    assert_true(t > (int64_t)LOOP_MS(150));
    assert_true(t <= (int64_t)LOOP_MS(200));
    assert_int_equal(loop_cancel(l, h), 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_timeout_ms_rounds_up_and_says_ready_and_forever(void **state)
{
    (void)state;
    loop_t *l;
    assert_int_equal(loop_new(&l), 0);
    assert_int_equal(loop_timeout_ms(l), -1); /* nothing to wait for */
    assert_int_equal(loop_timeout_ms(NULL), -1);

    loop_handle h;
    assert_int_equal(loop_call_later(l, LOOP_MS(10) + LOOP_MS(1) / 2, never, NULL, &h), 0);
    int ms = loop_timeout_ms(l);
    int64_t ns = loop_timeout_ns(l); /* read after: never more than what ms covered */
    assert_true(ms >= 1 && ms <= 11);
    assert_true((int64_t)ms * 1000000 >= ns); /* rounded up: waking then, the timer is due */
    assert_int_equal(loop_cancel(l, h), 0);

    /* Far away: capped, not wrapped. */
    assert_int_equal(loop_call_later(l, LOOP_SEC(100000000), never, NULL, &h), 0);
    assert_int_equal(loop_timeout_ms(l), INT_MAX);
    assert_int_equal(loop_cancel(l, h), 0);

    /* Ready now. */
    assert_int_equal(loop_call_soon(l, never, NULL, &h), 0);
    assert_int_equal(loop_timeout_ms(l), 0);
    assert_int_equal(loop_cancel(l, h), 0);
    assert_int_equal(loop_free(l), 0);
}

/* ---- a timeout pushed back on every command ------------------------------- */

struct pinger {
    int sv[2];
    int left;
    loop_handle timeout;
};

/* A request-reply round over a socketpair, pushing the timeout back on
 * each, as hiredis's and curl's adapters do. */
static void ping(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct pinger *p = arg;
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
    assert_int_equal(loop_reschedule(loop, p->timeout, LOOP_SEC(30)), 0);
    if (--p->left == 0) {
        assert_int_equal(loop_remove_reader(loop, fd), 0);
        assert_int_equal(loop_cancel(loop, p->timeout), 0);
        return;
    }
    assert_int_equal(write(fd == p->sv[0] ? p->sv[1] : p->sv[0], "x", 1), 1);
}

static void test_pushing_a_timeout_back_every_iteration_costs_no_timer_syscalls(void **state)
{
    (void)state;
    loop_t *l;
    assert_int_equal(loop_new_with(&l, &(loop_options){.strict_poll = true}), 0);
    struct pinger p = {.left = 1000};
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p.sv), 0);
    assert_int_equal(loop_call_later(l, LOOP_SEC(30), never, NULL, &p.timeout), 0);
    assert_int_equal(loop_add_reader(l, p.sv[0], ping, &p), 0);
    assert_int_equal(write(p.sv[1], "x", 1), 1);
    loop_stats_t before, after;
    assert_int_equal(loop_stats(l, &before), 0);
    watchdog_start("1000 ping rounds", 120);
    while (p.left > 0)
        assert_int_equal(loop_run_once(l, LOOP_SEC(10)), 0);
    watchdog_stop();
    assert_int_equal(loop_stats(l, &after), 0);
    uint64_t polls = after.polls - before.polls, calls = after.syscalls - before.syscalls;
    print_message("%llu polls, %llu system calls\n", (unsigned long long)polls,
                  (unsigned long long)calls);
    assert_true(polls >= 1000);
    /* One wait per iteration; the timer is armed once, not per push-back
     * (and the last remove is one epoll_ctl). */
    assert_true(calls <= polls + 4);
    close(p.sv[0]);
    close(p.sv[1]);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arm_of_an_empty_handle_schedules_and_sets_it),
        cmocka_unit_test(test_arm_of_a_pending_timer_moves_it_and_keeps_its_handle),
        cmocka_unit_test(test_arm_after_the_timer_ran_schedules_it_again),
        cmocka_unit_test(test_arm_of_a_timer_queued_in_this_iteration_takes_it_back),
        cmocka_unit_test(test_arm_gives_the_timer_the_new_function_and_argument),
        cmocka_unit_test(test_arm_with_a_handle_of_another_loop_leaves_that_loop_alone),
        cmocka_unit_test(test_arm_rejects_null_arguments),
        cmocka_unit_test(test_timeout_ns_reports_a_pushed_back_deadline),
        cmocka_unit_test(test_timeout_ms_rounds_up_and_says_ready_and_forever),
        cmocka_unit_test(test_pushing_a_timeout_back_every_iteration_costs_no_timer_syscalls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
