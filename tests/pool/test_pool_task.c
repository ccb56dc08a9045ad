/* ctest-layers: task */
/*
 * A task awaits a pool job as it awaits any future: loop_task_await() on
 * the future of loop_pool_submit() suspends the task until the loop has
 * the job's outcome; cancelling the task while the job waits in the
 * queue takes the job off the queue.
 */
#include "pool_testing.h"

#include "fdleak.h"
#include "loop_task.h"

static int add_one_job(void *arg, void **result)
{
    *result = (void *)((intptr_t)arg + 1);
    return 0;
}

static int await_a_job(loop_t *loop, void *arg, void **result)
{
    (void)arg;
    loop_pool *pool = NULL;
    loop_future *f = NULL;
    int err = loop_pool_default(loop, &pool);
    if (!err)
        err = loop_pool_submit(pool, add_one_job, (void *)41, &f);
    if (!err)
        err = loop_task_await(f, result);
    loop_future_unref(f);
    return err;
}

static void test_a_task_awaits_a_pool_job_and_gets_its_result(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_task *t = NULL;
    assert_int_equal(loop_task_spawn(l, await_a_job, NULL, &t), 0);
    void *r = NULL;
    assert_int_equal(loop_run_until_complete(l, loop_task_future(t), &r), 0);
    assert_int_equal((intptr_t)r, 42);
    loop_task_unref(t);
    loop_free(l);
}

struct queued_await {
    loop_pool *pool;
    struct gated *x;
    int awaited;
};

static int await_a_queued_job(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    struct queued_await *q = arg;
    loop_future *f = NULL;
    int err = loop_pool_submit_with(q->pool, gated_job, q->x, 0, gated_drop, &f);
    if (!err)
        q->awaited = err = loop_task_await(f, result);
    loop_future_unref(f);
    return err;
}

static void test_cancelling_a_task_that_awaits_a_queued_job_takes_the_job_off(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 1);
    struct gate g;
    gate_init(&g);
    struct gated busy = {.gate = &g}, x = {0};
    loop_future *fb = submit(p, &busy);
    gate_wait_started(&g, 1);
    struct queued_await q = {.pool = p, .x = &x, .awaited = 1};
    loop_task *t = NULL;
    assert_int_equal(loop_task_spawn(l, await_a_queued_job, &q, &t), 0);
    assert_int_equal(loop_run_once(l, 0), 0); /* the task submits and awaits */
    assert_int_equal(pool_stats(p).queued, 1);
    assert_int_equal(loop_task_cancel(t), 1);
    assert_int_equal(loop_run_until_complete(l, loop_task_future(t), NULL), -ECANCELED);
    assert_int_equal(q.awaited, -ECANCELED);
    assert_int_equal(pool_stats(p).queued, 0);
    assert_int_equal(atomic_load(&x.dropped), 1);
    gate_open(&g);
    assert_int_equal(loop_run_until_complete(l, fb, NULL), 0);
    assert_int_equal(atomic_load(&x.ran), 0);
    loop_future_unref(fb);
    loop_task_unref(t);
    loop_pool_free(p);
    loop_free(l);
    gate_destroy(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_task_awaits_a_pool_job_and_gets_its_result),
        cmocka_unit_test(test_cancelling_a_task_that_awaits_a_queued_job_takes_the_job_off),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
