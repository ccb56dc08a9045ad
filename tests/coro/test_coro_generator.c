/*
 * Coroutines as generators (DESIGN §5.2): the first resume's value is what
 * the entry sees, each yield hands a value out and receives the next
 * resume's value, the return value ends it, and the states and
 * loop_coro_current() follow along.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "loop_coro.h"

#define V(n) ((void *)(uintptr_t)(n))

struct trace {
    void *first;       /* what the entry received */
    void *arg;         /* its arg */
    loop_coro *self;   /* loop_coro_current() inside */
    int status_inside; /* loop_coro_status(self) inside */
    void *ins[8];      /* what each yield received */
    int nins;
};

/* Yields first+1, first+2, ... recording each value received, until it
 * receives 0; returns 1000 + the number of yields. */
static void *counter(void *arg, void *first)
{
    struct trace *t = arg;
    uintptr_t n = (uintptr_t)first;

    t->first = first;
    t->arg = arg;
    t->self = loop_coro_current();
    t->status_inside = loop_coro_status(t->self);
    for (int k = 1;; k++) {
        void *in = V(0xdead);
        assert_int_equal(loop_coro_yield(V(n + (uintptr_t)k), &in), 0);
        t->ins[t->nins++] = in;
        if (in == NULL)
            return V(1000 + k);
    }
}

static void first_resume_value_is_what_the_entry_sees(void **state)
{
    (void)state;
    struct trace t = {0};
    loop_coro *c;
    void *out = NULL;

    assert_int_equal(loop_coro_new(&c, counter, &t, 0), 0);
    assert_int_equal(loop_coro_resume(c, V(40), &out), 1);
    assert_ptr_equal(t.first, V(40));
    assert_ptr_equal(t.arg, &t);
    assert_ptr_equal(out, V(41));
    assert_int_equal(t.nins, 0);
    assert_int_equal(loop_coro_free(c), 0);
}

static void yield_hands_out_its_value_and_receives_the_next_resumes(void **state)
{
    (void)state;
    struct trace t = {0};
    loop_coro *c;
    void *out = NULL;

    assert_int_equal(loop_coro_new(&c, counter, &t, 0), 0);
    assert_int_equal(loop_coro_resume(c, V(10), &out), 1);
    assert_ptr_equal(out, V(11));
    assert_int_equal(loop_coro_resume(c, V(7), &out), 1);
    assert_ptr_equal(out, V(12));
    assert_int_equal(loop_coro_resume(c, V(8), &out), 1);
    assert_ptr_equal(out, V(13));
    assert_int_equal(t.nins, 2);
    assert_ptr_equal(t.ins[0], V(7));
    assert_ptr_equal(t.ins[1], V(8));
    assert_int_equal(loop_coro_free(c), 0);
}

static void return_value_ends_it_and_resume_says_done(void **state)
{
    (void)state;
    struct trace t = {0};
    loop_coro *c;
    void *out = NULL;

    assert_int_equal(loop_coro_new(&c, counter, &t, 0), 0);
    assert_int_equal(loop_coro_resume(c, V(0), &out), 1);
    assert_int_equal(loop_coro_resume(c, V(5), &out), 1);
    assert_int_equal(loop_coro_resume(c, NULL, &out), 0);
    assert_ptr_equal(out, V(1002));
    assert_int_equal(loop_coro_status(c), LOOP_CORO_DONE);
    assert_int_equal(loop_coro_free(c), 0);
}

static void status_is_suspended_then_running_inside_then_done(void **state)
{
    (void)state;
    struct trace t = {0};
    loop_coro *c;

    assert_int_equal(loop_coro_new(&c, counter, &t, 0), 0);
    assert_int_equal(loop_coro_status(c), LOOP_CORO_SUSPENDED);
    assert_int_equal(loop_coro_resume(c, V(1), NULL), 1);
    assert_int_equal(t.status_inside, LOOP_CORO_RUNNING);
    assert_int_equal(loop_coro_status(c), LOOP_CORO_SUSPENDED);
    assert_int_equal(loop_coro_resume(c, NULL, NULL), 0);
    assert_int_equal(loop_coro_status(c), LOOP_CORO_DONE);
    assert_int_equal(loop_coro_free(c), 0);
}

static void current_is_the_coroutine_inside_and_null_outside(void **state)
{
    (void)state;
    struct trace t = {0};
    loop_coro *c;

    assert_null(loop_coro_current());
    assert_int_equal(loop_coro_new(&c, counter, &t, 0), 0);
    assert_null(loop_coro_current());
    assert_int_equal(loop_coro_resume(c, V(1), NULL), 1);
    assert_ptr_equal(t.self, c);
    assert_null(loop_coro_current());
    assert_int_equal(loop_coro_free(c), 0);
}

static void *returns_at_once(void *arg, void *first)
{
    *(void **)arg = first;
    return V(77);
}

static void entry_that_returns_at_once_finishes_at_the_first_resume(void **state)
{
    (void)state;
    void *seen = NULL, *out = NULL;
    loop_coro *c;

    assert_int_equal(loop_coro_new(&c, returns_at_once, &seen, 0), 0);
    assert_int_equal(loop_coro_resume(c, V(3), &out), 0);
    assert_ptr_equal(seen, V(3));
    assert_ptr_equal(out, V(77));
    assert_int_equal(loop_coro_free(c), 0);
}

static void null_out_and_in_pointers_are_allowed(void **state)
{
    (void)state;
    struct trace t = {0};
    loop_coro *c;

    assert_int_equal(loop_coro_new(&c, counter, &t, 0), 0);
    assert_int_equal(loop_coro_resume(c, V(1), NULL), 1);
    assert_int_equal(loop_coro_resume(c, V(2), NULL), 1);
    assert_int_equal(loop_coro_resume(c, NULL, NULL), 0);
    assert_int_equal(loop_coro_free(c), 0);
}

/* The state of several coroutines is independent: each keeps its own place. */
static void interleaved_coroutines_keep_their_own_values(void **state)
{
    (void)state;
    struct trace ta = {0}, tb = {0};
    loop_coro *a, *b;
    void *out;

    assert_int_equal(loop_coro_new(&a, counter, &ta, 0), 0);
    assert_int_equal(loop_coro_new(&b, counter, &tb, 0), 0);
    assert_int_equal(loop_coro_resume(a, V(100), &out), 1);
    assert_ptr_equal(out, V(101));
    assert_int_equal(loop_coro_resume(b, V(200), &out), 1);
    assert_ptr_equal(out, V(201));
    assert_int_equal(loop_coro_resume(a, V(1), &out), 1);
    assert_ptr_equal(out, V(102));
    assert_int_equal(loop_coro_resume(b, V(2), &out), 1);
    assert_ptr_equal(out, V(202));
    assert_int_equal(loop_coro_resume(a, NULL, &out), 0);
    assert_ptr_equal(out, V(1002));
    assert_int_equal(loop_coro_resume(b, V(3), &out), 1);
    assert_ptr_equal(out, V(203));
    assert_ptr_equal(tb.ins[1], V(3));
    assert_int_equal(loop_coro_free(a), 0);
    assert_int_equal(loop_coro_free(b), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_resume_value_is_what_the_entry_sees),
        cmocka_unit_test(yield_hands_out_its_value_and_receives_the_next_resumes),
        cmocka_unit_test(return_value_ends_it_and_resume_says_done),
        cmocka_unit_test(status_is_suspended_then_running_inside_then_done),
        cmocka_unit_test(current_is_the_coroutine_inside_and_null_outside),
        cmocka_unit_test(entry_that_returns_at_once_finishes_at_the_first_resume),
        cmocka_unit_test(null_out_and_in_pointers_are_allowed),
        cmocka_unit_test(interleaved_coroutines_keep_their_own_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
