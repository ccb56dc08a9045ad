/*
 * Allocation failure anywhere in a pool program: each allocation of a
 * program that makes a pool (and the default one), submits jobs of every
 * kind, cancels one, shuts down and frees, is failed in turn.  The call
 * that fails says -ENOMEM and changes nothing; every job that was
 * accepted ends exactly once (its future gets its outcome or is
 * cancelled, or its drop runs); the pool and the loop are freed; every
 * byte comes back.  The pool's threads never allocate (the allocator
 * here is not thread-safe, and TSan would say so).
 */
#include "pool_testing.h"

#include "fdleak.h"
#include "watchdog.h"

#define NJOBS 5

struct program {
    struct gate g;
    struct gated x[NJOBS];
    struct called called; /* job 4: loop_pool_call */
    loop_future *f[NJOBS];
    bool accepted[NJOBS];
    loop_future *done;
    int callbacks;
};

static void count_done(loop_future *f, void *arg)
{
    (void)f;
    ++*(int *)arg;
}

static bool all_done(loop_pool *p, const struct program *pr)
{
    loop_pool_stats_t st = pool_stats(p);
    return st.outstanding == 0 && (!pr->done || loop_future_done(pr->done));
}

static void submit_all(loop_pool *p, struct program *pr)
{
    static const unsigned flags[NJOBS] = {0, LOOP_POOL_SLOW, 0, 0, 0};
    for (int i = 0; i < NJOBS; i++) {
        pr->x[i] = (struct gated){.gate = i == 0 ? &pr->g : NULL, .result = &pr->x[i]};
        loop_future **out = i >= 2 && i != 3 ? NULL : &pr->f[i]; /* 2: drop only; 4: done */
        int err;
        if (i == 4) {
            pr->x[i].called = &pr->called;
            err = loop_pool_call(p, gated_job, &pr->x[i], 0, called_done);
        } else {
            err = loop_pool_submit_with(p, gated_job, &pr->x[i], flags[i], gated_drop, out);
        }
        assert_true(err == 0 || err == -ENOMEM);
        pr->accepted[i] = err == 0;
        if (out && err == 0) /* completing it then queues a callback: that may fail too */
            assert_true(loop_future_add_done(pr->f[i], count_done, &pr->callbacks) != -EINVAL);
        if (i == 0 && err == 0)
            gate_wait_started(&pr->g, 1); /* so that job 3 waits in the queue */
    }
    if (pr->accepted[3]) {
        int cancelled = loop_future_cancel(pr->f[3]);
        if (cancelled == -ENOMEM) /* its callback could not be queued: nothing changed */
            cancelled = loop_future_cancel(pr->f[3]);
        assert_int_equal(cancelled, 1);
    }
    gate_open(&pr->g);
}

/* Each accepted job ended exactly once, one way or the other. */
static void check_each_job_ended_once(struct program *pr)
{
    for (int i = 0; i < NJOBS; i++) {
        struct gated *x = &pr->x[i];
        if (!pr->accepted[i]) {
            assert_int_equal(atomic_load(&x->ran) + atomic_load(&x->dropped), 0);
            assert_true(!x->called || atomic_load(&x->called->calls) == 0);
            continue;
        }
        if (x->called) {
            assert_int_equal(atomic_load(&x->called->calls), 1);
            assert_int_equal(x->called->status, 0);
            assert_int_equal(atomic_load(&x->dropped), 0);
            continue;
        }
        if (!pr->f[i]) {
            assert_int_equal(atomic_load(&x->dropped), 1);
            continue;
        }
        void *r = NULL;
        int outcome = loop_future_result(pr->f[i], &r);
        if (outcome == 0) {
            assert_ptr_equal(r, x);
            assert_int_equal(atomic_load(&x->dropped), 0);
        } else {
            assert_int_equal(outcome, -ECANCELED);
            assert_int_equal(atomic_load(&x->dropped), 1);
        }
        loop_future_unref(pr->f[i]);
    }
}

static void run_program(loop_t *l, struct program *pr)
{
    loop_pool *p = NULL, *d = NULL;
    loop_pool_options o = {.threads = 1};
    int err = loop_pool_new(l, &o, &p);
    assert_true(err == 0 || err == -ENOMEM);
    if (err)
        return;
    err = loop_pool_default(l, &d); /* made and left for loop_free() */
    assert_true(err == 0 || err == -ENOMEM);
    submit_all(p, pr);
    err = loop_pool_shutdown(p, LOOP_POOL_WAIT, &pr->done);
    assert_true(err == 0 || err == -ENOMEM);
    if (pr->done)
        assert_true(loop_future_add_done(pr->done, count_done, &pr->callbacks) != -EINVAL);
    for (int tries = 0; !all_done(p, pr); tries++) {
        assert_true(tries < 100);
        err = loop_run(l);
        assert_true(err == 0 || err == -ENOMEM);
    }
    check_each_job_ended_once(pr);
    loop_future_unref(pr->done);
    assert_int_equal(loop_pool_free(p), 0);
}

static void test_each_failed_allocation_is_enomem_and_nothing_leaks(void **state)
{
    (void)state;
    long at = 1;
    for (;; at++) {
        struct counting_alloc a = {0};
        loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
        a.fail_at = a.calls + at;
        static struct program pr;
        memset(&pr, 0, sizeof(pr));
        gate_init(&pr.g);
        run_program(l, &pr);
        assert_int_equal(loop_free(l), 0);
        gate_destroy(&pr.g);
        assert_int_equal(a.live_blocks, 0);
        assert_int_equal(a.bad_frees, 0);
        if (a.failures == 0)
            break; /* past the last allocation: the program ran whole */
        assert_true(at < 1000);
    }
    assert_true(at > 10);
}

/*
 * Completing a future fails when its done callbacks cannot be queued.  To
 * make that happen exactly when the pool's reader runs, a callback that
 * runs just before it in the same iteration fills the loop's ready ring to
 * the brim with allocations failing.  The reader's own entry leaves one
 * slot as it runs, which the first completion takes; the second one fails.
 * Then allocations succeed again.
 */
struct filler {
    struct counting_alloc *a;
    int queued;
};

static void fill_the_ring(loop_t *loop, void *arg)
{
    struct filler *fl = arg;
    counting_alloc_fail_after(fl->a, 0);
    while (loop_call_soon(loop, nop_cb, NULL, NULL) == 0)
        fl->queued++;
}

static void run_when_ring_is_full(loop_t *l, struct counting_alloc *a, loop_pool *p)
{
    wait_until(pool_all_idle, p, "the jobs to finish");
    wait_loop_readable(l); /* the eventfd was written */
    struct filler fl = {.a = a};
    assert_int_equal(loop_call_soon(l, fill_the_ring, &fl, NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0); /* fill, then the reader */
    assert_true(a->failures > 0);
    counting_alloc_never_fail(a);
}

static loop_t *strict_counted_loop(struct counting_alloc *a)
{
    return new_loop_with(
        (loop_options){.strict_poll = true, .realloc = counting_realloc, .alloc_ctx = a});
}

static void test_a_future_that_cannot_be_completed_is_completed_an_iteration_later(void **s)
{
    (void)s;
    struct counting_alloc a = {0};
    loop_t *l = strict_counted_loop(&a);
    loop_pool *p = new_pool(l, 1);
    struct gated x[2] = {{.result = &x[0]}, {.result = &x[1]}};
    int callbacks = 0;
    loop_future *f[2];
    for (int i = 0; i < 2; i++) {
        f[i] = submit(p, &x[i]);
        assert_int_equal(loop_future_add_done(f[i], count_done, &callbacks), 0);
    }
    run_when_ring_is_full(l, &a, p);
    assert_true(loop_future_done(f[0]));
    assert_false(loop_future_done(f[1])); /* could not complete it: it waits */
    assert_int_equal(pool_stats(p).outstanding, 1);
    assert_int_equal(loop_run_until_complete(l, f[1], NULL), 0); /* with no new wake-up */
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(callbacks, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(atomic_load(&x[i].dropped), 0);
        loop_future_unref(f[i]);
    }
    loop_pool_free(p);
    loop_free(l);
    assert_int_equal(a.live_blocks, 0);
}

static void test_a_shutdown_future_that_cannot_be_completed_is_completed_later(void **s)
{
    (void)s;
    struct counting_alloc a = {0};
    loop_t *l = strict_counted_loop(&a);
    loop_pool *p = new_pool(l, 1);
    struct gated x = {.result = &x};
    int callbacks = 0;
    loop_future *f = submit(p, &x), *done = NULL;
    assert_int_equal(loop_future_add_done(f, count_done, &callbacks), 0);
    assert_int_equal(loop_pool_shutdown(p, LOOP_POOL_WAIT, &done), 0);
    assert_int_equal(loop_future_add_done(done, count_done, &callbacks), 0);
    run_when_ring_is_full(l, &a, p);
    assert_true(loop_future_done(f));
    assert_false(loop_future_done(done));
    assert_int_equal(loop_run_until_complete(l, done, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(callbacks, 2);
    loop_future_unref(f);
    loop_future_unref(done);
    loop_pool_free(p);
    loop_free(l);
    assert_int_equal(a.live_blocks, 0);
}

int main(void)
{
    /* A future never completed would hang its test: make that a failure. */
    watchdog_start("the pool's futures to complete", 4 * POOL_TEST_DEADLINE_S);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_failed_allocation_is_enomem_and_nothing_leaks),
        cmocka_unit_test(test_a_future_that_cannot_be_completed_is_completed_an_iteration_later),
        cmocka_unit_test(test_a_shutdown_future_that_cannot_be_completed_is_completed_later),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
