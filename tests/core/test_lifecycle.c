/*
 * Lifecycle of a loop: creation and destruction, what keeps loop_run()
 * alive, loop_stop(), re-entrancy (-EBUSY), the loop's clock, and the small
 * helpers (loop_strerror, loop_version, LOOP_MS/LOOP_SEC).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

#define assert_u64_eq(a, b)                                                                        \
    do {                                                                                           \
        uint64_t a_ = (a), b_ = (b);                                                               \
        if (a_ != b_)                                                                              \
            fail_msg("%s = %" PRIu64 " != %s = %" PRIu64, #a, a_, #b, b_);                         \
    } while (0)

#define assert_u64_ge(a, b)                                                                        \
    do {                                                                                           \
        uint64_t a_ = (a), b_ = (b);                                                               \
        if (!(a_ >= b_))                                                                           \
            fail_msg("%s = %" PRIu64 " < %s = %" PRIu64, #a, a_, #b, b_);                          \
    } while (0)

/* ---- helpers ---------------------------------------------------------- */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Spin until CLOCK_MONOTONIC has moved at least ns past its value now. */
static void busy_wait_ns(uint64_t ns)
{
    uint64_t start = mono_ns();
    while (mono_ns() - start < ns) {
    }
}

static int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static loop_t *new_virtual(void)
{
    loop_t *l = NULL;
    assert_int_equal(loop_new_with(&l, &(loop_options){.clock = LOOP_CLOCK_VIRTUAL}), 0);
    assert_non_null(l);
    return l;
}

static loop_t *new_real(void)
{
    loop_t *l = NULL;
    assert_int_equal(loop_new(&l), 0);
    assert_non_null(l);
    return l;
}

static void count_cb(loop_t *loop, void *arg)
{
    (void)loop;
    (*(int *)arg)++;
}

static void count_io_cb(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    (*(int *)arg)++;
}

/* A log of small integers, appended to by callbacks. */
struct log {
    int n;
    int v[64];
};

struct log_entry {
    struct log *log;
    int id;
};

static void log_cb(loop_t *loop, void *arg)
{
    (void)loop;
    struct log_entry *e = arg;
    assert_true(e->log->n < 64);
    e->log->v[e->log->n++] = e->id;
}

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
    loop_t *l = new_real();
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(count_open_fds(), before);

    l = new_virtual();
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
    loop_t *l = new_real();
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

    loop_t *l = new_real();
    int ran = 0;
    loop_handle h;
    assert_int_equal(loop_call_soon(l, count_cb, &ran, NULL), 0);
    assert_int_equal(loop_call_soon(l, count_cb, &ran, &h), 0);
    assert_int_equal(loop_call_later(l, 0, count_cb, &ran, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_SEC(100), count_cb, &ran, &h), 0);
    assert_int_equal(loop_call_at(l, 0, count_cb, &ran, NULL), 0);
    assert_int_equal(loop_call_every(l, LOOP_MS(1), count_cb, &ran, &h), 0);
    assert_int_equal(loop_add_reader(l, sv[0], count_io_cb, &ran), 0);
    assert_int_equal(loop_add_writer(l, sv[0], count_io_cb, &ran), 0);
    assert_int_equal(loop_add_writer(l, sv[1], count_io_cb, &ran), 0);
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

struct chain {
    int left;
    int ran;
};

static void chain_cb(loop_t *loop, void *arg)
{
    struct chain *c = arg;
    c->ran++;
    if (--c->left > 0)
        assert_int_equal(loop_call_soon(loop, chain_cb, c, NULL), 0);
}

static void test_many_loops_are_independent(void **state)
{
    (void)state;
    loop_t *a = new_virtual();
    loop_t *b = new_virtual();
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
    loop_t *l = new_real();
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(loop_free(l), 0);

    l = new_virtual();
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_u64_eq(loop_now(l), 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_run_returns_when_the_last_callback_has_run(void **state)
{
    (void)state;
    loop_t *l = new_virtual();
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
    loop_t *l = new_virtual();

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
    loop_t *l = new_virtual();
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
    loop_t *l = new_virtual();
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
    loop_t *l = new_virtual();
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
    loop_t *l = new_real();
    loop_ref(l); /* would block forever without the stop */
    loop_stop(l);
    assert_int_equal(loop_run(l), 0);
    loop_unref(l);
    assert_int_equal(loop_free(l), 0);
}

static void test_stop_is_consumed_by_run_once(void **state)
{
    (void)state;
    loop_t *l = new_virtual();
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

static void stop_cb(loop_t *loop, void *arg)
{
    loop_stop(loop);
    if (arg)
        (*(int *)arg)++;
}

static void test_stop_from_callback_lets_the_current_iteration_finish(void **state)
{
    (void)state;
    loop_t *l = new_virtual();
    struct log log = {0};
    struct log_entry e1 = {&log, 1}, e2 = {&log, 2}, e3 = {&log, 3}, et = {&log, 4};
    int stops = 0;
    struct chain c = {.left = 2};

    /* One iteration's snapshot: [chain, stop, e1, e2, timer]. */
    assert_int_equal(loop_call_at(l, 0, log_cb, &et, NULL), 0);
    assert_int_equal(loop_call_soon(l, chain_cb, &c, NULL), 0);
    assert_int_equal(loop_call_soon(l, stop_cb, &stops, NULL), 0);
    assert_int_equal(loop_call_soon(l, log_cb, &e1, NULL), 0);
    assert_int_equal(loop_call_soon(l, log_cb, &e2, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_SEC(1), log_cb, &e3, NULL), 0);

    assert_int_equal(loop_run(l), 0);
    assert_int_equal(stops, 1);
    assert_int_equal(log.n, 3);
    assert_int_equal(log.v[0], 1);
    assert_int_equal(log.v[1], 2);
    assert_int_equal(log.v[2], 4);
    /* The link queued during the stopped iteration waits. */
    assert_int_equal(c.ran, 1);
    assert_u64_eq(loop_now(l), 0);

    assert_int_equal(loop_run(l), 0);
    assert_int_equal(c.ran, 2);
    assert_int_equal(log.n, 4);
    assert_int_equal(log.v[3], 3);
    assert_int_equal(loop_free(l), 0);
}

static void test_stop_twice_is_one_stop(void **state)
{
    (void)state;
    loop_t *l = new_virtual();
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
    loop_t *l = new_virtual();
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
    loop_t *l = new_virtual();
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
    loop_t *outer = new_virtual();
    loop_t *inner = new_virtual();
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
    loop_t *l = new_virtual();
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

/* ---- time -------------------------------------------------------------- */

static void test_now_is_set_by_new(void **state)
{
    (void)state;
    uint64_t before = mono_ns();
    loop_t *l = new_real();
    uint64_t after = mono_ns();
    assert_u64_ge(loop_now(l), before);
    assert_u64_ge(after, loop_now(l));
    assert_int_equal(loop_free(l), 0);

    l = new_virtual();
    assert_u64_eq(loop_now(l), 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_now_of_null_is_zero(void **state)
{
    (void)state;
    assert_u64_eq(loop_now(NULL), 0);
}

struct now_probe {
    uint64_t seen[3];
    int n;
};

static void now_probe_cb(loop_t *loop, void *arg)
{
    struct now_probe *p = arg;
    p->seen[p->n++] = loop_now(loop);
    /* Let the real clock move visibly before the next callback. */
    uint64_t t = mono_ns();
    while (mono_ns() <= t + LOOP_MS(1)) {
    }
    assert_u64_eq(loop_now(loop), p->seen[p->n - 1]);
}

static void test_now_is_constant_within_an_iteration(void **state)
{
    (void)state;
    loop_t *l = NULL;
    assert_int_equal(loop_new_with(&l, &(loop_options){.strict_poll = true}), 0);
    struct now_probe p = {0};
    assert_int_equal(loop_call_soon(l, now_probe_cb, &p, NULL), 0);
    assert_int_equal(loop_call_soon(l, now_probe_cb, &p, NULL), 0);
    assert_int_equal(loop_call_at(l, 0, now_probe_cb, &p, NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(p.n, 3);
    assert_u64_eq(p.seen[1], p.seen[0]);
    assert_u64_eq(p.seen[2], p.seen[0]);
    assert_int_equal(loop_free(l), 0);
}

static void test_now_is_refreshed_by_each_iteration(void **state)
{
    (void)state;
    loop_t *l = NULL;
    assert_int_equal(loop_new_with(&l, &(loop_options){.strict_poll = true}), 0);
    uint64_t t0 = loop_now(l);
    int ran = 0;
    assert_int_equal(loop_call_soon(l, count_cb, &ran, NULL), 0);
    busy_wait_ns(LOOP_MS(1));
    uint64_t before = mono_ns();
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(ran, 1);
    assert_u64_ge(loop_now(l), before);
    assert_true(loop_now(l) > t0);
    assert_int_equal(loop_free(l), 0);
}

static void test_update_time_refreshes_now(void **state)
{
    (void)state;
    loop_t *l = new_real();
    uint64_t t0 = loop_now(l);
    busy_wait_ns(LOOP_MS(1));
    uint64_t before = mono_ns();
    assert_u64_eq(loop_now(l), t0); /* cached */
    loop_update_time(l);
    assert_u64_ge(loop_now(l), before);
    assert_true(loop_now(l) > t0);
    assert_int_equal(loop_free(l), 0);
}

static void test_update_time_does_not_move_a_virtual_clock(void **state)
{
    (void)state;
    loop_t *l = new_virtual();
    busy_wait_ns(LOOP_MS(1));
    loop_update_time(l);
    assert_u64_eq(loop_now(l), 0);
    assert_int_equal(loop_advance(l, 42), 0);
    loop_update_time(l);
    assert_u64_eq(loop_now(l), 42);
    assert_int_equal(loop_free(l), 0);
}

static void test_advance_only_on_a_virtual_clock(void **state)
{
    (void)state;
    assert_int_equal(loop_advance(NULL, 1), -EINVAL);

    loop_t *l = new_real();
    uint64_t t0 = loop_now(l);
    assert_int_equal(loop_advance(l, LOOP_SEC(1000)), -EINVAL);
    assert_true(loop_now(l) < t0 + LOOP_SEC(1000));
    assert_int_equal(loop_free(l), 0);

    l = new_virtual();
    assert_int_equal(loop_advance(l, 0), 0);
    assert_u64_eq(loop_now(l), 0);
    assert_int_equal(loop_advance(l, 5), 0);
    assert_u64_eq(loop_now(l), 5);
    assert_int_equal(loop_advance(l, LOOP_SEC(2)), 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(2) + 5);
    assert_int_equal(loop_free(l), 0);
}

static void test_advance_saturates_rather_than_wraps(void **state)
{
    (void)state;
    loop_t *l = new_virtual();
    assert_int_equal(loop_advance(l, LOOP_SEC(1)), 0);
    assert_int_equal(loop_advance(l, UINT64_MAX), 0);
    assert_u64_eq(loop_now(l), UINT64_MAX);
    assert_int_equal(loop_advance(l, 1), 0);
    assert_u64_eq(loop_now(l), UINT64_MAX);
    assert_int_equal(loop_free(l), 0);
}

struct advance_probe {
    uint64_t before, after;
    int rc;
};

static void advance_in_cb(loop_t *loop, void *arg)
{
    struct advance_probe *p = arg;
    p->before = loop_now(loop);
    p->rc = loop_advance(loop, LOOP_SEC(3));
    p->after = loop_now(loop);
}

static void test_advance_from_a_callback_is_seen_at_once(void **state)
{
    (void)state;
    loop_t *l = new_virtual();
    struct advance_probe p = {0};
    assert_int_equal(loop_call_soon(l, advance_in_cb, &p, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(p.rc, 0);
    assert_u64_eq(p.before, 0);
    assert_u64_eq(p.after, LOOP_SEC(3));
    assert_u64_eq(loop_now(l), LOOP_SEC(3));
    assert_int_equal(loop_free(l), 0);
}

/* ---- helpers ----------------------------------------------------------- */

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

static void test_version_matches_the_version_macros(void **state)
{
    (void)state;
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", LOOP_VERSION_MAJOR, LOOP_VERSION_MINOR,
             LOOP_VERSION_PATCH);
    assert_non_null(loop_version());
    assert_string_equal(loop_version(), want);
}

static void test_duration_macros_convert_to_nanoseconds(void **state)
{
    (void)state;
    assert_u64_eq(LOOP_MS(0), 0);
    assert_u64_eq(LOOP_MS(1), 1000000u);
    assert_u64_eq(LOOP_MS(1 + 1), 2000000u);
    assert_u64_eq(LOOP_SEC(1), 1000000000u);
    assert_u64_eq(LOOP_SEC(5), UINT64_C(5000000000)); /* past 32 bits */
    assert_u64_eq(LOOP_MS(4321), UINT64_C(4321000000));
    assert_u64_eq(LOOP_SEC(1000000), UINT64_C(1000000000000000));
    assert_u64_eq(LOOP_SEC(2), LOOP_MS(2000));
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
        cmocka_unit_test(test_now_is_set_by_new),
        cmocka_unit_test(test_now_of_null_is_zero),
        cmocka_unit_test(test_now_is_constant_within_an_iteration),
        cmocka_unit_test(test_now_is_refreshed_by_each_iteration),
        cmocka_unit_test(test_update_time_refreshes_now),
        cmocka_unit_test(test_update_time_does_not_move_a_virtual_clock),
        cmocka_unit_test(test_advance_only_on_a_virtual_clock),
        cmocka_unit_test(test_advance_saturates_rather_than_wraps),
        cmocka_unit_test(test_advance_from_a_callback_is_seen_at_once),
        cmocka_unit_test(test_strerror_gives_a_text_for_every_code),
        cmocka_unit_test(test_version_matches_the_version_macros),
        cmocka_unit_test(test_duration_macros_convert_to_nanoseconds),
    };
    /* A hang is a failure, not a wait for the harness's time limit. */
    alarm(120);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
