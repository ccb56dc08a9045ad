/*
 * Timers: call_later, call_at, call_every on the virtual clock (exact and
 * deterministic), plus a few real-clock checks that assert only lower
 * bounds, which cannot flake.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
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

static loop_t *new_virtual(bool strict)
{
    loop_t *l = NULL;
    loop_options o = {.clock = LOOP_CLOCK_VIRTUAL, .strict_poll = strict};
    assert_int_equal(loop_new_with(&l, &o), 0);
    assert_non_null(l);
    return l;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A deterministic pseudo-random sequence (xorshift64*). */
static uint64_t rng_state;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C(2685821657736338717);
}

static void count_cb(loop_t *loop, void *arg)
{
    (void)loop;
    (*(int *)arg)++;
}

/* What each timer callback records: who ran, and the loop's time then. */
struct rec {
    int id;
    uint64_t now;
};

struct log {
    int n, cap;
    struct rec *v;
};

static void log_init(struct log *log, int cap)
{
    log->n = 0;
    log->cap = cap;
    log->v = calloc((size_t)cap, sizeof *log->v);
    assert_non_null(log->v);
}

struct entry {
    struct log *log;
    int id;
    uint64_t deadline;
    loop_handle self;
    int stop_after; /* call_every: cancel itself after this many runs */
    int runs;
    int cancel_rc;
};

static void log_cb(loop_t *loop, void *arg)
{
    struct entry *e = arg;
    assert_true(e->log->n < e->log->cap);
    e->log->v[e->log->n++] = (struct rec){e->id, loop_now(loop)};
    e->runs++;
}

/* ---- order ------------------------------------------------------------- */

static void test_timers_run_in_deadline_order(void **state)
{
    (void)state;
    loop_t *l = new_virtual(false);
    struct log log;
    log_init(&log, 16);
    const int ms[] = {50, 10, 30, 20, 40, 5, 45};
    const int n = (int)(sizeof ms / sizeof ms[0]);
    struct entry e[7];
    for (int i = 0; i < n; i++) {
        e[i] = (struct entry){.log = &log, .id = ms[i]};
        assert_int_equal(loop_call_later(l, LOOP_MS(ms[i]), log_cb, &e[i], NULL), 0);
    }
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(log.n, n);
    const int want[] = {5, 10, 20, 30, 40, 45, 50};
    for (int i = 0; i < n; i++) {
        assert_int_equal(log.v[i].id, want[i]);
        assert_u64_eq(log.v[i].now, LOOP_MS(want[i]));
    }
    free(log.v);
    assert_int_equal(loop_free(l), 0);
}

static void test_timer_ties_run_in_schedule_order(void **state)
{
    (void)state;
    loop_t *l = new_virtual(false);
    struct log log;
    log_init(&log, 256);
    /* Interleave two deadlines, scheduled through both call_at and
     * call_later (the same deadline on the virtual clock). */
    struct entry e[200];
    for (int i = 0; i < 200; i++) {
        e[i] = (struct entry){.log = &log, .id = i};
        uint64_t when = (i % 2) ? LOOP_SEC(1) : LOOP_SEC(2);
        if (i % 3)
            assert_int_equal(loop_call_at(l, when, log_cb, &e[i], NULL), 0);
        else
            assert_int_equal(loop_call_later(l, when, log_cb, &e[i], NULL), 0);
    }
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(log.n, 200);
    /* Odd ids (1 s) first, in order, then even ids (2 s), in order. */
    for (int i = 0; i < 100; i++) {
        assert_int_equal(log.v[i].id, 2 * i + 1);
        assert_u64_eq(log.v[i].now, LOOP_SEC(1));
        assert_int_equal(log.v[100 + i].id, 2 * i);
        assert_u64_eq(log.v[100 + i].now, LOOP_SEC(2));
    }
    free(log.v);
    assert_int_equal(loop_free(l), 0);
}

/*
 * Many timers over few distinct deadlines, with cancellations mixed in:
 * the order of runs must be the stable sort of the live ones by deadline.
 */
enum { RANDOM_TIMERS = 5000 };

struct rnd_timer {
    uint64_t when;
    int seq;
    loop_handle h;
    int cancelled;
    int runs;
};

static struct rnd_timer rnd[RANDOM_TIMERS];
static int rnd_order[RANDOM_TIMERS];
static int rnd_nran;
static int rnd_early;

static void rnd_cb(loop_t *loop, void *arg)
{
    struct rnd_timer *t = arg;
    t->runs++;
    if (loop_now(loop) < t->when)
        rnd_early++;
    rnd_order[rnd_nran++] = t->seq;
    /* Now and then cancel a timer that has not run yet, from a callback:
     * even one due at this very moment. */
    if (t->seq % 7 == 0) {
        int victim = (int)(rng() % RANDOM_TIMERS);
        struct rnd_timer *v = &rnd[victim];
        int rc = loop_cancel(loop, v->h);
        if (v->runs || v->cancelled)
            assert_int_equal(rc, -ENOENT);
        else {
            assert_int_equal(rc, 0);
            v->cancelled = 1;
        }
    }
}

static int cmp_stable(const void *a, const void *b)
{
    const struct rnd_timer *x = &rnd[*(const int *)a], *y = &rnd[*(const int *)b];
    if (x->when != y->when)
        return x->when < y->when ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static void test_random_timers_run_in_stable_deadline_order(void **state)
{
    (void)state;
    loop_t *l = new_virtual(false);
    rng_state = UINT64_C(0x9e3779b97f4a7c15);
    rnd_nran = 0;
    rnd_early = 0;
    for (int i = 0; i < RANDOM_TIMERS; i++) {
        rnd[i] = (struct rnd_timer){.when = LOOP_MS(rng() % 20), .seq = i};
        assert_int_equal(loop_call_at(l, rnd[i].when, rnd_cb, &rnd[i], &rnd[i].h), 0);
        if (rng() % 5 == 0) {
            assert_int_equal(loop_cancel(l, rnd[i].h), 0);
            rnd[i].cancelled = 1;
        }
    }
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(rnd_early, 0);

    int expect[RANDOM_TIMERS];
    int n = 0;
    for (int i = 0; i < RANDOM_TIMERS; i++) {
        assert_int_equal(rnd[i].runs, rnd[i].cancelled ? 0 : 1);
        if (rnd[i].runs)
            expect[n++] = i;
    }
    assert_int_equal(rnd_nran, n);
    qsort(expect, (size_t)n, sizeof expect[0], cmp_stable);
    for (int i = 0; i < n; i++)
        assert_int_equal(rnd_order[i], expect[i]);
    assert_int_equal(loop_free(l), 0);
}

/* ---- never early ------------------------------------------------------- */

struct deadline_probe {
    uint64_t deadline;
    uint64_t ran_at;
    int runs;
};

static void deadline_cb(loop_t *loop, void *arg)
{
    struct deadline_probe *p = arg;
    p->ran_at = loop_now(loop);
    p->runs++;
}

static void test_timer_never_runs_before_its_deadline_virtual(void **state)
{
    (void)state;
    enum { N = 2000 };
    struct deadline_probe *p = calloc(N, sizeof *p);
    assert_non_null(p);
    rng_state = 12345;
    loop_t *l = new_virtual(false);
    for (int i = 0; i < N; i++) {
        /* Deadlines at arbitrary nanoseconds within 3 s. */
        uint64_t d = rng() % LOOP_SEC(3);
        if (i % 2) {
            p[i].deadline = d;
            assert_int_equal(loop_call_at(l, d, deadline_cb, &p[i], NULL), 0);
        } else {
            p[i].deadline = loop_now(l) + d;
            assert_int_equal(loop_call_later(l, d, deadline_cb, &p[i], NULL), 0);
        }
        /* Sometimes let some time pass between schedules. */
        if (i % 100 == 99)
            assert_int_equal(loop_run_once(l, (int64_t)(rng() % LOOP_MS(50))), 0);
    }
    assert_int_equal(loop_run(l), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(p[i].runs, 1);
        assert_u64_ge(p[i].ran_at, p[i].deadline);
    }
    free(p);
    assert_int_equal(loop_free(l), 0);
}

static void test_timer_never_runs_before_its_deadline_real_clock(void **state)
{
    (void)state;
    enum { N = 20 };
    struct deadline_probe p[N] = {{0}};
    loop_t *l = NULL;
    assert_int_equal(loop_new(&l), 0);
    rng_state = 777;
    for (int i = 0; i < N; i++) {
        /* Delays from 0 to 3 ms, many below a millisecond. */
        uint64_t d = rng() % 3000000u;
        p[i].deadline = loop_now(l) + d;
        assert_int_equal(loop_call_at(l, p[i].deadline, deadline_cb, &p[i], NULL), 0);
    }
    assert_int_equal(loop_run(l), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(p[i].runs, 1);
        assert_u64_ge(p[i].ran_at, p[i].deadline);
    }
    assert_int_equal(loop_free(l), 0);
}

static void test_real_clock_2ms_timer_runs_at_or_after_its_deadline(void **state)
{
    (void)state;
    loop_t *l = NULL;
    assert_int_equal(loop_new(&l), 0);
    struct deadline_probe p = {0};
    uint64_t before = mono_ns();
    assert_int_equal(loop_call_later(l, LOOP_MS(2), deadline_cb, &p, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(p.runs, 1);
    assert_u64_ge(p.ran_at, before + LOOP_MS(2));
    assert_u64_ge(mono_ns(), before + LOOP_MS(2));
    assert_int_equal(loop_free(l), 0);
}

/* ---- the virtual clock ------------------------------------------------- */

static void test_virtual_time_jumps_to_the_earliest_deadline(void **state)
{
    (void)state;
    loop_t *l = new_virtual(true);
    int a = 0, b = 0, c = 0;
    assert_int_equal(loop_call_later(l, LOOP_SEC(9), count_cb, &c, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_SEC(5), count_cb, &a, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_SEC(7), count_cb, &b, NULL), 0);

    assert_int_equal(loop_run_once(l, -1), 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(5));
    assert_int_equal(a + b + c, 1);
    assert_int_equal(a, 1);

    assert_int_equal(loop_run_once(l, -1), 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(7));
    assert_int_equal(b, 1);
    assert_int_equal(c, 0);

    /* Sub-millisecond deadlines are met exactly, too. */
    assert_int_equal(loop_call_at(l, LOOP_SEC(7) + 1234, count_cb, &a, NULL), 0);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(a, 2);
    assert_u64_ge(loop_now(l), LOOP_SEC(7) + 1234);
    assert_true(loop_now(l) < LOOP_SEC(9));

    assert_int_equal(loop_run(l), 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(9));
    assert_int_equal(c, 1);
    assert_int_equal(loop_free(l), 0);
}

static void test_run_once_cap_limits_the_virtual_jump(void **state)
{
    (void)state;
    loop_t *l = new_virtual(true);
    int a = 0;
    assert_int_equal(loop_call_later(l, LOOP_SEC(10), count_cb, &a, NULL), 0);

    assert_int_equal(loop_run_once(l, 0), 0);
    assert_u64_eq(loop_now(l), 0);
    assert_int_equal(loop_run_once(l, (int64_t)LOOP_SEC(1)), 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(1));
    assert_int_equal(a, 0);
    assert_int_equal(loop_run_once(l, 1), 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(1) + 1);
    assert_int_equal(a, 0);

    /* A cap beyond the deadline: the jump stops at the deadline. */
    assert_int_equal(loop_run_once(l, (int64_t)LOOP_SEC(20)), 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(10));
    assert_int_equal(a, 1);
    assert_int_equal(loop_free(l), 0);
}

static void test_run_once_cap_exactly_at_the_deadline_runs_the_timer(void **state)
{
    (void)state;
    loop_t *l = new_virtual(true);
    int a = 0;
    assert_int_equal(loop_call_later(l, LOOP_MS(3), count_cb, &a, NULL), 0);
    assert_int_equal(loop_run_once(l, (int64_t)LOOP_MS(3)), 0);
    assert_u64_eq(loop_now(l), LOOP_MS(3));
    assert_int_equal(a, 1);
    assert_int_equal(loop_free(l), 0);
}

static void test_advance_moves_the_clock_without_running_anything(void **state)
{
    (void)state;
    loop_t *l = new_virtual(true);
    int a = 0, b = 0;
    assert_int_equal(loop_call_later(l, LOOP_SEC(1), count_cb, &a, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_SEC(5), count_cb, &b, NULL), 0);
    assert_int_equal(loop_advance(l, LOOP_SEC(2)), 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(2));
    assert_int_equal(a, 0);

    /* What fell due runs at the next iteration, without a further jump. */
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(a, 1);
    assert_int_equal(b, 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(2));
    assert_int_equal(loop_free(l), 0);
}

struct advancer {
    uint64_t by;
    int *target_runs;
    int target_runs_in_cb;
};

static void advance_cb(loop_t *loop, void *arg)
{
    struct advancer *a = arg;
    assert_int_equal(loop_advance(loop, a->by), 0);
    a->target_runs_in_cb = *a->target_runs;
}

static void test_advance_in_a_callback_runs_due_timers_at_the_next_iteration(void **state)
{
    (void)state;
    loop_t *l = new_virtual(true);
    int t = 0, soon = 0;
    struct advancer a = {.by = LOOP_SEC(1), .target_runs = &t};
    assert_int_equal(loop_call_later(l, LOOP_MS(500), count_cb, &t, NULL), 0);
    assert_int_equal(loop_call_soon(l, advance_cb, &a, NULL), 0);
    assert_int_equal(loop_call_soon(l, count_cb, &soon, NULL), 0);

    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(soon, 1); /* the rest of the snapshot ran */
    assert_int_equal(t, 0);    /* the timer was not in it */
    assert_u64_eq(loop_now(l), LOOP_SEC(1));

    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(t, 1);
    assert_u64_eq(loop_now(l), LOOP_SEC(1));
    assert_int_equal(loop_free(l), 0);
}

/* ---- call_later counts from the call ------------------------------------ */

struct later_from_cb {
    uint64_t advance_by; /* virtual: how far the callback moves the clock */
    uint64_t busy_ns;    /* real: how long the callback spins */
    uint64_t delay;
    uint64_t called_at; /* clock read just before call_later */
    struct deadline_probe probe;
};

static void later_from_cb(loop_t *loop, void *arg)
{
    struct later_from_cb *c = arg;
    if (c->advance_by)
        assert_int_equal(loop_advance(loop, c->advance_by), 0);
    if (c->busy_ns) {
        uint64_t t = mono_ns();
        while (mono_ns() - t < c->busy_ns) {
        }
    }
    c->called_at = c->advance_by ? loop_now(loop) : mono_ns();
    assert_int_equal(loop_call_later(loop, c->delay, deadline_cb, &c->probe, NULL), 0);
}

static void test_call_later_counts_from_the_call_on_the_virtual_clock(void **state)
{
    (void)state;
    loop_t *l = new_virtual(true);
    struct later_from_cb c = {.advance_by = LOOP_SEC(5), .delay = LOOP_SEC(1)};
    assert_int_equal(loop_call_soon(l, later_from_cb, &c, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_u64_eq(c.called_at, LOOP_SEC(5));
    assert_int_equal(c.probe.runs, 1);
    assert_u64_eq(c.probe.ran_at, LOOP_SEC(6));
    assert_int_equal(loop_free(l), 0);
}

static void test_call_later_counts_from_the_call_on_the_real_clock(void **state)
{
    (void)state;
    /*
     * The callback spins 15 ms, then asks for a 10 ms delay.  Counted from
     * the iteration's start, that deadline would already be past; counted
     * from the call, the timer runs no earlier than the clock read just
     * before the call plus 10 ms.  Only a lower bound is asserted.
     */
    loop_t *l = NULL;
    assert_int_equal(loop_new(&l), 0);
    struct later_from_cb c = {.busy_ns = LOOP_MS(15), .delay = LOOP_MS(10)};
    assert_int_equal(loop_call_soon(l, later_from_cb, &c, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(c.probe.runs, 1);
    assert_u64_ge(c.probe.ran_at, c.called_at + LOOP_MS(10));
    assert_int_equal(loop_free(l), 0);
}

static void at_now_plus_cb(loop_t *loop, void *arg)
{
    struct later_from_cb *c = arg;
    c->called_at = loop_now(loop);
    assert_int_equal(loop_call_at(loop, loop_now(loop) + c->delay, deadline_cb, &c->probe, NULL),
                     0);
}

static void test_call_at_now_plus_d_counts_from_the_iterations_time(void **state)
{
    (void)state;
    loop_t *l = new_virtual(true);
    struct later_from_cb c = {.delay = LOOP_MS(250)};
    assert_int_equal(loop_advance(l, LOOP_SEC(1)), 0);
    assert_int_equal(loop_call_soon(l, at_now_plus_cb, &c, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_u64_eq(c.probe.ran_at, LOOP_SEC(1) + LOOP_MS(250));
    assert_int_equal(loop_free(l), 0);
}

/* ---- call_at ------------------------------------------------------------ */

struct past {
    struct log *log;
    struct entry soon, timer;
};

static void schedule_past_cb(loop_t *loop, void *arg)
{
    struct past *p = arg;
    /* Scheduled during iteration k: both wait for k + 1, the call_soon
     * first (queued before the poll), the timer in the timer phase. */
    assert_int_equal(loop_call_at(loop, LOOP_SEC(5), log_cb, &p->timer, NULL), 0);
    assert_int_equal(loop_call_soon(loop, log_cb, &p->soon, NULL), 0);
}

static void test_call_at_in_the_past_runs_at_the_next_iterations_timer_phase(void **state)
{
    (void)state;
    loop_t *l = new_virtual(true);
    struct log log;
    log_init(&log, 8);
    struct past p = {.log = &log, .soon = {.log = &log, .id = 1}, .timer = {.log = &log, .id = 2}};
    assert_int_equal(loop_advance(l, LOOP_SEC(10)), 0);
    assert_int_equal(loop_call_soon(l, schedule_past_cb, &p, NULL), 0);

    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(log.n, 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(log.n, 2);
    assert_int_equal(log.v[0].id, 1);
    assert_int_equal(log.v[1].id, 2);
    assert_u64_eq(log.v[1].now, LOOP_SEC(10)); /* no jump for a past deadline */

    /* Before any iteration, call_at(0) runs in the first one. */
    int a = 0;
    assert_int_equal(loop_call_at(l, 0, count_cb, &a, NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(a, 1);
    free(log.v);
    assert_int_equal(loop_free(l), 0);
}

static void test_timer_due_while_callbacks_run_waits_for_the_next_iteration(void **state)
{
    (void)state;
    loop_t *l = new_virtual(true);
    struct log log;
    log_init(&log, 8);
    struct entry first = {.log = &log, .id = 1};
    struct past p = {.log = &log, .soon = {.log = &log, .id = 3}, .timer = {.log = &log, .id = 4}};
    /* A timer callback schedules an already-due timer: not this batch. */
    assert_int_equal(loop_advance(l, LOOP_SEC(6)), 0);
    assert_int_equal(loop_call_at(l, LOOP_SEC(1), schedule_past_cb, &p, NULL), 0);
    assert_int_equal(loop_call_at(l, LOOP_SEC(2), log_cb, &first, NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.v[0].id, 1);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(log.n, 3);
    assert_int_equal(log.v[1].id, 3);
    assert_int_equal(log.v[2].id, 4);
    free(log.v);
    assert_int_equal(loop_free(l), 0);
}

/* ---- call_every ---------------------------------------------------------- */

static void every_cb(loop_t *loop, void *arg)
{
    struct entry *e = arg;
    log_cb(loop, arg);
    if (e->stop_after && e->runs == e->stop_after)
        e->cancel_rc = loop_cancel(loop, e->self);
}

static void test_call_every_runs_at_multiples_of_its_period(void **state)
{
    (void)state;
    loop_t *l = new_virtual(false);
    struct log log;
    log_init(&log, 16);
    struct entry e = {.log = &log, .id = 1, .stop_after = 8, .cancel_rc = 99};
    assert_int_equal(loop_advance(l, LOOP_MS(7)), 0);
    assert_int_equal(loop_call_every(l, LOOP_MS(100), every_cb, &e, &e.self), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(log.n, 8);
    for (int i = 0; i < 8; i++)
        assert_u64_eq(log.v[i].now, LOOP_MS(7) + (uint64_t)(i + 1) * LOOP_MS(100));
    free(log.v);
    assert_int_equal(loop_free(l), 0);
}

static void test_cancel_of_call_every_from_its_own_callback_returns_0_and_stops_it(void **state)
{
    (void)state;
    loop_t *l = new_virtual(false);
    struct log log;
    log_init(&log, 16);
    struct entry e = {.log = &log, .id = 1, .stop_after = 3, .cancel_rc = 99};
    assert_int_equal(loop_call_every(l, LOOP_MS(10), every_cb, &e, &e.self), 0);
    /* loop_run returns only if the cancelled timer no longer counts. */
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(e.cancel_rc, 0);
    assert_int_equal(e.runs, 3);
    assert_u64_eq(loop_now(l), LOOP_MS(30));
    assert_int_equal(loop_cancel(l, e.self), -ENOENT);
    free(log.v);
    assert_int_equal(loop_free(l), 0);
}

static void test_cancel_of_call_every_from_outside_stops_it(void **state)
{
    (void)state;
    loop_t *l = new_virtual(true);
    struct log log;
    log_init(&log, 16);
    struct entry e = {.log = &log, .id = 1};
    assert_int_equal(loop_call_every(l, LOOP_MS(10), every_cb, &e, &e.self), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(e.runs, 4);
    /* The handle stays valid across runs. */
    assert_int_equal(loop_cancel(l, e.self), 0);
    assert_int_equal(loop_cancel(l, e.self), -ENOENT);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(e.runs, 4);
    assert_u64_eq(loop_now(l), LOOP_MS(40));
    free(log.v);
    assert_int_equal(loop_free(l), 0);
}

struct every_canceller {
    loop_handle target;
    int rc;
};

static void cancel_target_cb(loop_t *loop, void *arg)
{
    struct every_canceller *c = arg;
    c->rc = loop_cancel(loop, c->target);
}

static void test_call_every_cancelled_in_the_same_batch_never_runs_again(void **state)
{
    (void)state;
    loop_t *l = new_virtual(true);
    struct log log;
    log_init(&log, 16);
    struct entry e = {.log = &log, .id = 1};
    struct every_canceller c = {.rc = 99};
    assert_int_equal(loop_call_every(l, LOOP_MS(10), every_cb, &e, &e.self), 0);
    /* Due at 20 ms like the every timer's second run, but scheduled
     * earlier (that run is armed only at 10 ms): it runs first in the
     * 20 ms batch and cancels the run queued behind it. */
    assert_int_equal(loop_call_at(l, LOOP_MS(20), cancel_target_cb, &c, NULL), 0);
    c.target = e.self;
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(e.runs, 1);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_u64_eq(loop_now(l), LOOP_MS(20));
    assert_int_equal(c.rc, 0);
    assert_int_equal(e.runs, 1);
    /* Nothing is left: run returns at once. */
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(e.runs, 1);
    assert_u64_eq(loop_now(l), LOOP_MS(20));
    free(log.v);
    assert_int_equal(loop_free(l), 0);
}

static void test_call_every_after_an_outside_stall_runs_once_then_now_plus_period(void **state)
{
    (void)state;
    loop_t *l = new_virtual(true);
    struct log log;
    log_init(&log, 16);
    struct entry e = {.log = &log, .id = 1, .stop_after = 4};
    assert_int_equal(loop_call_every(l, LOOP_MS(100), every_cb, &e, &e.self), 0);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(e.runs, 1);
    assert_u64_eq(log.v[0].now, LOOP_MS(100));

    /* The loop stalls for ten periods. */
    assert_int_equal(loop_advance(l, LOOP_MS(1000)), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(e.runs, 2); /* one late run, not a burst of ten */
    assert_u64_eq(log.v[1].now, LOOP_MS(1100));
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(e.runs, 2);

    assert_int_equal(loop_run(l), 0);
    assert_int_equal(e.runs, 4);
    assert_u64_eq(log.v[2].now, LOOP_MS(1200));
    assert_u64_eq(log.v[3].now, LOOP_MS(1300));
    free(log.v);
    assert_int_equal(loop_free(l), 0);
}

static void stalling_every_cb(loop_t *loop, void *arg)
{
    struct entry *e = arg;
    every_cb(loop, arg);
    if (e->runs == 2)
        assert_int_equal(loop_advance(loop, LOOP_MS(1000)), 0);
}

static void test_call_every_after_a_stall_in_its_callback_does_not_burst(void **state)
{
    (void)state;
    loop_t *l = new_virtual(true);
    struct log log;
    log_init(&log, 16);
    struct entry e = {.log = &log, .id = 1, .stop_after = 6};
    assert_int_equal(loop_call_every(l, LOOP_MS(100), stalling_every_cb, &e, &e.self), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(e.runs, 6);
    assert_u64_eq(log.v[0].now, LOOP_MS(100));
    assert_u64_eq(log.v[1].now, LOOP_MS(200));
    /*
     * The second run ends at 1200 ms.  Its next deadline (300 ms) is past:
     * the timer then runs at most once late (at 1200 ms, if the next
     * deadline was computed before the callback ran) and from then on one
     * period apart, counted from now: never a burst of catch-up runs.
     */
    uint64_t third = log.v[2].now;
    assert_true(third == LOOP_MS(1200) || third == LOOP_MS(1300));
    for (int i = 3; i < 6; i++)
        assert_u64_eq(log.v[i].now, log.v[i - 1].now + LOOP_MS(100));
    free(log.v);
    assert_int_equal(loop_free(l), 0);
}

static void test_call_every_first_runs_one_period_after_the_call(void **state)
{
    (void)state;
    loop_t *l = new_virtual(true);
    struct log log;
    log_init(&log, 8);
    struct entry e = {.log = &log, .id = 1, .stop_after = 1};
    assert_int_equal(loop_advance(l, LOOP_MS(123)), 0);
    assert_int_equal(loop_call_every(l, LOOP_SEC(2), every_cb, &e, &e.self), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(e.runs, 1);
    assert_u64_eq(log.v[0].now, LOOP_MS(123) + LOOP_SEC(2));
    free(log.v);
    assert_int_equal(loop_free(l), 0);
}

static void test_call_every_with_period_0_is_einval_and_schedules_nothing(void **state)
{
    (void)state;
    loop_t *l = new_virtual(true);
    int a = 0;
    loop_handle h = {UINT64_C(0xfeed)};
    assert_int_equal(loop_call_every(l, 0, count_cb, &a, &h), -EINVAL);
    assert_true(h.id == 0);
    assert_int_equal(loop_call_every(l, 0, count_cb, &a, NULL), -EINVAL);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(a, 0);
    assert_u64_eq(loop_now(l), 0);
    assert_int_equal(loop_free(l), 0);
}

/* ---- saturation ----------------------------------------------------------- */

static void test_huge_delay_saturates_and_never_runs(void **state)
{
    (void)state;
    loop_t *l = new_virtual(false);
    int a = 0, b = 0, c = 0;
    loop_handle ha, hb, hc;
    /* From 5 s, now + UINT64_MAX would wrap to just before 5 s. */
    assert_int_equal(loop_advance(l, LOOP_SEC(5)), 0);
    assert_int_equal(loop_call_later(l, UINT64_MAX, count_cb, &a, &ha), 0);
    assert_int_equal(loop_call_at(l, UINT64_MAX, count_cb, &b, &hb), 0);
    assert_int_equal(loop_call_later(l, UINT64_MAX - LOOP_SEC(1), count_cb, &c, &hc), 0);

    /* The timers keep the loop alive: each capped iteration waits its cap
     * (no spin, no error), and nothing runs. */
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(loop_run_once(l, (int64_t)LOOP_MS(10)), 0);
        assert_u64_eq(loop_now(l), LOOP_SEC(5) + (uint64_t)i * LOOP_MS(10));
    }
    assert_int_equal(a + b + c, 0);

    assert_int_equal(loop_cancel(l, ha), 0);
    assert_int_equal(loop_cancel(l, hb), 0);
    assert_int_equal(loop_cancel(l, hc), 0);
    uint64_t t = loop_now(l);
    /* Nothing left: run returns without moving the clock. */
    assert_int_equal(loop_run(l), 0);
    assert_u64_eq(loop_now(l), t);
    assert_int_equal(a + b + c, 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_huge_period_saturates_and_never_runs(void **state)
{
    (void)state;
    loop_t *l = new_virtual(false);
    int a = 0;
    loop_handle h;
    assert_int_equal(loop_advance(l, LOOP_SEC(5)), 0);
    assert_int_equal(loop_call_every(l, UINT64_MAX, count_cb, &a, &h), 0);
    assert_int_equal(loop_run_once(l, (int64_t)LOOP_MS(10)), 0);
    assert_u64_eq(loop_now(l), LOOP_SEC(5) + LOOP_MS(10));
    assert_int_equal(a, 0);
    assert_int_equal(loop_cancel(l, h), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_huge_delay_does_not_disturb_nearer_timers(void **state)
{
    (void)state;
    loop_t *l = new_virtual(true);
    int far = 0, near = 0;
    loop_handle h;
    assert_int_equal(loop_call_later(l, UINT64_MAX, count_cb, &far, &h), 0);
    assert_int_equal(loop_call_later(l, LOOP_SEC(3), count_cb, &near, NULL), 0);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(near, 1);
    assert_u64_eq(loop_now(l), LOOP_SEC(3));
    assert_int_equal(loop_cancel(l, h), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(far, 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_huge_delay_on_the_real_clock_waits_only_the_cap(void **state)
{
    (void)state;
    loop_t *l = NULL;
    assert_int_equal(loop_new(&l), 0);
    int a = 0;
    loop_handle h;
    assert_int_equal(loop_call_later(l, UINT64_MAX, count_cb, &a, &h), 0);
    assert_int_equal(loop_call_at(l, UINT64_MAX, count_cb, &a, NULL), 0);
    /* Returns (a hang would trip the alarm) with no error. */
    assert_int_equal(loop_run_once(l, (int64_t)LOOP_MS(1)), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(a, 0);
    assert_int_equal(loop_cancel(l, h), 0);
    assert_int_equal(loop_free(l), 0);
}

/* ---- cancel ----------------------------------------------------------------- */

static void test_cancelled_timer_never_runs_and_does_not_keep_the_loop_alive(void **state)
{
    (void)state;
    loop_t *l = new_virtual(false);
    int a = 0, b = 0;
    loop_handle ha;
    assert_int_equal(loop_call_later(l, LOOP_SEC(1), count_cb, &a, &ha), 0);
    assert_int_equal(loop_call_later(l, LOOP_MS(10), count_cb, &b, NULL), 0);
    assert_int_equal(loop_cancel(l, ha), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(a, 0);
    assert_int_equal(b, 1);
    assert_u64_eq(loop_now(l), LOOP_MS(10));
    assert_int_equal(loop_cancel(l, ha), -ENOENT);
    assert_int_equal(loop_free(l), 0);
}

static void test_cancel_of_a_timer_after_it_ran_is_enoent(void **state)
{
    (void)state;
    loop_t *l = new_virtual(false);
    int a = 0;
    loop_handle h;
    assert_int_equal(loop_call_at(l, LOOP_MS(1), count_cb, &a, &h), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(a, 1);
    assert_int_equal(loop_cancel(l, h), -ENOENT);
    assert_int_equal(loop_free(l), 0);
}

/* ---- bad arguments ------------------------------------------------------------ */

static void test_timer_calls_with_null_loop_or_fn_are_einval_and_clear_out(void **state)
{
    (void)state;
    loop_t *l = new_virtual(false);
    int a = 0;
    loop_handle h;

    h.id = 77;
    assert_int_equal(loop_call_later(NULL, 1, count_cb, &a, &h), -EINVAL);
    assert_true(h.id == 0);
    h.id = 77;
    assert_int_equal(loop_call_later(l, 1, NULL, &a, &h), -EINVAL);
    assert_true(h.id == 0);
    h.id = 77;
    assert_int_equal(loop_call_at(NULL, 1, count_cb, &a, &h), -EINVAL);
    assert_true(h.id == 0);
    h.id = 77;
    assert_int_equal(loop_call_at(l, 1, NULL, &a, &h), -EINVAL);
    assert_true(h.id == 0);
    h.id = 77;
    assert_int_equal(loop_call_every(NULL, 1, count_cb, &a, &h), -EINVAL);
    assert_true(h.id == 0);
    h.id = 77;
    assert_int_equal(loop_call_every(l, 1, NULL, &a, &h), -EINVAL);
    assert_true(h.id == 0);

    assert_int_equal(loop_run(l), 0);
    assert_u64_eq(loop_now(l), 0);
    assert_int_equal(a, 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_timer_calls_accept_a_null_out(void **state)
{
    (void)state;
    loop_t *l = new_virtual(false);
    int a = 0;
    assert_int_equal(loop_call_later(l, LOOP_MS(1), count_cb, &a, NULL), 0);
    assert_int_equal(loop_call_at(l, LOOP_MS(2), count_cb, &a, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(a, 2);
    assert_int_equal(loop_free(l), 0);
}

/* ---- volume --------------------------------------------------------------------- */

static void test_many_timers_with_distinct_deadlines_all_run_in_order(void **state)
{
    (void)state;
    enum { N = 100000 };
    loop_t *l = new_virtual(false);
    struct deadline_probe *p = calloc(N, sizeof *p);
    assert_non_null(p);
    /* Scheduled in a scrambled order; deadlines i microseconds. */
    for (int k = 0; k < N; k++) {
        int i = (int)(((uint64_t)k * 7919u) % N);
        p[i].deadline = (uint64_t)(i + 1) * 1000u;
        assert_int_equal(loop_call_at(l, p[i].deadline, deadline_cb, &p[i], NULL), 0);
    }
    assert_int_equal(loop_run(l), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(p[i].runs, 1);
        assert_u64_eq(p[i].ran_at, p[i].deadline);
    }
    free(p);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_run_in_deadline_order),
        cmocka_unit_test(test_timer_ties_run_in_schedule_order),
        cmocka_unit_test(test_random_timers_run_in_stable_deadline_order),
        cmocka_unit_test(test_timer_never_runs_before_its_deadline_virtual),
        cmocka_unit_test(test_timer_never_runs_before_its_deadline_real_clock),
        cmocka_unit_test(test_real_clock_2ms_timer_runs_at_or_after_its_deadline),
        cmocka_unit_test(test_virtual_time_jumps_to_the_earliest_deadline),
        cmocka_unit_test(test_run_once_cap_limits_the_virtual_jump),
        cmocka_unit_test(test_run_once_cap_exactly_at_the_deadline_runs_the_timer),
        cmocka_unit_test(test_advance_moves_the_clock_without_running_anything),
        cmocka_unit_test(test_advance_in_a_callback_runs_due_timers_at_the_next_iteration),
        cmocka_unit_test(test_call_later_counts_from_the_call_on_the_virtual_clock),
        cmocka_unit_test(test_call_later_counts_from_the_call_on_the_real_clock),
        cmocka_unit_test(test_call_at_now_plus_d_counts_from_the_iterations_time),
        cmocka_unit_test(test_call_at_in_the_past_runs_at_the_next_iterations_timer_phase),
        cmocka_unit_test(test_timer_due_while_callbacks_run_waits_for_the_next_iteration),
        cmocka_unit_test(test_call_every_runs_at_multiples_of_its_period),
        cmocka_unit_test(test_cancel_of_call_every_from_its_own_callback_returns_0_and_stops_it),
        cmocka_unit_test(test_cancel_of_call_every_from_outside_stops_it),
        cmocka_unit_test(test_call_every_cancelled_in_the_same_batch_never_runs_again),
        cmocka_unit_test(test_call_every_after_an_outside_stall_runs_once_then_now_plus_period),
        cmocka_unit_test(test_call_every_after_a_stall_in_its_callback_does_not_burst),
        cmocka_unit_test(test_call_every_first_runs_one_period_after_the_call),
        cmocka_unit_test(test_call_every_with_period_0_is_einval_and_schedules_nothing),
        cmocka_unit_test(test_huge_delay_saturates_and_never_runs),
        cmocka_unit_test(test_huge_period_saturates_and_never_runs),
        cmocka_unit_test(test_huge_delay_does_not_disturb_nearer_timers),
        cmocka_unit_test(test_huge_delay_on_the_real_clock_waits_only_the_cap),
        cmocka_unit_test(test_cancelled_timer_never_runs_and_does_not_keep_the_loop_alive),
        cmocka_unit_test(test_cancel_of_a_timer_after_it_ran_is_enoent),
        cmocka_unit_test(test_timer_calls_with_null_loop_or_fn_are_einval_and_clear_out),
        cmocka_unit_test(test_timer_calls_accept_a_null_out),
        cmocka_unit_test(test_many_timers_with_distinct_deadlines_all_run_in_order),
    };
    alarm(120);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
