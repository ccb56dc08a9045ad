/*
 * Freeing a loop with live tasks cancels and unwinds them: a task that
 * never ran does not run its body, a suspended one gets -ECANCELED from
 * its await (and from every later await, without suspending) until it
 * returns; every stack and every byte goes back.
 */
#include "task_testing.h"

#include "counting_alloc.h"
#include "loop_coro.h"

enum how { NEVER_STARTED, ON_FUTURE, ON_SLEEP, ON_SLEEP0, STUBBORN };

struct victim {
    enum how how;
    loop_future *f;
    int body, cleaned;
    int err, err_again, err_sleep, err_spawn;
};

static int nop_task(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)arg;
    (void)result;
    return 0;
}

static int victim(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct victim *v = arg;
    v->body++;
    loop_future_ref(v->f); /* the task's own: it uses f to its end */
    switch (v->how) {
    case ON_FUTURE:
        v->err = loop_task_await(v->f, NULL);
        break;
    case ON_SLEEP:
        v->err = loop_task_sleep(LOOP_SEC(100));
        break;
    case ON_SLEEP0:
        v->err = loop_task_sleep(0);
        break;
    default:
        v->err = loop_task_await(v->f, NULL);
        /* Refuses, and tries to go on: nothing suspends any more. */
        v->err_again = loop_task_await(v->f, NULL);
        v->err_sleep = loop_task_sleep(LOOP_SEC(1));
        v->err_spawn = loop_task_spawn(loop, nop_task, NULL, NULL);
        break;
    }
    v->cleaned++;
    loop_future_unref(v->f);
    return v->err;
}

static void test_freeing_a_loop_cancels_and_unwinds_its_live_tasks(void **state)
{
    (void)state;
    struct counting_alloc a = {0};
    loop_t *l = new_loop_with(
        (loop_options){.clock = LOOP_CLOCK_VIRTUAL, .realloc = counting_realloc, .alloc_ctx = &a});
    loop_future *f = new_future(l);
    struct victim v[5];
    for (int i = 0; i < 5; i++)
        v[i] = (struct victim){.how = (enum how)i, .f = f};
    loop_coro_pool_trim();
    for (int i = 1; i < 5; i++)
        assert_int_equal(loop_task_spawn(l, victim, &v[i], NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0); /* all four suspended */
    assert_int_equal(loop_task_spawn(l, victim, &v[NEVER_STARTED], NULL), 0);
    loop_future_unref(f);

    assert_int_equal(loop_free(l), 0);
    assert_int_equal(v[NEVER_STARTED].body, 0);
    for (int i = 1; i < 5; i++) {
        assert_int_equal(v[i].body, 1);
        assert_int_equal(v[i].cleaned, 1);
        assert_int_equal(v[i].err, -ECANCELED);
    }
    assert_int_equal(v[STUBBORN].err_again, -ECANCELED);
    assert_int_equal(v[STUBBORN].err_sleep, -ECANCELED);
    assert_int_equal(v[STUBBORN].err_spawn, -ECANCELED);
    assert_int_equal(loop_coro_pool_trim(), 5); /* every stack came back */
    assert_int_equal(a.live_blocks, 0);
    assert_int_equal(a.bad_frees, 0);
}

static void test_a_task_still_referenced_at_loop_free_can_be_unrefd_after(void **state)
{
    (void)state;
    struct counting_alloc a = {0};
    loop_t *l = new_loop_with(
        (loop_options){.clock = LOOP_CLOCK_VIRTUAL, .realloc = counting_realloc, .alloc_ctx = &a});
    struct victim v = {.how = ON_SLEEP};
    loop_task *t = spawn(l, victim, &v);
    loop_task *done = spawn(l, nop_task, NULL);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_true(loop_future_done(loop_task_future(done)));
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(v.cleaned, 1);
    assert_int_equal(a.live_blocks, 2); /* the two tasks, and nothing else */
    loop_task_unref(t);
    loop_task_unref(done);
    assert_int_equal(a.live_blocks, 0);
    assert_int_equal(a.bad_frees, 0);
}

/* Tasks spawned and finished over and over reuse their memory: after the
 * first, a spawn allocates nothing the loop's allocator sees, and
 * loop_free returns every byte of the tasks kept for reuse. */
static void test_finished_tasks_are_reused_and_returned_at_loop_free(void **state)
{
    (void)state;
    struct counting_alloc a = {0};
    loop_t *l = new_loop_with((loop_options){
        .clock = LOOP_CLOCK_VIRTUAL, .realloc = counting_realloc, .alloc_ctx = &a});
    assert_int_equal(loop_task_spawn(l, nop_task, NULL, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    long calls = a.calls;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(loop_task_spawn(l, nop_task, NULL, NULL), 0);
        assert_int_equal(loop_run(l), 0);
    }
    assert_int_equal(a.calls, calls);
    loop_task *many[200];
    for (int i = 0; i < 200; i++)
        assert_int_equal(loop_task_spawn(l, nop_task, NULL, &many[i]), 0);
    assert_int_equal(loop_run(l), 0);
    for (int i = 0; i < 200; i++)
        loop_task_unref(many[i]);
    assert_true(a.live_blocks < 200); /* a bounded number is kept */
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(a.live_blocks, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_freeing_a_loop_cancels_and_unwinds_its_live_tasks),
        cmocka_unit_test(test_a_task_still_referenced_at_loop_free_can_be_unrefd_after),
        cmocka_unit_test(test_finished_tasks_are_reused_and_returned_at_loop_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
