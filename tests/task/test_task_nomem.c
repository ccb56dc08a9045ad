/*
 * Allocation failure anywhere in a task program: each allocation of a
 * program of spawns, sleeps, awaits, a gather and a wait_for that times
 * out is failed in turn; the
 * calls that fail say -ENOMEM, every task still ends (the layer retries
 * what it cannot fail: completing a future), the loop is freed, and
 * every byte comes back.
 */
#include "task_testing.h"

#include "counting_alloc.h"

static void complete_later(loop_t *loop, void *arg)
{
    if (loop_future_set_result(arg, NULL) == -ENOMEM) /* retry, as the layer does */
        assert_int_equal(loop_call_soon(loop, complete_later, arg, NULL), 0);
}

static int child(loop_t *loop, void *arg, void **result)
{
    (void)result;
    if (arg) {
        loop_future *f;
        int err = loop_future_new(loop, &f);
        if (err)
            return err;
        err = loop_call_later(loop, LOOP_MS(2), complete_later, f, NULL);
        if (!err)
            err = loop_task_await(f, NULL);
        loop_future_unref(f);
        return err;
    }
    int err = loop_task_sleep(LOOP_MS(1));
    return err ? err : loop_task_sleep(0);
}

static int program(loop_t *loop, void *arg, void **result)
{
    (void)result;
    int *ended = arg;
    loop_task *kids[2] = {0};
    int err = 0;
    for (int i = 0; i < 2 && !err; i++)
        err = loop_task_spawn(loop, child, i ? (void *)loop : NULL, &kids[i]);
    if (!err) {
        loop_future *fs[] = {loop_task_future(kids[0]), loop_task_future(kids[1])};
        err = loop_task_gather(fs, 2);
    }
    if (!err)
        err = loop_task_sleep(0);
    loop_task *slow = NULL;
    if (!err)
        err = loop_task_spawn(loop, child, NULL, &slow);
    if (!err) { /* times out after 0.5 ms: its child sleeps 1 ms */
        err = loop_task_wait_for(loop_task_future(slow), LOOP_MS(1) / 2, NULL);
        assert_true(err == -ETIMEDOUT || err == -ENOMEM);
        err = err == -ETIMEDOUT ? 0 : err;
    }
    loop_task_unref(slow);
    for (int i = 0; i < 2; i++)
        loop_task_unref(kids[i]);
    ++*ended;
    return err;
}

static void test_each_failed_allocation_is_enomem_and_nothing_leaks(void **state)
{
    (void)state;
    long at = 1;
    for (;; at++) {
        struct counting_alloc a = {0};
        loop_t *l = new_loop_with((loop_options){
            .clock = LOOP_CLOCK_VIRTUAL, .realloc = counting_realloc, .alloc_ctx = &a});
        a.fail_at = a.calls + at;
        int ended = 0;
        loop_task *t = NULL;
        int err = loop_task_spawn(l, program, &ended, &t);
        if (err == 0) {
            for (int tries = 0; tries < 10 && (err = loop_run(l)) == -ENOMEM; tries++)
                ;
            assert_int_equal(err, 0);
            int outcome = loop_future_result(loop_task_future(t), NULL);
            /* One failure never stalls a task: each ends, the main one too. */
            assert_true(outcome == 0 || outcome == -ENOMEM);
            assert_int_equal(ended, 1);
            loop_task_unref(t);
        } else {
            assert_int_equal(err, -ENOMEM);
        }
        assert_int_equal(loop_free(l), 0);
        assert_int_equal(a.live_blocks, 0);
        assert_int_equal(a.bad_frees, 0);
        if (a.failures == 0)
            break; /* past the last allocation: the program ran whole */
        assert_true(at < 1000);
    }
    assert_true(at > 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_failed_allocation_is_enomem_and_nothing_leaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
