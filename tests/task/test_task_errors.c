/*
 * Bad input and failures: NULLs are -EINVAL, task calls outside a task
 * -EPERM, a future of another loop -EINVAL, awaiting oneself -EDEADLK,
 * and spawn's -ENOMEM leaves nothing scheduled and the loop usable.
 */
#include "task_testing.h"

#include "counting_alloc.h"
#include "loop_coro.h"

static int nop_task(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)arg;
    (void)result;
    return 0;
}

static void test_null_arguments_are_einval(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    loop_task *t = (loop_task *)l;
    assert_int_equal(loop_task_spawn(NULL, nop_task, NULL, &t), -EINVAL);
    assert_null(t);
    assert_int_equal(loop_task_spawn(l, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(loop_task_cancel(NULL), -EINVAL);
    assert_int_equal(loop_task_await(NULL, NULL), -EINVAL);
    assert_null(loop_task_future(NULL));
    loop_task_ref(NULL);
    loop_task_unref(NULL);
    assert_int_equal(loop_run(l), 0); /* nothing was scheduled */
    assert_int_equal(loop_free(l), 0);
}

static void test_task_calls_outside_a_task_are_eperm(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    loop_future *f = new_future(l);
    assert_int_equal(loop_task_sleep(0), -EPERM);
    assert_int_equal(loop_task_sleep(LOOP_MS(1)), -EPERM);
    assert_int_equal(loop_task_await(f, NULL), -EPERM);
    assert_int_equal(loop_run(l), 0);
    assert_false(loop_future_done(f));
    loop_future_unref(f);
    assert_int_equal(loop_free(l), 0);
}

/* Inside a plain coroutine run by a task, the task's calls are -EPERM too:
 * suspending would switch the wrong stack. */
static void *nested(void *arg, void *first)
{
    (void)first;
    *(int *)arg = loop_task_sleep(0);
    return NULL;
}

static int run_nested(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    loop_coro *c;
    assert_int_equal(loop_coro_new(&c, nested, arg, 0), 0);
    assert_int_equal(loop_coro_resume(c, NULL, NULL), 0);
    assert_int_equal(loop_coro_free(c), 0);
    return 0;
}

static void test_task_calls_from_a_coroutine_inside_a_task_are_eperm(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int got = 0;
    loop_task *t = spawn(l, run_nested, &got);
    assert_int_equal(run_task(l, t, NULL), 0);
    assert_int_equal(got, -EPERM);
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
}

struct awaits {
    loop_future *other_loops;
    int other, self, null;
};

static int await_bad(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct awaits *a = arg;
    a->other = loop_task_await(a->other_loops, NULL);
    a->self = loop_task_await(loop_task_future(loop_task_current(loop)), NULL);
    a->null = loop_task_await(NULL, NULL);
    return 0;
}

static void test_awaiting_another_loops_future_is_einval_and_oneself_edeadlk(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false), *other = new_virtual_loop(false);
    struct awaits a = {.other_loops = new_future(other)};
    loop_task *t = spawn(l, await_bad, &a);
    assert_int_equal(run_task(l, t, NULL), 0);
    assert_int_equal(a.other, -EINVAL);
    assert_int_equal(a.self, -EDEADLK);
    assert_int_equal(a.null, -EINVAL);
    loop_task_unref(t);
    loop_future_unref(a.other_loops);
    assert_int_equal(loop_free(other), 0);
    assert_int_equal(loop_free(l), 0);
}

static int count_run(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    ++*(int *)arg;
    return 0;
}

static void test_spawn_out_of_memory_is_enomem_and_the_loop_stays_usable(void **state)
{
    (void)state;
    /* Fail each allocation of a first spawn in turn (the future, the
     * registries, the task, the ready queue's growth), then let it succeed. */
    int failures = 0;
    for (long at = 1;; at++) {
        struct counting_alloc a = {0};
        loop_t *l = new_loop_with((loop_options){
            .clock = LOOP_CLOCK_VIRTUAL, .realloc = counting_realloc, .alloc_ctx = &a});
        a.fail_at = a.calls + at;
        int runs = 0;
        loop_task *t = (loop_task *)l;
        int err = loop_task_spawn(l, count_run, &runs, &t);
        if (err == 0) {
            assert_int_equal(run_task(l, t, NULL), 0);
            assert_int_equal(runs, 1);
            loop_task_unref(t);
            assert_int_equal(loop_free(l), 0);
            assert_int_equal(a.live_blocks, 0);
            break;
        }
        failures++;
        assert_int_equal(err, -ENOMEM);
        assert_null(t);
        assert_int_equal(loop_run(l), 0); /* nothing was left scheduled */
        assert_int_equal(runs, 0);
        /* Usable: the next spawn works. */
        t = spawn(l, count_run, &runs);
        assert_int_equal(run_task(l, t, NULL), 0);
        assert_int_equal(runs, 1);
        loop_task_unref(t);
        assert_int_equal(loop_free(l), 0);
        assert_int_equal(a.live_blocks, 0);
        assert_int_equal(a.bad_frees, 0);
    }
    assert_true(failures >= 3);
}

static void nop_done(loop_future *f, void *arg)
{
    (void)f;
    (void)arg;
}

struct starved {
    struct counting_alloc *a;
    loop_future *f;
    int err_sleep, err_await, err_after;
};

static int starve_then_go_on(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    struct starved *s = arg;
    counting_alloc_fail_after(s->a, 0);
    s->err_sleep = loop_task_sleep(LOOP_MS(1));
    s->err_await = loop_task_await(s->f, NULL); /* its second callback needs memory */
    counting_alloc_never_fail(s->a);
    s->err_after = loop_task_sleep(LOOP_MS(1));
    return 0;
}

static void test_out_of_memory_inside_a_task_is_enomem_and_the_task_goes_on(void **state)
{
    (void)state;
    struct counting_alloc a = {0};
    loop_t *l = new_loop_with(
        (loop_options){.clock = LOOP_CLOCK_VIRTUAL, .realloc = counting_realloc, .alloc_ctx = &a});
    struct starved s = {.a = &a, .f = new_future(l)};
    /* f already has a callback, so one more must grow its list. */
    assert_int_equal(loop_future_add_done(s.f, nop_done, NULL), 0);
    loop_task *t = spawn(l, starve_then_go_on, &s);
    assert_int_equal(run_task(l, t, NULL), 0);
    assert_int_equal(s.err_sleep, -ENOMEM);
    assert_int_equal(s.err_await, -ENOMEM);
    assert_int_equal(s.err_after, 0);
    assert_u64_eq(loop_now(l), LOOP_MS(1));
    assert_false(loop_future_done(s.f));
    loop_task_unref(t);
    loop_future_unref(s.f);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(a.live_blocks, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_arguments_are_einval),
        cmocka_unit_test(test_task_calls_outside_a_task_are_eperm),
        cmocka_unit_test(test_task_calls_from_a_coroutine_inside_a_task_are_eperm),
        cmocka_unit_test(test_awaiting_another_loops_future_is_einval_and_oneself_edeadlk),
        cmocka_unit_test(test_spawn_out_of_memory_is_enomem_and_the_loop_stays_usable),
        cmocka_unit_test(test_out_of_memory_inside_a_task_is_enomem_and_the_task_goes_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
