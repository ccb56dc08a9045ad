/*
 * Nested coroutines: a coroutine may resume another.  A yield goes back to
 * whoever resumed the coroutine this time (not to whoever created it or
 * resumed it before), and loop_coro_current() follows the chain.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "loop_coro.h"

#define V(n) ((void *)(uintptr_t)(n))

/* Yields what it receives plus one, forever; records who is current. */
static void *plus_one(void *arg, void *first)
{
    loop_coro **seen = arg;
    uintptr_t v = (uintptr_t)first;

    for (;;) {
        *seen = loop_coro_current();
        void *in;
        if (loop_coro_yield(V(v + 1), &in) < 0)
            return NULL;
        v = (uintptr_t)in;
    }
}

struct outer {
    loop_coro *inner;
    loop_coro *inner_seen;
    loop_coro *current_after;
    uintptr_t got[2];
};

/* Resumes the inner coroutine twice, then yields the sum to its resumer. */
static void *outer_entry(void *arg, void *first)
{
    struct outer *o = arg;
    void *out;
    (void)first;

    assert_int_equal(loop_coro_resume(o->inner, V(10), &out), 1);
    o->got[0] = (uintptr_t)out;
    o->current_after = loop_coro_current();
    assert_int_equal(loop_coro_resume(o->inner, V(20), &out), 1);
    o->got[1] = (uintptr_t)out;
    loop_coro_yield(V(o->got[0] + o->got[1]), NULL);
    return NULL;
}

static void yield_of_a_nested_coroutine_returns_to_the_coroutine_that_resumed_it(void **state)
{
    (void)state;
    struct outer o = {0};
    loop_coro *outer;
    void *out;

    assert_int_equal(loop_coro_new(&o.inner, plus_one, &o.inner_seen, 0), 0);
    assert_int_equal(loop_coro_new(&outer, outer_entry, &o, 0), 0);
    assert_int_equal(loop_coro_resume(outer, NULL, &out), 1);
    assert_int_equal(o.got[0], 11);
    assert_int_equal(o.got[1], 21);
    assert_ptr_equal(out, V(32));
    assert_ptr_equal(o.inner_seen, o.inner);
    assert_ptr_equal(o.current_after, outer);
    assert_null(loop_coro_current());
    assert_int_equal(loop_coro_free(outer), 0);
    assert_int_equal(loop_coro_free(o.inner), 0);
}

static void a_coroutine_resumed_by_another_then_by_main_yields_to_main(void **state)
{
    (void)state;
    struct outer o = {0};
    loop_coro *outer;
    void *out;

    assert_int_equal(loop_coro_new(&o.inner, plus_one, &o.inner_seen, 0), 0);
    assert_int_equal(loop_coro_new(&outer, outer_entry, &o, 0), 0);
    assert_int_equal(loop_coro_resume(outer, NULL, &out), 1);
    /* The inner one was last resumed by outer; now main resumes it. */
    assert_int_equal(loop_coro_resume(o.inner, V(100), &out), 1);
    assert_ptr_equal(out, V(101));
    assert_null(loop_coro_current());
    /* And outer, resumed again, finishes without seeing that yield. */
    assert_int_equal(loop_coro_resume(outer, NULL, &out), 0);
    assert_int_equal(loop_coro_free(outer), 0);
    assert_int_equal(loop_coro_free(o.inner), 0);
}

#define DEPTH 100

static loop_coro *chain[DEPTH];
static int depth_seen[DEPTH];

/* Link k resumes link k+1 with value+1 and returns what comes back,
 * checking that it is current again after each nested resume. */
static void *link_entry(void *arg, void *first)
{
    uintptr_t k = (uintptr_t)arg;
    void *out = first;

    depth_seen[k]++;
    if (k + 1 < DEPTH) {
        assert_int_equal(loop_coro_resume(chain[k + 1], V((uintptr_t)first + 1), &out), 0);
        assert_ptr_equal(loop_coro_current(), chain[k]);
        assert_int_equal(loop_coro_status(chain[k + 1]), LOOP_CORO_DONE);
    }
    assert_int_equal(loop_coro_status(chain[k]), LOOP_CORO_RUNNING);
    return out;
}

static void a_chain_of_a_hundred_nested_resumes_unwinds_in_order(void **state)
{
    (void)state;
    void *out;

    for (uintptr_t k = 0; k < DEPTH; k++)
        assert_int_equal(loop_coro_new(&chain[k], link_entry, V(k), 0), 0);
    assert_int_equal(loop_coro_resume(chain[0], V(1000), &out), 0);
    assert_ptr_equal(out, V(1000 + DEPTH - 1));
    for (int k = 0; k < DEPTH; k++) {
        assert_int_equal(depth_seen[k], 1);
        assert_int_equal(loop_coro_free(chain[k]), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(yield_of_a_nested_coroutine_returns_to_the_coroutine_that_resumed_it),
        cmocka_unit_test(a_coroutine_resumed_by_another_then_by_main_yields_to_main),
        cmocka_unit_test(a_chain_of_a_hundred_nested_resumes_unwinds_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
