/*
 * Allocation failure: a counting allocator, passed through loop_options,
 * fails its k-th allocation for k = 1, 2, 3, ... until a whole scenario
 * runs without reaching a k-th allocation.  Each failure must surface as
 * -ENOMEM from the call that needed the memory (or from loop_run, which
 * may then simply be called again), leave nothing half-done, leave the
 * loop usable, and leak nothing.
 */
#include "counting_alloc.h"
#include "fdleak.h"
#include "fixtures.h"
#include "sockets.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- bookkeeping of what was scheduled ---------------------------------- */

enum { MAX_JOBS = 20000 };

struct job {
    int expected; /* runs it must have made by the end */
    int runs;
    loop_handle h; /* call_every: its own handle */
    int cancel_rc; /* call_every: what cancelling itself returned */
};

struct world {
    struct counting_alloc *a;
    loop_t *loop;
    struct job jobs[MAX_JOBS];
    int njobs;
    /* socketpairs: [i][0] is watched, [i][1] is the peer */
    int (*sv)[2];
    int nsv, sv_cap;
    int chain_left;
};

static struct world *W;
static long current_k; /* the allocation being failed, for messages */

static struct job *new_job(void)
{
    assert_true(W->njobs < MAX_JOBS);
    struct job *j = &W->jobs[W->njobs++];
    *j = (struct job){0};
    return j;
}

/*
 * The outcome of one call that may need memory: 0 always passes; -ENOMEM
 * passes only if the allocator failed during this very call.  Returns
 * whether it succeeded.
 */
static bool outcome(int rc, long failures_before)
{
    if (rc == 0)
        return true;
    if (rc != -ENOMEM)
        fail_msg("unexpected return %d (failing allocation %ld)", rc, current_k);
    if (W->a->failures != failures_before + 1)
        fail_msg("-ENOMEM without an allocation failure (failing allocation %ld)", current_k);
    return false;
}

static void job_cb(loop_t *loop, void *arg)
{
    (void)loop;
    struct job *j = arg;
    j->runs++;
}

/* A repeating job cancels itself at its third run. */
static void every_job_cb(loop_t *loop, void *arg)
{
    struct job *j = arg;
    j->runs++;
    if (j->runs == 3)
        j->cancel_rc = loop_cancel(loop, j->h);
}

static void job_reader(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct job *j = arg;
    j->runs++;
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
    assert_int_equal(loop_remove_reader(loop, fd), 0);
}

static void job_writer(loop_t *loop, int fd, unsigned events, void *arg)
{
    struct job *j = arg;
    j->runs++;
    assert_true(events & LOOP_WRITABLE);
    assert_int_equal(loop_remove_writer(loop, fd), 0);
}

static int new_pair(void)
{
    assert_true(W->nsv < W->sv_cap);
    int *p = W->sv[W->nsv];
    make_socketpair(p);
    return W->nsv++;
}

/* ---- scheduling steps, each checked ------------------------------------- */

static void sched_soon(bool with_handle)
{
    struct job *j = new_job();
    loop_handle h = {UINT64_C(0xabcdef)};
    long f = W->a->failures;
    int rc = loop_call_soon(W->loop, job_cb, j, with_handle ? &h : NULL);
    if (outcome(rc, f)) {
        j->expected = 1;
        if (with_handle)
            assert_true(h.id != 0);
    } else if (with_handle) {
        assert_true(h.id == 0);
        assert_int_equal(loop_cancel(W->loop, h), -ENOENT);
    }
}

static void sched_soon_then_cancel(void)
{
    struct job *j = new_job();
    loop_handle h;
    long f = W->a->failures;
    if (outcome(loop_call_soon(W->loop, job_cb, j, &h), f))
        assert_int_equal(loop_cancel(W->loop, h), 0);
}

static void sched_timer(int kind, uint64_t t)
{
    struct job *j = new_job();
    loop_handle h = {UINT64_C(0xabcdef)};
    loop_handle *out = kind % 2 ? &h : NULL;
    long f = W->a->failures;
    int rc = kind < 2 ? loop_call_at(W->loop, t, job_cb, j, out)
                      : loop_call_later(W->loop, t, job_cb, j, out);
    if (outcome(rc, f))
        j->expected = 1;
    else if (out)
        assert_true(h.id == 0);
}

static void sched_every(uint64_t period)
{
    struct job *j = new_job();
    j->cancel_rc = 99;
    j->h.id = UINT64_C(0xabcdef);
    long f = W->a->failures;
    if (outcome(loop_call_every(W->loop, period, every_job_cb, j, &j->h), f)) {
        j->expected = 3;
        j->cancel_rc = 0; /* what it must return when the job cancels itself */
    } else {
        assert_true(j->h.id == 0);
    }
}

static void sched_reader(void)
{
    int i = new_pair();
    assert_int_equal(write(W->sv[i][1], "x", 1), 1);
    struct job *j = new_job();
    long f = W->a->failures;
    int rc = loop_add_reader(W->loop, W->sv[i][0], job_reader, j);
    if (outcome(rc, f))
        j->expected = 1;
    else
        assert_int_equal(loop_remove_reader(W->loop, W->sv[i][0]), -ENOENT);
}

static void sched_writer(void)
{
    int i = new_pair();
    struct job *j = new_job();
    long f = W->a->failures;
    int rc = loop_add_writer(W->loop, W->sv[i][0], job_writer, j);
    if (outcome(rc, f))
        j->expected = 1;
    else
        assert_int_equal(loop_remove_writer(W->loop, W->sv[i][0]), -ENOENT);
}

/* Reader and writer on one fd: the writer's removal changes the fd's
 * interest without removing it. */
static void sched_reader_and_writer(void)
{
    int i = new_pair();
    assert_int_equal(write(W->sv[i][1], "x", 1), 1);
    struct job *r = new_job(), *w = new_job();
    long f = W->a->failures;
    if (outcome(loop_add_reader(W->loop, W->sv[i][0], job_reader, r), f))
        r->expected = 1;
    else
        assert_int_equal(loop_remove_reader(W->loop, W->sv[i][0]), -ENOENT);
    f = W->a->failures;
    if (outcome(loop_add_writer(W->loop, W->sv[i][0], job_writer, w), f))
        w->expected = 1;
    else
        assert_int_equal(loop_remove_writer(W->loop, W->sv[i][0]), -ENOENT);
}

/* One handler for both ways (loop_watch_fd): one call, then none. */
static void job_watch(loop_t *loop, int fd, unsigned events, void *arg)
{
    struct job *j = arg;
    j->runs++;
    assert_true((events & (LOOP_READABLE | LOOP_WRITABLE)) == (LOOP_READABLE | LOOP_WRITABLE));
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
    assert_int_equal(loop_watch_fd(loop, fd, 0, NULL, NULL), 0);
}

static void sched_watch(void)
{
    int i = new_pair();
    assert_int_equal(write(W->sv[i][1], "x", 1), 1);
    struct job *j = new_job();
    long f = W->a->failures;
    if (outcome(loop_watch_fd(W->loop, W->sv[i][0], LOOP_READABLE | LOOP_WRITABLE, job_watch, j),
                f))
        j->expected = 1;
    else
        assert_int_equal(loop_remove_reader(W->loop, W->sv[i][0]), -ENOENT);
}

/* A timer armed, then armed again later (loop_arm), and one pushed back
 * (loop_reschedule: the side array of later deadlines grows). */
static void sched_arm_and_push_back(uint64_t t)
{
    struct job *j = new_job();
    j->h = (loop_handle){0};
    long f = W->a->failures;
    if (!outcome(loop_arm(W->loop, &j->h, t, job_cb, j), f)) {
        assert_true(j->h.id == 0);
        return;
    }
    j->expected = 1;
    f = W->a->failures;
    outcome(loop_arm(W->loop, &j->h, 2 * t, job_cb, j), f); /* moves: no new memory */
    f = W->a->failures;
    outcome(loop_reschedule(W->loop, j->h, 3 * t), f); /* a failure only moves it at once */
}

/* loop_run until done: -ENOMEM means "call me again". */
static void run_to_completion(void)
{
    for (int tries = 0;; tries++) {
        long f = W->a->failures;
        int rc = loop_run(W->loop);
        if (outcome(rc, f))
            return;
        assert_true(tries < 3);
    }
}

/* ---- work scheduled from inside callbacks -------------------------------- */

static void chain_job_cb(loop_t *loop, void *arg)
{
    struct job *j = arg;
    j->runs++;
    if (--W->chain_left <= 0)
        return;
    /* The next link; after an injected failure, trying again succeeds. */
    struct job *next = new_job();
    long f = W->a->failures;
    if (!outcome(loop_call_soon(loop, chain_job_cb, next, NULL), f))
        assert_int_equal(loop_call_soon(loop, chain_job_cb, next, NULL), 0);
    next->expected = 1;
}

static void spawner_cb(loop_t *loop, void *arg)
{
    (void)loop;
    struct job *j = arg;
    j->runs++;
    for (int i = 0; i < 1500; i++)
        sched_soon(i % 2);
    for (int i = 0; i < 600; i++)
        sched_timer(i % 4, LOOP_MS(1 + i % 13));
    for (int i = 0; i < 2; i++)
        sched_every(LOOP_MS(7));
    for (int i = 0; i < 40; i++)
        sched_reader();
}

/* ---- the scenario ---------------------------------------------------------- */

static void check_all(void)
{
    for (int i = 0; i < W->njobs; i++) {
        const struct job *j = &W->jobs[i];
        if (j->runs != j->expected)
            fail_msg("job %d ran %d times, expected %d (failing allocation %ld)", i, j->runs,
                     j->expected, current_k);
        if (j->expected == 3 && j->cancel_rc != 0)
            fail_msg("repeating job %d: cancelling itself returned %d", i, j->cancel_rc);
    }
}

enum { PAIRS = 500 };

/*
 * Returns whether the injected failure was reached.  With run == false the
 * loop is freed with all its work still pending.
 */
static bool scenario(long fail_at, bool strict, bool run)
{
    struct counting_alloc a = {.fail_at = fail_at};
    current_k = fail_at;
    struct world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    W = w;
    w->a = &a;
    w->sv_cap = PAIRS;
    w->sv = calloc(PAIRS, sizeof *w->sv);
    assert_non_null(w->sv);
    int fds_before = count_open_fds();

    /* Creation. */
    loop_options o = {.clock = LOOP_CLOCK_VIRTUAL,
                      .strict_poll = strict,
                      .realloc = counting_realloc,
                      .alloc_ctx = &a};
    long f = a.failures;
    int rc = loop_new_with(&w->loop, &o);
    if (!outcome(rc, f)) {
        assert_int_equal(a.live_blocks, 0);
        assert_int_equal(count_open_fds(), fds_before);
        assert_int_equal(loop_new_with(&w->loop, &o), 0);
    }
    assert_true(a.calls >= 1); /* the loop's memory comes from here */

    /* Many timers at one deadline, readable fds: the ready queue has to
     * grow inside loop_run. */
    for (int i = 0; i < 1200; i++)
        sched_timer(i % 2, LOOP_MS(1));
    for (int i = 0; i < 150; i++)
        sched_reader();
    for (int i = 0; i < 30; i++)
        sched_writer();
    for (int i = 0; i < 100; i++)
        sched_reader_and_writer();
    for (int i = 0; i < 40; i++)
        sched_watch();
    for (int i = 0; i < 300; i++)
        sched_arm_and_push_back(LOOP_MS(2 + i % 5));
    if (run) {
        run_to_completion();
        check_all();
    }

    /* Callbacks, cancellations, assorted timers, and work that schedules
     * more work while the loop runs. */
    for (int i = 0; i < 2500; i++)
        sched_soon(i % 3 == 0);
    for (int i = 0; i < 100; i++)
        sched_soon_then_cancel();
    for (int i = 0; i < 900; i++)
        sched_timer(i % 4, LOOP_MS(i % 37));
    for (int i = 0; i < 3; i++)
        sched_every(LOOP_MS(5 + i));
    for (int i = 0; i < 100; i++)
        sched_reader();
    struct job *spawner = new_job();
    f = a.failures;
    if (outcome(loop_call_soon(w->loop, spawner_cb, spawner, NULL), f))
        spawner->expected = 1;
    struct job *chain = new_job();
    w->chain_left = 300;
    f = a.failures;
    if (outcome(loop_call_soon(w->loop, chain_job_cb, chain, NULL), f))
        chain->expected = 1;
    else
        w->chain_left = 0;

    if (run) {
        run_to_completion();
        check_all();
        /* Still usable at the end: one more callback runs. */
        struct job *last = new_job();
        assert_int_equal(loop_call_soon(w->loop, job_cb, last, NULL), 0);
        last->expected = 1;
        assert_int_equal(loop_run(w->loop), 0);
        check_all();
    } else {
        for (int i = 0; i < w->njobs; i++)
            assert_int_equal(w->jobs[i].runs, 0);
    }

    assert_true(a.live_blocks > 0);
    assert_int_equal(loop_free(w->loop), 0);
    assert_int_equal(a.live_blocks, 0);
    assert_int_equal(a.live_bytes, 0);
    assert_int_equal(a.bad_frees, 0);
    for (int i = 0; i < w->nsv; i++)
        close_pair(w->sv[i]);
    assert_int_equal(count_open_fds(), fds_before);
    bool reached = a.failures > 0;
    free(w->sv);
    free(w);
    W = NULL;
    return reached;
}

static void check_every_failure_point(bool strict, bool run)
{
    assert_true(raise_fd_limit(2 * PAIRS + 64) >= 2 * PAIRS + 64);
    /* Without failures first: the scenario itself is sound. */
    assert_false(scenario(0, strict, run));
    long k;
    for (k = 1; scenario(k, strict, run); k++) {
        /* Steady state allocates nothing: a few dozen doublings at most. */
        if (k > 2000)
            fail_msg("more than 2000 allocations in one scenario");
    }
    assert_true(k > 5);
}

static void test_every_allocation_failure_is_enomem_and_leaves_the_loop_usable(void **state)
{
    (void)state;
    check_every_failure_point(false, true);
}

static void test_every_allocation_failure_in_strict_mode_leaves_the_loop_usable(void **state)
{
    (void)state;
    check_every_failure_point(true, true);
}

static void test_free_after_any_allocation_failure_leaks_nothing(void **state)
{
    (void)state;
    check_every_failure_point(false, false);
}

static void test_allocator_gets_the_context_and_frees_everything(void **state)
{
    (void)state;
    struct counting_alloc a = {0};
    struct world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    W = w;
    w->a = &a;
    loop_t *l = NULL;
    loop_options o = {.realloc = counting_realloc, .alloc_ctx = &a};
    assert_int_equal(loop_new_with(&l, &o), 0);
    w->loop = l;
    assert_true(a.calls >= 1);
    assert_true(a.live_blocks >= 1);
    for (int i = 0; i < 5000; i++)
        sched_soon(i % 2);
    assert_int_equal(loop_run(l), 0);
    check_all();
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(a.live_blocks, 0);
    assert_int_equal(a.live_bytes, 0);
    assert_int_equal(a.failures, 0);
    free(w);
    W = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allocator_gets_the_context_and_frees_everything),
        cmocka_unit_test(test_every_allocation_failure_is_enomem_and_leaves_the_loop_usable),
        cmocka_unit_test(test_every_allocation_failure_in_strict_mode_leaves_the_loop_usable),
        cmocka_unit_test(test_free_after_any_allocation_failure_leaks_nothing),
    };
    alarm(300);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
