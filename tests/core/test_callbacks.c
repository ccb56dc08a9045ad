/*
 * loop_call_soon and loop_cancel: FIFO order, snapshot semantics of one
 * iteration, fairness towards timers and I/O, and generation-checked
 * handles.
 */
#include "fixtures.h"
#include "record.h"
#include "sockets.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------- */

/* A callback that logs its id, and what some callbacks do besides. */
struct entry {
    struct record *log;
    int id;
    loop_t *loop;
    loop_handle self, other;
    int rc;
};

static void log_cb(loop_t *loop, void *arg)
{
    struct entry *e = arg;
    record_add(e->log, loop, e->id);
}

/* ---- order and snapshots ----------------------------------------------- */

static void test_call_soon_runs_callbacks_in_fifo_order(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct record log = {0};
    struct entry e[10];
    for (int i = 0; i < 10; i++) {
        e[i] = (struct entry){.log = &log, .id = i};
        assert_int_equal(loop_call_soon(l, log_cb, &e[i], NULL), 0);
    }
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(log.n, 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(log.id[i], i);
    assert_int_equal(loop_free(l), 0);
}

struct args_probe {
    loop_t *loop_seen;
    void *arg_seen;
    int ran;
};

static struct args_probe args_probe;

static void args_cb(loop_t *loop, void *arg)
{
    args_probe.loop_seen = loop;
    args_probe.arg_seen = arg;
    args_probe.ran++;
}

static void test_callback_receives_its_loop_and_arg(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int token;
    args_probe = (struct args_probe){0};
    assert_int_equal(loop_call_soon(l, args_cb, &token, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(args_probe.ran, 1);
    assert_ptr_equal(args_probe.loop_seen, l);
    assert_ptr_equal(args_probe.arg_seen, &token);

    /* A NULL arg is passed through as NULL. */
    args_probe = (struct args_probe){.arg_seen = &token};
    assert_int_equal(loop_call_soon(l, args_cb, NULL, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(args_probe.ran, 1);
    assert_null(args_probe.arg_seen);
    assert_int_equal(loop_free(l), 0);
}

static void schedule_next_cb(loop_t *loop, void *arg)
{
    struct entry *e = arg;
    record_add(e->log, loop, e->id);
    /* e + 1 is the entry this one queues. */
    assert_int_equal(loop_call_soon(loop, log_cb, e + 1, NULL), 0);
}

static void check_scheduled_while_running_waits(bool strict)
{
    loop_t *l = new_virtual_loop(strict);
    struct record log = {0};
    struct entry e[4] = {{.log = &log, .id = 1},
                         {.log = &log, .id = 2},
                         {.log = &log, .id = 3},
                         {.log = &log, .id = 4}};
    /* Iteration 1 holds [1, 3]; 1 queues 2, 3 queues 4. */
    assert_int_equal(loop_call_soon(l, schedule_next_cb, &e[0], NULL), 0);
    assert_int_equal(loop_call_soon(l, schedule_next_cb, &e[2], NULL), 0);

    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(log.n, 2);
    assert_int_equal(log.id[0], 1);
    assert_int_equal(log.id[1], 3);

    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(log.n, 4);
    assert_int_equal(log.id[2], 2);
    assert_int_equal(log.id[3], 4);

    /* Nothing is left. */
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(log.n, 4);
    assert_int_equal(loop_free(l), 0);
}

static void test_callback_scheduled_while_running_waits_for_next_iteration(void **state)
{
    (void)state;
    check_scheduled_while_running_waits(true);
    check_scheduled_while_running_waits(false);
}

/* ---- fairness: a self-rescheduling callback starves nothing ------------ */

struct spinner {
    int runs;
    int runs_at_other; /* spinner runs when the timer or reader ran */
    int other_ran;
    int advance_at; /* run at which to advance the virtual clock; 0: never */
    uint64_t advance_by;
    int fd;
};

static void spin_cb(loop_t *loop, void *arg)
{
    struct spinner *s = arg;
    s->runs++;
    if (s->advance_at && s->runs == s->advance_at)
        assert_int_equal(loop_advance(loop, s->advance_by), 0);
    /* A hard cap, so that a starving loop fails instead of spinning. */
    if (s->runs < 100000)
        assert_int_equal(loop_call_soon(loop, spin_cb, s, NULL), 0);
}

static void spin_timer_cb(loop_t *loop, void *arg)
{
    struct spinner *s = arg;
    s->other_ran++;
    s->runs_at_other = s->runs;
    loop_stop(loop);
}

static void spin_reader_cb(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)fd;
    assert_true(events & LOOP_READABLE);
    struct spinner *s = arg;
    s->other_ran++;
    s->runs_at_other = s->runs;
    loop_stop(loop);
}

/* The most spinner runs a timer or reader may wait when the loop skips
 * polls: poll_interval callbacks, then the iteration that polls. */
static int max_delay(bool strict, uint32_t interval)
{
    return strict ? 1 : (int)(interval ? interval : 64) + 1;
}

static loop_t *spinner_loop(bool strict, uint32_t interval)
{
    return new_loop_with((loop_options){
        .clock = LOOP_CLOCK_VIRTUAL, .strict_poll = strict, .poll_interval = interval});
}

static void check_spinner_does_not_starve_due_timer(bool strict, uint32_t interval)
{
    loop_t *l = spinner_loop(strict, interval);
    struct spinner s = {0};
    assert_int_equal(loop_call_soon(l, spin_cb, &s, NULL), 0);
    assert_int_equal(loop_call_at(l, 0, spin_timer_cb, &s, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(s.other_ran, 1);
    assert_true(s.runs_at_other >= 1);
    assert_true(s.runs_at_other <= max_delay(strict, interval));
    assert_int_equal(loop_free(l), 0);
}

static void check_spinner_does_not_starve_timer_falling_due(bool strict, uint32_t interval)
{
    loop_t *l = spinner_loop(strict, interval);
    /* The timer falls due when the spinner's 500th run moves the clock. */
    struct spinner s = {.advance_at = 500, .advance_by = LOOP_SEC(1)};
    assert_int_equal(loop_call_soon(l, spin_cb, &s, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_SEC(1), spin_timer_cb, &s, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(s.other_ran, 1);
    assert_true(s.runs_at_other > 500);
    assert_true(s.runs_at_other <= 500 + max_delay(strict, interval));
    assert_int_equal(loop_free(l), 0);
}

static void check_spinner_does_not_starve_reader(bool strict, uint32_t interval)
{
    loop_t *l = spinner_loop(strict, interval);
    int sv[2];
    make_socketpair(sv);
    assert_int_equal(write(sv[1], "x", 1), 1);
    struct spinner s = {0};
    assert_int_equal(loop_call_soon(l, spin_cb, &s, NULL), 0);
    assert_int_equal(loop_add_reader(l, sv[0], spin_reader_cb, &s), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(s.other_ran, 1);
    assert_true(s.runs_at_other >= 1);
    assert_true(s.runs_at_other <= max_delay(strict, interval));
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void check_spinner_does_not_starve_reader_becoming_ready(bool strict, uint32_t interval);

static void test_self_rescheduling_callback_never_starves_a_timer(void **state)
{
    (void)state;
    check_spinner_does_not_starve_due_timer(true, 0);
    check_spinner_does_not_starve_due_timer(false, 0);
    check_spinner_does_not_starve_due_timer(false, 4);
    check_spinner_does_not_starve_due_timer(false, 1);
    check_spinner_does_not_starve_timer_falling_due(true, 0);
    check_spinner_does_not_starve_timer_falling_due(false, 0);
    check_spinner_does_not_starve_timer_falling_due(false, 7);
}

static void test_self_rescheduling_callback_never_starves_a_reader(void **state)
{
    (void)state;
    check_spinner_does_not_starve_reader(true, 0);
    check_spinner_does_not_starve_reader(false, 0);
    check_spinner_does_not_starve_reader(false, 3);
    check_spinner_does_not_starve_reader_becoming_ready(true, 0);
    check_spinner_does_not_starve_reader_becoming_ready(false, 0);
    check_spinner_does_not_starve_reader_becoming_ready(false, 5);
}

static void spin_then_write_cb(loop_t *loop, void *arg)
{
    struct spinner *s = arg;
    s->runs++;
    if (s->runs == 300)
        assert_int_equal(write(s->fd, "y", 1), 1);
    if (s->runs < 100000)
        assert_int_equal(loop_call_soon(loop, spin_then_write_cb, s, NULL), 0);
}

static void check_spinner_does_not_starve_reader_becoming_ready(bool strict, uint32_t interval)
{
    loop_t *l = spinner_loop(strict, interval);
    int sv[2];
    make_socketpair(sv);
    /* The spinner's 300th run makes the fd readable. */
    struct spinner s = {.fd = sv[1]};
    assert_int_equal(loop_call_soon(l, spin_then_write_cb, &s, NULL), 0);
    assert_int_equal(loop_add_reader(l, sv[0], spin_reader_cb, &s), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(s.other_ran, 1);
    assert_true(s.runs_at_other > 300);
    assert_true(s.runs_at_other <= 300 + max_delay(strict, interval));
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

/* ---- cancel ------------------------------------------------------------ */

static void test_cancel_before_run_means_it_never_runs(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int a = 0, b = 0, c = 0;
    loop_handle ha, hb, hc;
    assert_int_equal(loop_call_soon(l, count_cb, &a, &ha), 0);
    assert_int_equal(loop_call_soon(l, count_cb, &b, &hb), 0);
    assert_int_equal(loop_call_soon(l, count_cb, &c, &hc), 0);
    assert_int_equal(loop_cancel(l, hb), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(a, 1);
    assert_int_equal(b, 0);
    assert_int_equal(c, 1);
    assert_int_equal(loop_free(l), 0);
}

static void test_cancelling_the_only_callback_lets_run_return(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int a = 0;
    loop_handle h;
    assert_int_equal(loop_call_soon(l, count_cb, &a, &h), 0);
    assert_int_equal(loop_cancel(l, h), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(a, 0);
    assert_int_equal(loop_free(l), 0);
}

static void cancel_other_cb(loop_t *loop, void *arg)
{
    struct entry *e = arg;
    record_add(e->log, loop, e->id);
    e->rc = loop_cancel(loop, e->other);
}

static void check_cancelled_in_same_batch(bool strict)
{
    loop_t *l = new_virtual_loop(strict);
    struct record log = {0};
    struct entry e1 = {.log = &log, .id = 1}, e2 = {.log = &log, .id = 2},
                 e3 = {.log = &log, .id = 3};
    /* One snapshot: [1, 2, 3]; 1 cancels 2. */
    assert_int_equal(loop_call_soon(l, cancel_other_cb, &e1, NULL), 0);
    assert_int_equal(loop_call_soon(l, log_cb, &e2, &e1.other), 0);
    assert_int_equal(loop_call_soon(l, log_cb, &e3, NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(e1.rc, 0);
    assert_int_equal(log.n, 2);
    assert_int_equal(log.id[0], 1);
    assert_int_equal(log.id[1], 3);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(log.n, 2);
    assert_int_equal(loop_cancel(l, e1.other), -ENOENT);
    assert_int_equal(loop_free(l), 0);
}

static void test_cancelled_callback_in_same_batch_never_runs(void **state)
{
    (void)state;
    check_cancelled_in_same_batch(true);
    check_cancelled_in_same_batch(false);
}

static void test_cancelled_timer_in_same_batch_never_runs(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    struct record log = {0};
    struct entry e1 = {.log = &log, .id = 1}, e2 = {.log = &log, .id = 2},
                 e3 = {.log = &log, .id = 3};
    /* One snapshot: [1 (soon), 2 (timer), 3 (timer)]; 1 cancels 2. */
    assert_int_equal(loop_call_at(l, 0, log_cb, &e2, &e1.other), 0);
    assert_int_equal(loop_call_at(l, 0, log_cb, &e3, NULL), 0);
    assert_int_equal(loop_call_soon(l, cancel_other_cb, &e1, NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(e1.rc, 0);
    assert_int_equal(log.n, 2);
    assert_int_equal(log.id[0], 1);
    assert_int_equal(log.id[1], 3);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(log.n, 2);
    assert_int_equal(loop_free(l), 0);
}

static void test_cancel_twice_is_enoent(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int a = 0;
    loop_handle h;
    assert_int_equal(loop_call_soon(l, count_cb, &a, &h), 0);
    assert_int_equal(loop_cancel(l, h), 0);
    assert_int_equal(loop_cancel(l, h), -ENOENT);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_cancel(l, h), -ENOENT);
    assert_int_equal(a, 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_cancel_after_it_ran_is_enoent(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int a = 0;
    loop_handle h;
    assert_int_equal(loop_call_soon(l, count_cb, &a, &h), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(a, 1);
    assert_int_equal(loop_cancel(l, h), -ENOENT);
    assert_int_equal(loop_free(l), 0);
}

static void test_cancel_of_the_null_handle_is_enoent(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    assert_int_equal(loop_cancel(l, (loop_handle){0}), -ENOENT);
    /* Also with live callbacks around, which must be unaffected. */
    int a = 0;
    loop_handle h;
    assert_int_equal(loop_call_soon(l, count_cb, &a, &h), 0);
    assert_true(h.id != 0);
    assert_int_equal(loop_cancel(l, (loop_handle){0}), -ENOENT);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(a, 1);
    assert_int_equal(loop_free(l), 0);
}

static void test_cancel_with_null_loop_is_einval(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int a = 0;
    loop_handle h;
    assert_int_equal(loop_call_soon(l, count_cb, &a, &h), 0);
    assert_int_equal(loop_cancel(NULL, h), -EINVAL);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(a, 1);
    assert_int_equal(loop_free(l), 0);
}

static void test_cancel_of_a_handle_that_never_existed_is_enoent(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int a = 0;
    loop_handle h;
    assert_int_equal(loop_call_soon(l, count_cb, &a, &h), 0);
    const uint64_t bogus[] = {h.id + 1,
                              h.id - 1,
                              h.id ^ (UINT64_C(1) << 40),
                              h.id + (UINT64_C(1) << 32),
                              UINT64_MAX,
                              UINT64_C(0x123456789abcdef)};
    for (size_t i = 0; i < sizeof bogus / sizeof bogus[0]; i++) {
        if (bogus[i] == h.id || bogus[i] == 0)
            continue;
        assert_int_equal(loop_cancel(l, (loop_handle){bogus[i]}), -ENOENT);
    }
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(a, 1);
    assert_int_equal(loop_free(l), 0);
}

static void test_cancel_of_a_handle_from_another_loop_is_enoent(void **state)
{
    (void)state;
    loop_t *a = new_virtual_loop(false);
    loop_t *b = new_virtual_loop(false);
    int ran = 0, ran_b = 0;
    loop_handle h, hb;
    /* b has a callback in the slot, of the generation, that h names in a. */
    assert_int_equal(loop_call_soon(b, count_cb, &ran_b, &hb), 0);
    assert_int_equal(loop_call_soon(a, count_cb, &ran, &h), 0);
    assert_int_equal(loop_cancel(b, h), -ENOENT);
    assert_int_equal(loop_run(b), 0);
    assert_int_equal(ran_b, 1); /* not cancelled through a's handle */
    assert_int_equal(loop_run(a), 0);
    assert_int_equal(ran, 1);
    assert_int_equal(loop_free(a), 0);
    assert_int_equal(loop_free(b), 0);
}

static void test_stale_handle_of_a_reused_slot_is_enoent_and_spares_the_new_callback(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int old_ran = 0, new_ran = 0;
    loop_handle old_h, new_h;

    /* The stale handle of a callback that ran. */
    assert_int_equal(loop_call_soon(l, count_cb, &old_ran, &old_h), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_call_soon(l, count_cb, &new_ran, &new_h), 0);
    assert_true(new_h.id != old_h.id);
    assert_int_equal(loop_cancel(l, old_h), -ENOENT);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(old_ran, 1);
    assert_int_equal(new_ran, 1);

    /* The stale handle of a callback that was cancelled. */
    old_ran = new_ran = 0;
    assert_int_equal(loop_call_soon(l, count_cb, &old_ran, &old_h), 0);
    assert_int_equal(loop_cancel(l, old_h), 0);
    assert_int_equal(loop_call_soon(l, count_cb, &new_ran, &new_h), 0);
    assert_true(new_h.id != old_h.id);
    assert_int_equal(loop_cancel(l, old_h), -ENOENT);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(old_ran, 0);
    assert_int_equal(new_ran, 1);

    /* Many rounds of reuse: every stale handle stays stale. */
    enum { ROUNDS = 200 };
    loop_handle stale[ROUNDS];
    int ran[ROUNDS] = {0};
    for (int i = 0; i < ROUNDS; i++) {
        assert_int_equal(loop_call_soon(l, count_cb, &ran[i], &stale[i]), 0);
        if (i % 2)
            assert_int_equal(loop_cancel(l, stale[i]), 0);
        else
            assert_int_equal(loop_run(l), 0);
        for (int j = 0; j < i; j++)
            assert_true(stale[j].id != stale[i].id);
    }
    assert_int_equal(loop_run(l), 0);
    int live_ran = 0;
    loop_handle live;
    assert_int_equal(loop_call_soon(l, count_cb, &live_ran, &live), 0);
    for (int i = 0; i < ROUNDS; i++) {
        assert_int_equal(loop_cancel(l, stale[i]), -ENOENT);
        assert_int_equal(ran[i], i % 2 ? 0 : 1);
    }
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(live_ran, 1);
    assert_int_equal(loop_free(l), 0);
}

static void cancel_self_cb(loop_t *loop, void *arg)
{
    struct entry *e = arg;
    e->rc = loop_cancel(loop, e->self);
    record_add(e->log, loop, e->id);
}

static void test_cancel_own_handle_inside_one_shot_callback_is_enoent(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct record log = {0};
    struct entry soon = {.log = &log, .id = 1, .rc = 12345};
    struct entry later = {.log = &log, .id = 2, .rc = 12345};
    assert_int_equal(loop_call_soon(l, cancel_self_cb, &soon, &soon.self), 0);
    assert_int_equal(loop_call_later(l, LOOP_MS(1), cancel_self_cb, &later, &later.self), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(soon.rc, -ENOENT);
    assert_int_equal(later.rc, -ENOENT);
    assert_int_equal(log.n, 2);
    assert_int_equal(loop_free(l), 0);
}

/* ---- bad arguments ----------------------------------------------------- */

static void test_call_soon_with_null_loop_or_fn_is_einval_and_clears_out(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int a = 0;
    loop_handle h = {UINT64_C(0xdeadbeef)};
    assert_int_equal(loop_call_soon(NULL, count_cb, &a, &h), -EINVAL);
    assert_true(h.id == 0);
    h.id = UINT64_C(0xdeadbeef);
    assert_int_equal(loop_call_soon(l, NULL, &a, &h), -EINVAL);
    assert_true(h.id == 0);
    assert_int_equal(loop_call_soon(NULL, count_cb, &a, NULL), -EINVAL);
    assert_int_equal(loop_call_soon(l, NULL, &a, NULL), -EINVAL);
    /* Nothing was scheduled: run returns at once. */
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(a, 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_call_soon_accepts_a_null_out(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int a = 0;
    assert_int_equal(loop_call_soon(l, count_cb, &a, NULL), 0);
    assert_int_equal(loop_call_soon(l, count_cb, &a, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(a, 2);
    assert_int_equal(loop_free(l), 0);
}

/* ---- volume ------------------------------------------------------------ */

enum { MANY = 100000 };

struct seq {
    int next;
    int bad;
    int ran;
};

static struct seq seq;

static void seq_cb(loop_t *loop, void *arg)
{
    (void)loop;
    int i = (int)(intptr_t)arg;
    if (i != seq.next)
        seq.bad++;
    seq.next = i + 1;
    seq.ran++;
}

static void test_many_callbacks_run_once_each_in_order(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    seq = (struct seq){0};
    for (int i = 0; i < MANY; i++)
        assert_int_equal(loop_call_soon(l, seq_cb, (void *)(intptr_t)i, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(seq.ran, MANY);
    assert_int_equal(seq.bad, 0);
    assert_int_equal(loop_free(l), 0);
}

static void odd_seq_cb(loop_t *loop, void *arg)
{
    (void)loop;
    int i = (int)(intptr_t)arg;
    if (i % 2 == 0 || i <= seq.next)
        seq.bad++;
    seq.next = i;
    seq.ran++;
}

static void test_many_handles_are_distinct_and_cancel_exactly_their_callback(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    loop_handle *h = calloc(MANY, sizeof *h);
    uint64_t *ids = calloc(MANY, sizeof *ids);
    assert_non_null(h);
    assert_non_null(ids);
    seq = (struct seq){.next = -1};
    for (int i = 0; i < MANY; i++)
        assert_int_equal(loop_call_soon(l, odd_seq_cb, (void *)(intptr_t)i, &h[i]), 0);
    for (int i = 0; i < MANY; i++)
        ids[i] = h[i].id;
    qsort(ids, MANY, sizeof *ids, cmp_u64);
    for (int i = 0; i < MANY; i++) {
        assert_true(ids[i] != 0);
        if (i)
            assert_true(ids[i] != ids[i - 1]);
    }
    for (int i = 0; i < MANY; i += 2)
        assert_int_equal(loop_cancel(l, h[i]), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(seq.ran, MANY / 2);
    assert_int_equal(seq.bad, 0);
    for (int i = 0; i < MANY; i++)
        assert_int_equal(loop_cancel(l, h[i]), -ENOENT);
    free(h);
    free(ids);
    assert_int_equal(loop_free(l), 0);
}

struct fanout {
    int wave, in_wave, waves_left, ran;
};

static void fanout_cb(loop_t *loop, void *arg)
{
    struct fanout *f = arg;
    f->ran++;
    /* The last callback of each wave queues a wave twice as large. */
    if (++f->in_wave == f->wave && f->waves_left > 0) {
        f->wave *= 2;
        f->in_wave = 0;
        f->waves_left--;
        for (int i = 0; i < f->wave; i++)
            assert_int_equal(loop_call_soon(loop, fanout_cb, f, NULL), 0);
    }
}

static void check_fanout(bool strict)
{
    loop_t *l = new_virtual_loop(strict);
    /* Waves of 1, 2, 4, ..., 65536 callbacks, each queued while the
     * previous wave runs: one wave per iteration. */
    struct fanout f = {.wave = 1, .waves_left = 16};
    assert_int_equal(loop_call_soon(l, fanout_cb, &f, NULL), 0);
    for (int k = 1; k <= 17; k++) {
        assert_int_equal(loop_run_once(l, 0), 0);
        assert_int_equal(f.ran, (1 << k) - 1);
    }
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(f.ran, (1 << 17) - 1);
    assert_int_equal(loop_free(l), 0);
}

static void test_waves_of_callbacks_queued_from_callbacks_run_one_per_iteration(void **state)
{
    (void)state;
    check_fanout(true);
    check_fanout(false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_soon_runs_callbacks_in_fifo_order),
        cmocka_unit_test(test_callback_receives_its_loop_and_arg),
        cmocka_unit_test(test_callback_scheduled_while_running_waits_for_next_iteration),
        cmocka_unit_test(test_self_rescheduling_callback_never_starves_a_timer),
        cmocka_unit_test(test_self_rescheduling_callback_never_starves_a_reader),
        cmocka_unit_test(test_cancel_before_run_means_it_never_runs),
        cmocka_unit_test(test_cancelling_the_only_callback_lets_run_return),
        cmocka_unit_test(test_cancelled_callback_in_same_batch_never_runs),
        cmocka_unit_test(test_cancelled_timer_in_same_batch_never_runs),
        cmocka_unit_test(test_cancel_twice_is_enoent),
        cmocka_unit_test(test_cancel_after_it_ran_is_enoent),
        cmocka_unit_test(test_cancel_of_the_null_handle_is_enoent),
        cmocka_unit_test(test_cancel_with_null_loop_is_einval),
        cmocka_unit_test(test_cancel_of_a_handle_that_never_existed_is_enoent),
        cmocka_unit_test(test_cancel_of_a_handle_from_another_loop_is_enoent),
        cmocka_unit_test(test_stale_handle_of_a_reused_slot_is_enoent_and_spares_the_new_callback),
        cmocka_unit_test(test_cancel_own_handle_inside_one_shot_callback_is_enoent),
        cmocka_unit_test(test_call_soon_with_null_loop_or_fn_is_einval_and_clears_out),
        cmocka_unit_test(test_call_soon_accepts_a_null_out),
        cmocka_unit_test(test_many_callbacks_run_once_each_in_order),
        cmocka_unit_test(test_many_handles_are_distinct_and_cancel_exactly_their_callback),
        cmocka_unit_test(test_waves_of_callbacks_queued_from_callbacks_run_one_per_iteration),
    };
    alarm(120);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
