/*
 * Combinators of futures: gather, wait, as_completed and wait_for, each
 * rule of loop_future.h on the loop's virtual clock.
 */

#include <errno.h>
#include <string.h>

#include "counting_alloc.h"
#include "fixtures.h"
#include "loop_future.h"

static loop_t *virtual_loop(void)
{
    return new_virtual_loop(false);
}

static void new_futures(loop_t *l, loop_future **fs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(loop_future_new(l, &fs[i]), 0);
}

static void unref_all(loop_future **fs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        loop_future_unref(fs[i]);
}

/* Complete a future at a virtual time: result (void *)v, or error v < 0. */
struct at {
    loop_future *f;
    intptr_t v;
};

static void complete_cb(loop_t *loop, void *arg)
{
    (void)loop;
    struct at *a = arg;
    if (a->v < 0)
        assert_int_equal(loop_future_set_error(a->f, (int)a->v), 0);
    else
        assert_int_equal(loop_future_set_result(a->f, (void *)a->v), 0);
}

static void complete_at(loop_t *l, struct at *a, uint64_t ms)
{
    assert_int_equal(loop_call_at(l, LOOP_MS(ms), complete_cb, a, NULL), 0);
}

static uint64_t done_at;

static void note_time(loop_future *f, void *arg)
{
    (void)f;
    done_at = loop_now(arg);
}

/* ---- gather ------------------------------------------------------------------- */

static void test_gather_is_done_when_every_child_is(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *fs[3], *g;
    new_futures(l, fs, 3);
    struct at a[3] = {{fs[0], 1}, {fs[1], 2}, {fs[2], 3}};
    complete_at(l, &a[0], 3);
    complete_at(l, &a[1], 1);
    complete_at(l, &a[2], 2);
    assert_int_equal(loop_gather(l, fs, 3, &g), 0);
    unref_all(fs, 3); /* the gather keeps them */
    assert_int_equal(loop_future_add_done(g, note_time, l), 0);
    void *out = (void *)1;
    assert_int_equal(loop_run_until_complete(l, g, &out), 0);
    assert_null(out);
    assert_true(done_at == LOOP_MS(3));
    loop_future_unref(g);
    assert_int_equal(loop_free(l), 0);
}

static void test_gather_fails_with_the_first_error_and_leaves_the_others_running(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *fs[3], *g;
    new_futures(l, fs, 3);
    struct at a[3] = {{fs[0], -EIO}, {fs[1], -EPIPE}, {fs[2], 7}};
    complete_at(l, &a[0], 2);
    complete_at(l, &a[1], 1);
    complete_at(l, &a[2], 3);
    assert_int_equal(loop_gather(l, fs, 3, &g), 0);
    assert_int_equal(loop_run_until_complete(l, g, NULL), -EPIPE);
    assert_true(loop_now(l) == LOOP_MS(1));
    assert_false(loop_future_done(fs[0])); /* not cancelled */
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_future_result(fs[0], NULL), -EIO);
    void *v;
    assert_int_equal(loop_future_result(fs[2], &v), 0);
    assert_ptr_equal(v, (void *)7);
    unref_all(fs, 3);
    loop_future_unref(g);
    assert_int_equal(loop_free(l), 0);
}

static void test_gather_counts_a_cancelled_child_as_ecanceled(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *fs[2], *g;
    new_futures(l, fs, 2);
    assert_int_equal(loop_gather(l, fs, 2, &g), 0);
    assert_int_equal(loop_future_cancel(fs[1]), 1);
    assert_int_equal(loop_run_until_complete(l, g, NULL), -ECANCELED);
    assert_int_equal(loop_future_state(g), LOOP_FUTURE_FAILED);
    assert_false(loop_future_done(fs[0]));
    assert_int_equal(loop_future_set_result(fs[0], NULL), 0);
    assert_int_equal(loop_run(l), 0);
    unref_all(fs, 2);
    loop_future_unref(g);
    assert_int_equal(loop_free(l), 0);
}

static char order[8];
static size_t norder;

static int note_cancel(loop_future *f, void *arg)
{
    order[norder++] = *(const char *)arg;
    return loop_future_cancel_now(f);
}

static void test_cancelling_a_gather_cancels_every_child_in_order(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *fs[3], *g;
    new_futures(l, fs, 3);
    norder = 0;
    assert_int_equal(loop_future_set_canceller(fs[0], note_cancel, "a"), 0);
    assert_int_equal(loop_future_set_canceller(fs[1], note_cancel, "b"), 0);
    assert_int_equal(loop_future_set_canceller(fs[2], note_cancel, "c"), 0);
    assert_int_equal(loop_gather(l, fs, 3, &g), 0);
    assert_int_equal(loop_future_cancel(g), 1);
    assert_memory_equal(order, "abc", 3);
    assert_int_equal(loop_run_until_complete(l, g, NULL), -ECANCELED);
    for (int i = 0; i < 3; i++)
        assert_int_equal(loop_future_state(fs[i]), LOOP_FUTURE_CANCELLED);
    assert_int_equal(loop_future_cancel(g), 0); /* done */
    unref_all(fs, 3);
    loop_future_unref(g);

    /* Nothing left to cancel: the cancel is refused. */
    new_futures(l, fs, 1);
    assert_int_equal(loop_gather(l, fs, 1, &g), 0);
    assert_int_equal(loop_future_set_result(fs[0], NULL), 0);
    assert_int_equal(loop_future_cancel(g), 0);
    assert_int_equal(loop_run_until_complete(l, g, NULL), 0);
    unref_all(fs, 1);
    loop_future_unref(g);
    assert_int_equal(loop_free(l), 0);
}

static void test_gather_of_nothing_is_done_at_once_and_bad_sets_are_einval(void **state)
{
    (void)state;
    loop_t *l = virtual_loop(), *other = virtual_loop();
    loop_future *g, *foreign, *fs[2];
    assert_int_equal(loop_gather(l, NULL, 0, &g), 0);
    assert_true(loop_future_done(g));
    loop_future_unref(g);
    assert_int_equal(loop_future_new(other, &foreign), 0);
    new_futures(l, fs, 1);
    fs[1] = foreign;
    assert_int_equal(loop_gather(l, fs, 2, &g), -EINVAL);
    assert_null(g);
    fs[1] = NULL;
    assert_int_equal(loop_gather(l, fs, 2, &g), -EINVAL);
    assert_int_equal(loop_gather(l, NULL, 2, &g), -EINVAL);
    assert_int_equal(loop_gather(l, fs, 1, NULL), -EINVAL);
    assert_int_equal(loop_gather(NULL, fs, 1, &g), -EINVAL);
    loop_future_unref(fs[0]);
    loop_future_unref(foreign);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(loop_free(other), 0);
}

/* ---- wait --------------------------------------------------------------------- */

static void check_wait(enum loop_wait_until until, intptr_t v1, uint64_t want_ms, uintptr_t want_n)
{
    loop_t *l = virtual_loop();
    loop_future *fs[3], *w;
    new_futures(l, fs, 3);
    struct at a[3] = {{fs[0], 1}, {fs[1], v1}, {fs[2], 3}};
    complete_at(l, &a[0], 1);
    complete_at(l, &a[1], 2);
    complete_at(l, &a[2], 3);
    assert_int_equal(loop_wait(l, fs, 3, until, -1, &w), 0);
    void *n = NULL;
    assert_int_equal(loop_run_until_complete(l, w, &n), 0);
    assert_true(loop_now(l) == LOOP_MS(want_ms));
    assert_int_equal((uintptr_t)n, want_n);
    for (uintptr_t i = want_n; i < 3; i++)
        assert_false(loop_future_done(fs[i])); /* never cancelled */
    assert_int_equal(loop_run(l), 0);
    unref_all(fs, 3);
    loop_future_unref(w);
    assert_int_equal(loop_free(l), 0);
}

static void test_wait_returns_when_its_condition_holds(void **state)
{
    (void)state;
    check_wait(LOOP_FIRST_COMPLETED, 2, 1, 1);
    check_wait(LOOP_FIRST_EXCEPTION, -EIO, 2, 2);
    check_wait(LOOP_FIRST_EXCEPTION, 2, 3, 3); /* no failure: all completed */
    check_wait(LOOP_ALL_COMPLETED, -EIO, 3, 3);
}

static void test_wait_times_out_without_cancelling_or_failing(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *fs[2], *w;
    new_futures(l, fs, 2);
    struct at a = {fs[0], 1};
    complete_at(l, &a, 1);
    assert_int_equal(loop_wait(l, fs, 2, LOOP_ALL_COMPLETED, (int64_t)LOOP_MS(5), &w), 0);
    void *n = NULL;
    assert_int_equal(loop_run_until_complete(l, w, &n), 0);
    assert_true(loop_now(l) == LOOP_MS(5));
    assert_int_equal((uintptr_t)n, 1);
    assert_false(loop_future_done(fs[1]));
    /* The wait lets go of the child that never completes: no leak. */
    unref_all(fs, 2);
    loop_future_unref(w);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_wait_rejects_an_empty_set_and_an_unknown_condition(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *fs[1], *w;
    new_futures(l, fs, 1);
    assert_int_equal(loop_wait(l, fs, 0, LOOP_ALL_COMPLETED, -1, &w), -EINVAL);
    assert_int_equal(loop_wait(l, fs, 1, (enum loop_wait_until)0, -1, &w), -EINVAL);
    assert_int_equal(loop_wait(l, fs, 1, (enum loop_wait_until)4, -1, &w), -EINVAL);
    assert_int_equal(loop_wait(l, fs, 1, LOOP_ALL_COMPLETED, -1, NULL), -EINVAL);
    unref_all(fs, 1);
    assert_int_equal(loop_free(l), 0);
}

/* ---- as_completed ----------------------------------------------------------------- */

static void test_as_completed_hands_out_children_in_the_order_they_finish(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *fs[3];
    new_futures(l, fs, 3);
    struct at a[3] = {{fs[0], 1}, {fs[1], 2}, {fs[2], -EIO}};
    complete_at(l, &a[0], 3);
    complete_at(l, &a[1], 1);
    complete_at(l, &a[2], 2);
    loop_as_completed *ac;
    assert_int_equal(loop_as_completed_new(l, fs, 3, -1, &ac), 0);
    int want[3] = {1, 2, 0};
    for (int i = 0; i < 3; i++) {
        loop_future *next;
        assert_int_equal(loop_as_completed_next(ac, &next), 0);
        void *child = NULL;
        assert_int_equal(loop_run_until_complete(l, next, &child), 0);
        assert_ptr_equal(child, fs[want[i]]);
        loop_future_unref(next);
    }
    loop_future *more;
    assert_int_equal(loop_as_completed_next(ac, &more), -ENOENT);
    loop_as_completed_free(ac);
    unref_all(fs, 3);
    assert_int_equal(loop_free(l), 0);
}

static void test_as_completed_fails_the_rest_with_etimedout(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *fs[2];
    new_futures(l, fs, 2);
    struct at a = {fs[1], 5};
    complete_at(l, &a, 1);
    loop_as_completed *ac;
    assert_int_equal(loop_as_completed_new(l, fs, 2, (int64_t)LOOP_MS(4), &ac), 0);
    loop_future *first, *second;
    assert_int_equal(loop_as_completed_next(ac, &first), 0);
    assert_int_equal(loop_as_completed_next(ac, &second), 0);
    void *child;
    assert_int_equal(loop_run_until_complete(l, first, &child), 0);
    assert_ptr_equal(child, fs[1]);
    assert_int_equal(loop_run_until_complete(l, second, NULL), -ETIMEDOUT);
    assert_true(loop_now(l) == LOOP_MS(4));
    loop_future_unref(first);
    loop_future_unref(second);
    loop_as_completed_free(ac);
    unref_all(fs, 2);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_free(l), 0);
}

/* ---- wait_for ------------------------------------------------------------------- */

static void test_wait_for_takes_the_outcome_of_an_inner_done_in_time(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *inner, *w;
    assert_int_equal(loop_future_new(l, &inner), 0);
    struct at a = {inner, -EPROTO};
    complete_at(l, &a, 3);
    assert_int_equal(loop_wait_for(l, inner, LOOP_MS(5), &w), 0);
    assert_int_equal(loop_run_until_complete(l, w, NULL), -EPROTO);
    assert_true(loop_now(l) == LOOP_MS(3));
    loop_future_unref(w);
    loop_future_unref(inner);
    assert_int_equal(loop_run(l), 0); /* the timer is gone: nothing keeps the loop */
    assert_true(loop_now(l) == LOOP_MS(3));
    assert_int_equal(loop_free(l), 0);
}

/* A future that takes 2 ms to finish cancelling, or refuses and completes. */
struct slow_cancel {
    loop_t *loop;
    loop_future *f;
    bool refuse;
    uint64_t cancel_asked_at;
};

static void finish_cancelling(loop_t *loop, void *arg)
{
    (void)loop;
    struct slow_cancel *s = arg;
    if (s->refuse)
        assert_int_equal(loop_future_set_result(s->f, (void *)99), 0);
    else
        assert_int_equal(loop_future_cancel_now(s->f), 1);
}

static int cancel_slowly(loop_future *f, void *arg)
{
    (void)f;
    struct slow_cancel *s = arg;
    s->cancel_asked_at = loop_now(s->loop);
    assert_int_equal(loop_call_later(s->loop, LOOP_MS(2), finish_cancelling, s, NULL), 0);
    return 1;
}

static void check_wait_for_timeout(bool refuse)
{
    loop_t *l = virtual_loop();
    struct slow_cancel s = {.loop = l, .refuse = refuse};
    loop_future *w;
    assert_int_equal(loop_future_new(l, &s.f), 0);
    assert_int_equal(loop_future_set_canceller(s.f, cancel_slowly, &s), 0);
    assert_int_equal(loop_wait_for(l, s.f, LOOP_MS(5), &w), 0);
    void *v = NULL;
    int err = loop_run_until_complete(l, w, &v);
    assert_true(s.cancel_asked_at == LOOP_MS(5));
    assert_true(loop_now(l) == LOOP_MS(7)); /* it waited for the inner to finish */
    if (refuse) {
        assert_int_equal(err, 0);
        assert_ptr_equal(v, (void *)99);
    } else {
        assert_int_equal(err, -ETIMEDOUT);
    }
    loop_future_unref(w);
    loop_future_unref(s.f);
    assert_int_equal(loop_free(l), 0);
}

static void test_wait_for_cancels_on_timeout_and_waits_for_the_inner(void **state)
{
    (void)state;
    check_wait_for_timeout(false);
}

static void test_wait_for_gives_the_outcome_of_an_inner_that_refuses_the_cancel(void **state)
{
    (void)state;
    check_wait_for_timeout(true);
}

static void test_a_cancel_of_wait_for_is_never_swallowed(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    struct slow_cancel s = {.loop = l, .refuse = true};
    loop_future *w;
    assert_int_equal(loop_future_new(l, &s.f), 0);
    assert_int_equal(loop_future_set_canceller(s.f, cancel_slowly, &s), 0);
    assert_int_equal(loop_wait_for(l, s.f, LOOP_SEC(10), &w), 0);
    assert_int_equal(loop_future_cancel(w), 1);
    assert_false(loop_future_done(w)); /* it waits for the inner */
    assert_int_equal(loop_run_until_complete(l, w, NULL), -ECANCELED);
    assert_int_equal(loop_future_state(w), LOOP_FUTURE_CANCELLED);
    void *v;
    assert_int_equal(loop_future_result(s.f, &v), 0); /* the inner refused... */
    assert_ptr_equal(v, (void *)99);                   /* ...and still the wait is cancelled */
    loop_future_unref(w);
    loop_future_unref(s.f);
    assert_int_equal(loop_free(l), 0);
}

static void test_combinators_left_pending_are_freed_with_the_loop(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *fs[2], *g, *w, *wf;
    new_futures(l, fs, 2);
    loop_as_completed *ac;
    assert_int_equal(loop_gather(l, fs, 2, &g), 0);
    assert_int_equal(loop_wait(l, fs, 2, LOOP_ALL_COMPLETED, -1, &w), 0);
    assert_int_equal(loop_wait_for(l, fs[0], LOOP_SEC(1), &wf), 0);
    assert_int_equal(loop_as_completed_new(l, fs, 2, -1, &ac), 0);
    loop_as_completed_free(ac);
    assert_int_equal(loop_free(l), 0); /* ASan and valgrind: nothing leaks */
}

/*
 * Each combinator, with the k-th allocation failing: it returns 0, or
 * -ENOMEM with nothing started (the children complete later with no
 * callback of it left), and nothing leaks.
 */
static bool combine_scenario(long fail_at)
{
    struct counting_alloc a = {0};
    loop_t *l;
    assert_int_equal(loop_new_with(&l, &(loop_options){.clock = LOOP_CLOCK_VIRTUAL,
                                                       .realloc = counting_realloc,
                                                       .alloc_ctx = &a}),
                     0);
    loop_future *fs[3];
    new_futures(l, fs, 3);
    a.fail_at = a.calls + fail_at;
    loop_future *g = NULL, *w = NULL, *wf = NULL, *next = NULL;
    loop_as_completed *ac = NULL;
    int err[5] = {
        loop_gather(l, fs, 3, &g),
        loop_wait(l, fs, 3, LOOP_ALL_COMPLETED, (int64_t)LOOP_MS(9), &w),
        loop_wait_for(l, fs[0], LOOP_MS(9), &wf),
        loop_as_completed_new(l, fs, 3, (int64_t)LOOP_MS(9), &ac),
        0,
    };
    if (ac)
        err[4] = loop_as_completed_next(ac, &next);
    for (int i = 0; i < 5; i++)
        assert_true(err[i] == 0 || err[i] == -ENOMEM);
    assert_true((g != NULL) == (err[0] == 0));
    assert_true((w != NULL) == (err[1] == 0));
    assert_true((wf != NULL) == (err[2] == 0));
    assert_true((ac != NULL) == (err[3] == 0));
    a.fail_at = 0;
    struct at done[3] = {{fs[0], 1}, {fs[1], 2}, {fs[2], 3}};
    for (int i = 0; i < 3; i++)
        complete_at(l, &done[i], (uint64_t)i + 1);
    assert_int_equal(loop_run(l), 0);
    if (g)
        assert_int_equal(loop_future_result(g, NULL), 0);
    if (w)
        assert_true(loop_future_done(w));
    if (wf)
        assert_int_equal(loop_future_result(wf, NULL), 0);
    if (next)
        assert_true(loop_future_done(next));
    loop_future_unref(g);
    loop_future_unref(w);
    loop_future_unref(wf);
    loop_future_unref(next);
    loop_as_completed_free(ac);
    unref_all(fs, 3);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(a.live_blocks, 0);
    assert_int_equal(a.bad_frees, 0);
    return a.failures > 0;
}

static void test_every_allocation_failure_of_a_combinator_starts_nothing(void **state)
{
    (void)state;
    long k = 1;
    while (combine_scenario(k))
        k++;
    assert_true(k > 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gather_is_done_when_every_child_is),
        cmocka_unit_test(test_gather_fails_with_the_first_error_and_leaves_the_others_running),
        cmocka_unit_test(test_gather_counts_a_cancelled_child_as_ecanceled),
        cmocka_unit_test(test_cancelling_a_gather_cancels_every_child_in_order),
        cmocka_unit_test(test_gather_of_nothing_is_done_at_once_and_bad_sets_are_einval),
        cmocka_unit_test(test_wait_returns_when_its_condition_holds),
        cmocka_unit_test(test_wait_times_out_without_cancelling_or_failing),
        cmocka_unit_test(test_wait_rejects_an_empty_set_and_an_unknown_condition),
        cmocka_unit_test(test_as_completed_hands_out_children_in_the_order_they_finish),
        cmocka_unit_test(test_as_completed_fails_the_rest_with_etimedout),
        cmocka_unit_test(test_wait_for_takes_the_outcome_of_an_inner_done_in_time),
        cmocka_unit_test(test_wait_for_cancels_on_timeout_and_waits_for_the_inner),
        cmocka_unit_test(test_wait_for_gives_the_outcome_of_an_inner_that_refuses_the_cancel),
        cmocka_unit_test(test_a_cancel_of_wait_for_is_never_swallowed),
        cmocka_unit_test(test_combinators_left_pending_are_freed_with_the_loop),
        cmocka_unit_test(test_every_allocation_failure_of_a_combinator_starts_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
