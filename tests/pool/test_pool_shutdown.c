/*
 * Cancelling jobs, shutting a pool down (waiting or cancelling), and
 * freeing it: idle threads joined, a job that blocks forever let go of,
 * and a pool the program forgot freed by loop_free().
 */
#include "pool_testing.h"

#include "fdleak.h"
#include "watchdog.h"

static void test_cancelling_a_queued_job_takes_it_off_the_queue_and_it_never_runs(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 1);
    struct gate g;
    gate_init(&g);
    struct gated a = {.gate = &g}, b = {.result = &b};
    loop_future *fa = submit(p, &a), *fb = submit(p, &b);
    gate_wait_started(&g, 1);
    assert_int_equal(pool_stats(p).queued, 1);
    assert_int_equal(loop_future_cancel(fb), 1);
    assert_int_equal(loop_future_state(fb), LOOP_FUTURE_CANCELLED);
    loop_pool_stats_t st = pool_stats(p);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.outstanding, 1); /* its room in the queue is free again */
    assert_int_equal(atomic_load(&b.dropped), 1);
    assert_null(b.dropped_result);
    gate_open(&g);
    assert_int_equal(loop_run_until_complete(l, fa, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(atomic_load(&b.ran), 0);
    assert_int_equal(atomic_load(&b.dropped), 1);
    loop_future_unref(fa);
    loop_future_unref(fb);
    loop_pool_free(p);
    loop_free(l);
    gate_destroy(&g);
}

static void test_cancelling_a_running_job_cancels_its_future_and_drops_its_result(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 1);
    struct gate g;
    gate_init(&g);
    struct gated a = {.gate = &g, .result = &a};
    loop_future *fa = submit(p, &a);
    gate_wait_started(&g, 1);
    assert_int_equal(loop_future_cancel(fa), 1);
    assert_int_equal(loop_future_state(fa), LOOP_FUTURE_CANCELLED); /* at once */
    assert_int_equal(loop_future_cancel(fa), 0);
    assert_int_equal(atomic_load(&a.dropped), 0); /* it still runs */
    gate_open(&g);
    loop_future *done = NULL;
    assert_int_equal(loop_pool_shutdown(p, LOOP_POOL_WAIT, &done), 0);
    assert_int_equal(loop_run_until_complete(l, done, NULL), 0);
    assert_int_equal(atomic_load(&a.dropped), 1);
    assert_ptr_equal(a.dropped_result, &a);
    loop_future_unref(done);
    loop_future_unref(fa);
    loop_pool_free(p);
    loop_free(l);
    gate_destroy(&g);
}

static void test_shutdown_wait_runs_every_job_and_refuses_new_ones(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 1);
    struct gate g;
    gate_init(&g);
    struct gated x[3];
    loop_future *fs[3];
    for (int i = 0; i < 3; i++) {
        x[i] = (struct gated){.gate = &g, .result = &x[i]};
        fs[i] = submit(p, &x[i]);
    }
    gate_wait_started(&g, 1);
    loop_future *done = NULL, *again = NULL, *f = (loop_future *)&f;
    assert_int_equal(loop_pool_shutdown(p, LOOP_POOL_WAIT, &done), 0);
    assert_int_equal(loop_pool_submit(p, gated_job, &x[0], &f), -ESHUTDOWN);
    assert_null(f);
    assert_false(loop_future_done(done));
    assert_int_equal(loop_pool_shutdown(p, LOOP_POOL_WAIT, &again), 0);
    assert_ptr_equal(again, done);
    gate_open(&g);
    assert_int_equal(loop_run_until_complete(l, done, NULL), 0);
    for (int i = 0; i < 3; i++) {
        void *r = NULL;
        assert_int_equal(loop_future_result(fs[i], &r), 0);
        assert_ptr_equal(r, &x[i]);
        assert_int_equal(atomic_load(&x[i].dropped), 0);
        loop_future_unref(fs[i]);
    }
    loop_future_unref(done);
    loop_future_unref(again);
    loop_pool_free(p);
    loop_free(l);
    gate_destroy(&g);
}

static void test_shutdown_cancel_cancels_the_jobs_not_started_at_once(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 1);
    struct gate g;
    gate_init(&g);
    struct gated x[3];
    loop_future *fs[3];
    for (int i = 0; i < 3; i++) {
        x[i] = (struct gated){.gate = &g, .result = &x[i]};
        fs[i] = submit(p, &x[i]);
    }
    gate_wait_started(&g, 1);
    loop_future *done = NULL;
    assert_int_equal(loop_pool_shutdown(p, LOOP_POOL_CANCEL, &done), 0);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(loop_future_state(fs[i]), LOOP_FUTURE_CANCELLED);
        assert_int_equal(atomic_load(&x[i].dropped), 1);
        assert_null(x[i].dropped_result);
    }
    assert_false(loop_future_done(fs[0])); /* the running one finishes */
    assert_false(loop_future_done(done));
    gate_open(&g);
    assert_int_equal(loop_run_until_complete(l, done, NULL), 0);
    void *r = NULL;
    assert_int_equal(loop_future_result(fs[0], &r), 0);
    assert_ptr_equal(r, &x[0]);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&x[i].ran), i == 0);
        loop_future_unref(fs[i]);
    }
    loop_future_unref(done);
    loop_pool_free(p);
    loop_free(l);
    gate_destroy(&g);
}

static void test_shutdown_cancel_tells_done_of_called_jobs_not_started(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 1);
    struct gate g;
    gate_init(&g);
    struct called c[3] = {{0}};
    struct gated x[3];
    for (int i = 0; i < 3; i++) {
        x[i] = (struct gated){.gate = &g, .result = &x[i], .called = &c[i]};
        assert_int_equal(loop_pool_call(p, gated_job, &x[i], 0, called_done), 0);
    }
    gate_wait_started(&g, 1);
    assert_int_equal(loop_pool_shutdown(p, LOOP_POOL_CANCEL, NULL), 0);
    for (int i = 1; i < 3; i++) { /* at once, on the loop thread */
        assert_int_equal(atomic_load(&c[i].calls), 1);
        assert_int_equal(c[i].status, -ECANCELED);
        assert_null(c[i].result);
    }
    assert_int_equal(atomic_load(&c[0].calls), 0); /* the running one finishes */
    gate_open(&g);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(atomic_load(&c[0].calls), 1);
    assert_int_equal(c[0].status, 0);
    assert_ptr_equal(c[0].result, &x[0]);
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&x[i].ran), i == 0);
    loop_pool_free(p);
    loop_free(l);
    gate_destroy(&g);
}

static void test_shutdown_of_an_idle_pool_is_done_at_once(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 1);
    loop_future *done = NULL;
    assert_int_equal(loop_pool_shutdown(p, LOOP_POOL_CANCEL, &done), 0);
    assert_true(loop_future_done(done));
    loop_future_unref(done);
    loop_pool_free(p);
    loop_free(l);
}

static void test_free_joins_every_thread(void **s)
{
    (void)s;
    int base = process_threads();
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 3);
    struct gate g;
    gate_init(&g);
    struct gated x[3];
    loop_future *fs[3];
    for (int i = 0; i < 3; i++) {
        x[i] = (struct gated){.gate = &g};
        fs[i] = submit(p, &x[i]);
    }
    gate_wait_started(&g, 3);
    assert_int_equal(process_threads(), base + 3);
    gate_open(&g);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(loop_run_until_complete(l, fs[i], NULL), 0);
        loop_future_unref(fs[i]);
    }
    assert_int_equal(loop_pool_free(p), 0);
    assert_int_equal(process_threads(), base); /* joined, not left to end later */
    loop_free(l);
    gate_destroy(&g);
}

/* A thread that has just finished a job looks for more for a while before
 * it sleeps: a free at that moment must still end it. */
static void test_free_right_after_a_job_ends_a_thread_still_looking_for_work(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    for (int round = 0; round < 200; round++) {
        loop_pool *p = new_pool(l, 2);
        struct gated x = {0};
        loop_future *f = submit(p, &x);
        assert_int_equal(loop_run_until_complete(l, f, NULL), 0);
        loop_future_unref(f);
        assert_int_equal(loop_pool_free(p), 0);
    }
    loop_free(l);
}

static void test_free_lets_go_of_a_job_that_blocks_and_its_thread_cleans_up_alone(void **s)
{
    (void)s;
    int base = process_threads();
    static struct locked_alloc la = {.mu = PTHREAD_MUTEX_INITIALIZER};
    loop_t *l = new_loop_with((loop_options){.realloc = locked_realloc, .alloc_ctx = &la});
    loop_pool *p = new_pool(l, 2);
    struct gate g;
    gate_init(&g);
    struct gated stuck = {.gate = &g, .result = &stuck}, queued = {0};
    loop_future *f = submit(p, &stuck);
    gate_wait_started(&g, 1);
    loop_future *q = submit(p, &queued); /* a second thread takes it, or it waits */
    assert_int_equal(loop_run_until_complete(l, q, NULL), 0);
    assert_int_equal(loop_pool_free(p), 0); /* returns though the job blocks */
    assert_int_equal(loop_future_state(f), LOOP_FUTURE_CANCELLED);
    assert_int_equal(process_threads(), base + 1); /* the idle one was joined */
    loop_future_unref(f);
    loop_future_unref(q);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(locked_live_blocks(&la), 1); /* the thread's own record */
    gate_open(&g);
    wait_until(threads_back_to, &base, "the blocked thread to end");
    assert_int_equal(locked_live_blocks(&la), 0);
    assert_int_equal(atomic_load(&stuck.dropped), 1);
    assert_ptr_equal(stuck.dropped_result, &stuck);
    assert_int_equal(la.a.bad_frees, 0);
    gate_destroy(&g);
}

static void test_free_lets_go_of_a_called_job_and_done_runs_on_its_thread(void **s)
{
    (void)s;
    int base = process_threads();
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 1);
    struct gate g;
    gate_init(&g);
    struct called c = {0};
    struct gated stuck = {.gate = &g, .result = &stuck, .called = &c};
    assert_int_equal(loop_pool_call(p, gated_job, &stuck, 0, called_done), 0);
    gate_wait_started(&g, 1);
    assert_int_equal(loop_pool_free(p), 0);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(atomic_load(&c.calls), 0); /* not while the job runs */
    gate_open(&g);
    wait_until(threads_back_to, &base, "the blocked thread to end");
    assert_int_equal(atomic_load(&c.calls), 1);
    assert_int_equal(c.status, 0);
    assert_ptr_equal(c.result, &stuck);
    assert_false(pthread_equal(c.thread, pthread_self())); /* on the job's thread */
    gate_destroy(&g);
}

static void test_loop_free_frees_a_pool_left_alive_and_drops_every_outcome(void **s)
{
    (void)s;
    int base = process_threads();
    struct counting_alloc a = {0};
    loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
    loop_pool *p = new_pool(l, 1);
    struct gated x[3] = {{.result = &x[0]}, {.result = &x[1]}, {.result = &x[2]}};
    loop_future *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = submit(p, &x[i]);
    loop_future *done = NULL;
    assert_int_equal(loop_pool_shutdown(p, LOOP_POOL_WAIT, &done), 0);
    wait_until(pool_all_idle, p, "the jobs to finish");
    for (int i = 0; i < 3; i++)
        loop_future_unref(fs[i]);
    loop_future_unref(done);
    assert_int_equal(loop_free(l), 0);
    for (int i = 0; i < 3; i++) { /* never delivered: each went to drop */
        assert_int_equal(atomic_load(&x[i].dropped), 1);
        assert_ptr_equal(x[i].dropped_result, &x[i]);
    }
    assert_int_equal(a.live_blocks, 0);
    assert_int_equal(a.bad_frees, 0);
    assert_int_equal(process_threads(), base);
}

static void test_freeing_the_default_pool_makes_the_next_call_make_a_new_one(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = NULL, *q = NULL;
    assert_int_equal(loop_pool_default(l, &p), 0);
    assert_int_equal(loop_pool_shutdown(p, LOOP_POOL_WAIT, NULL), 0);
    assert_int_equal(loop_pool_default(l, &q), 0);
    assert_ptr_equal(p, q); /* shut down, it is still the default */
    struct gated x = {0};
    assert_int_equal(loop_pool_submit(q, gated_job, &x, NULL), -ESHUTDOWN);
    assert_int_equal(loop_pool_free(p), 0);
    assert_int_equal(loop_pool_default(l, &q), 0);
    loop_future *f = submit(q, &x);
    assert_int_equal(loop_run_until_complete(l, f, NULL), 0);
    loop_future_unref(f);
    loop_free(l);
}

int main(void)
{
    /* A free that cannot join a thread hangs: make that a failure. */
    watchdog_start("a pool to stop its threads", 4 * POOL_TEST_DEADLINE_S);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancelling_a_queued_job_takes_it_off_the_queue_and_it_never_runs),
        cmocka_unit_test(test_cancelling_a_running_job_cancels_its_future_and_drops_its_result),
        cmocka_unit_test(test_shutdown_wait_runs_every_job_and_refuses_new_ones),
        cmocka_unit_test(test_shutdown_cancel_cancels_the_jobs_not_started_at_once),
        cmocka_unit_test(test_shutdown_cancel_tells_done_of_called_jobs_not_started),
        cmocka_unit_test(test_shutdown_of_an_idle_pool_is_done_at_once),
        cmocka_unit_test(test_free_joins_every_thread),
        cmocka_unit_test(test_free_right_after_a_job_ends_a_thread_still_looking_for_work),
        cmocka_unit_test(test_free_lets_go_of_a_job_that_blocks_and_its_thread_cleans_up_alone),
        cmocka_unit_test(test_free_lets_go_of_a_called_job_and_done_runs_on_its_thread),
        cmocka_unit_test(test_loop_free_frees_a_pool_left_alive_and_drops_every_outcome),
        cmocka_unit_test(test_freeing_the_default_pool_makes_the_next_call_make_a_new_one),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
