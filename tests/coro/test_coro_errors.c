/*
 * Bad input to the coroutine API is a documented negative errno, never a
 * crash, and changes nothing: NULLs, resuming a done or running coroutine,
 * yielding outside a coroutine, freeing a running one, absurd stack sizes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "loop_coro.h"

#define V(n) ((void *)(uintptr_t)(n))

static int runs; /* how many times an entry started */

static void *yield_twice(void *arg, void *first)
{
    (void)arg;
    (void)first;
    runs++;
    loop_coro_yield(V(1), NULL);
    loop_coro_yield(V(2), NULL);
    return V(3);
}

static void *return_at_once(void *arg, void *first)
{
    (void)arg;
    runs++;
    return first;
}

static void new_with_null_out_or_entry_is_einval(void **state)
{
    (void)state;
    loop_coro *c = V(0x1234);

    assert_int_equal(loop_coro_new(NULL, yield_twice, NULL, 0), -EINVAL);
    assert_int_equal(loop_coro_new(&c, NULL, NULL, 0), -EINVAL);
    assert_ptr_equal(c, V(0x1234));
}

static void new_with_a_stack_above_the_max_is_einval(void **state)
{
    (void)state;
    loop_coro *c = V(0x1234);

    assert_int_equal(loop_coro_new(&c, yield_twice, NULL, LOOP_CORO_STACK_MAX + 1), -EINVAL);
    assert_int_equal(loop_coro_new(&c, yield_twice, NULL, SIZE_MAX), -EINVAL);
    assert_ptr_equal(c, V(0x1234));
}

static void resume_of_null_is_einval(void **state)
{
    (void)state;
    void *out = V(9);

    assert_int_equal(loop_coro_resume(NULL, NULL, &out), -EINVAL);
    assert_ptr_equal(out, V(9));
}

static void resume_of_a_done_coroutine_is_einval_and_runs_nothing(void **state)
{
    (void)state;
    loop_coro *c;
    void *out = NULL;

    runs = 0;
    assert_int_equal(loop_coro_new(&c, return_at_once, NULL, 0), 0);
    assert_int_equal(loop_coro_resume(c, V(5), &out), 0);
    out = V(9);
    assert_int_equal(loop_coro_resume(c, V(6), &out), -EINVAL);
    assert_int_equal(loop_coro_resume(c, V(6), &out), -EINVAL);
    assert_ptr_equal(out, V(9));
    assert_int_equal(runs, 1);
    assert_int_equal(loop_coro_status(c), LOOP_CORO_DONE);
    assert_int_equal(loop_coro_free(c), 0);
}

struct self_test {
    int resume_self, free_self, resume_outer, free_outer;
    loop_coro *outer;
};

static void *misuse_inside(void *arg, void *first)
{
    struct self_test *t = arg;
    (void)first;

    t->resume_self = loop_coro_resume(loop_coro_current(), NULL, NULL);
    t->free_self = loop_coro_free(loop_coro_current());
    if (t->outer != NULL) {
        t->resume_outer = loop_coro_resume(t->outer, NULL, NULL);
        t->free_outer = loop_coro_free(t->outer);
    }
    return V(7);
}

static void resume_or_free_of_the_running_coroutine_is_ebusy(void **state)
{
    (void)state;
    struct self_test t = {0};
    loop_coro *c;
    void *out;

    assert_int_equal(loop_coro_new(&c, misuse_inside, &t, 0), 0);
    assert_int_equal(loop_coro_resume(c, NULL, &out), 0);
    assert_ptr_equal(out, V(7)); /* it went on normally after the errors */
    assert_int_equal(t.resume_self, -EBUSY);
    assert_int_equal(t.free_self, -EBUSY);
    assert_int_equal(loop_coro_free(c), 0);
}

static void *run_inner(void *arg, void *first)
{
    loop_coro *inner = first;
    (void)arg;
    void *out;

    assert_int_equal(loop_coro_resume(inner, NULL, &out), 0);
    return out;
}

/* A coroutine waiting for one it resumed is running too. */
static void resume_or_free_of_a_waiting_resumer_is_ebusy(void **state)
{
    (void)state;
    struct self_test t = {0};
    loop_coro *outer, *inner;
    void *out;

    assert_int_equal(loop_coro_new(&outer, run_inner, NULL, 0), 0);
    assert_int_equal(loop_coro_new(&inner, misuse_inside, &t, 0), 0);
    t.outer = outer;
    assert_int_equal(loop_coro_resume(outer, inner, &out), 0);
    assert_ptr_equal(out, V(7));
    assert_int_equal(t.resume_outer, -EBUSY);
    assert_int_equal(t.free_outer, -EBUSY);
    assert_int_equal(loop_coro_free(inner), 0);
    assert_int_equal(loop_coro_free(outer), 0);
}

static void yield_outside_a_coroutine_is_eperm(void **state)
{
    (void)state;
    void *in = V(9);

    assert_int_equal(loop_coro_yield(V(1), &in), -EPERM);
    assert_int_equal(loop_coro_yield(NULL, NULL), -EPERM);
    assert_ptr_equal(in, V(9));
}

/* After a nested coroutine returned, its resumer is again outside any. */
static void yield_after_the_last_coroutine_returned_is_eperm(void **state)
{
    (void)state;
    loop_coro *c;

    assert_int_equal(loop_coro_new(&c, yield_twice, NULL, 0), 0);
    assert_int_equal(loop_coro_resume(c, NULL, NULL), 1);
    assert_int_equal(loop_coro_yield(NULL, NULL), -EPERM);
    assert_int_equal(loop_coro_free(c), 0);
}

static void free_and_status_of_null_are_einval(void **state)
{
    (void)state;
    assert_int_equal(loop_coro_free(NULL), -EINVAL);
    assert_int_equal(loop_coro_status(NULL), -EINVAL);
}

static void free_of_a_suspended_coroutine_is_allowed(void **state)
{
    (void)state;
    loop_coro *never_started, *half_way;

    runs = 0;
    assert_int_equal(loop_coro_new(&never_started, yield_twice, NULL, 0), 0);
    assert_int_equal(loop_coro_new(&half_way, yield_twice, NULL, 0), 0);
    assert_int_equal(loop_coro_resume(half_way, NULL, NULL), 1);
    assert_int_equal(loop_coro_free(never_started), 0);
    assert_int_equal(loop_coro_free(half_way), 0);
    assert_int_equal(runs, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(new_with_null_out_or_entry_is_einval),
        cmocka_unit_test(new_with_a_stack_above_the_max_is_einval),
        cmocka_unit_test(resume_of_null_is_einval),
        cmocka_unit_test(resume_of_a_done_coroutine_is_einval_and_runs_nothing),
        cmocka_unit_test(resume_or_free_of_the_running_coroutine_is_ebusy),
        cmocka_unit_test(resume_or_free_of_a_waiting_resumer_is_ebusy),
        cmocka_unit_test(yield_outside_a_coroutine_is_eperm),
        cmocka_unit_test(yield_after_the_last_coroutine_returned_is_eperm),
        cmocka_unit_test(free_and_status_of_null_are_einval),
        cmocka_unit_test(free_of_a_suspended_coroutine_is_allowed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
