/*
 * Futures (loop_future.h): states, outcomes, done callbacks scheduled on
 * the loop in the order added, run_until_complete, lifetime with the loop,
 * bad input and allocation failure.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "counting_alloc.h"
#include "fixtures.h"
#include "loop_future.h"

static loop_t *virtual_loop(void)
{
    return new_virtual_loop(false);
}

static loop_future *new_future(loop_t *l)
{
    loop_future *f;
    assert_int_equal(loop_future_new(l, &f), 0);
    return f;
}

/* A trace of what ran, as letters. */
static char trace[64];
static size_t ntrace;

static void reset_trace(void)
{
    ntrace = 0;
    trace[0] = 0;
}

static void mark_cb(loop_future *f, void *arg)
{
    assert_true(loop_future_done(f));
    trace[ntrace++] = *(const char *)arg;
    trace[ntrace] = 0;
}

static void mark_soon(loop_t *loop, void *arg)
{
    (void)loop;
    trace[ntrace++] = *(const char *)arg;
    trace[ntrace] = 0;
}

/* ---- states and outcomes ---------------------------------------------------- */

static void test_a_future_completes_once_with_a_result_an_error_or_a_cancel(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *a = new_future(l), *b = new_future(l), *c = new_future(l);
    void *out = (void *)1;
    assert_int_equal(loop_future_state(a), LOOP_FUTURE_PENDING);
    assert_false(loop_future_done(a));
    assert_int_equal(loop_future_result(a, &out), -EAGAIN);

    int x;
    assert_int_equal(loop_future_set_result(a, &x), 0);
    assert_int_equal(loop_future_state(a), LOOP_FUTURE_DONE);
    assert_int_equal(loop_future_result(a, &out), 0);
    assert_ptr_equal(out, &x);

    assert_int_equal(loop_future_set_error(b, -EPIPE), 0);
    assert_int_equal(loop_future_state(b), LOOP_FUTURE_FAILED);
    assert_int_equal(loop_future_result(b, &out), -EPIPE);

    assert_int_equal(loop_future_cancel(c), 1);
    assert_int_equal(loop_future_state(c), LOOP_FUTURE_CANCELLED);
    assert_int_equal(loop_future_result(c, NULL), -ECANCELED);

    /* Completing a done future is -EINVAL and changes nothing. */
    for (int i = 0; i < 3; i++) {
        loop_future *f = i == 0 ? a : i == 1 ? b : c;
        enum loop_future_state st = loop_future_state(f);
        assert_int_equal(loop_future_set_result(f, NULL), -EINVAL);
        assert_int_equal(loop_future_set_error(f, -EIO), -EINVAL);
        assert_int_equal(loop_future_cancel(f), 0);
        assert_int_equal(loop_future_state(f), st);
    }
    assert_int_equal(loop_future_result(a, &out), 0);
    assert_ptr_equal(out, &x);
    assert_int_equal(loop_future_result(b, NULL), -EPIPE);

    loop_future_unref(a);
    loop_future_unref(b);
    loop_future_unref(c);
    assert_int_equal(loop_free(l), 0);
}

static void test_bad_input_is_einval(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *f = NULL;
    assert_int_equal(loop_future_new(NULL, &f), -EINVAL);
    assert_null(f);
    assert_int_equal(loop_future_new(l, NULL), -EINVAL);
    f = new_future(l);
    assert_int_equal(loop_future_set_result(NULL, NULL), -EINVAL);
    assert_int_equal(loop_future_set_error(NULL, -EIO), -EINVAL);
    assert_int_equal(loop_future_set_error(f, 0), -EINVAL);
    assert_int_equal(loop_future_set_error(f, 5), -EINVAL);
    assert_int_equal(loop_future_cancel(NULL), -EINVAL);
    assert_int_equal(loop_future_cancel_now(NULL), -EINVAL);
    assert_int_equal(loop_future_result(NULL, NULL), -EINVAL);
    assert_int_equal(loop_future_add_done(NULL, mark_cb, "x"), -EINVAL);
    assert_int_equal(loop_future_add_done(f, NULL, "x"), -EINVAL);
    assert_int_equal(loop_future_remove_done(NULL, mark_cb, "x"), -EINVAL);
    assert_int_equal(loop_future_set_canceller(NULL, NULL, NULL), -EINVAL);
    assert_int_equal(loop_run_until_complete(NULL, f, NULL), -EINVAL);
    assert_int_equal(loop_run_until_complete(l, NULL, NULL), -EINVAL);
    assert_int_equal(loop_future_state(NULL), LOOP_FUTURE_PENDING);
    assert_false(loop_future_done(NULL));
    assert_null(loop_future_loop(NULL));
    assert_ptr_equal(loop_future_loop(f), l);
    loop_future_ref(NULL);
    loop_future_unref(NULL);
    assert_int_equal(loop_future_state(f), LOOP_FUTURE_PENDING); /* nothing changed */
    loop_future_unref(f);
    assert_int_equal(loop_free(l), 0);
}

/* ---- done callbacks ------------------------------------------------------------ */

static void test_done_callbacks_run_from_the_loop_in_the_order_added(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *f = new_future(l);
    reset_trace();
    assert_int_equal(loop_future_add_done(f, mark_cb, "a"), 0);
    assert_int_equal(loop_future_add_done(f, mark_cb, "b"), 0);
    assert_int_equal(loop_future_add_done(f, mark_cb, "c"), 0);
    assert_int_equal(loop_call_soon(l, mark_soon, "1", NULL), 0);
    assert_int_equal(loop_future_set_result(f, NULL), 0);
    assert_string_equal(trace, ""); /* never from inside the completing call */
    assert_int_equal(loop_call_soon(l, mark_soon, "2", NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    /* Scheduled with call_soon at completion: after what was queued before,
     * before what was queued after. */
    assert_string_equal(trace, "1abc2");
    loop_future_unref(f);
    assert_int_equal(loop_free(l), 0);
}

static void test_a_callback_added_to_a_done_future_is_scheduled_at_once(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *f = new_future(l);
    reset_trace();
    assert_int_equal(loop_future_add_done(f, mark_cb, "a"), 0);
    assert_int_equal(loop_future_set_result(f, NULL), 0);
    assert_int_equal(loop_call_soon(l, mark_soon, "1", NULL), 0);
    assert_int_equal(loop_future_add_done(f, mark_cb, "b"), 0); /* queued now: after "1" */
    assert_string_equal(trace, "");
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_string_equal(trace, "a1b");
    loop_future_unref(f);
    assert_int_equal(loop_free(l), 0);
}

static void test_removed_callbacks_do_not_run_and_are_counted(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *f = new_future(l);
    reset_trace();
    assert_int_equal(loop_future_add_done(f, mark_cb, "a"), 0);
    assert_int_equal(loop_future_add_done(f, mark_cb, "b"), 0);
    assert_int_equal(loop_future_add_done(f, mark_cb, "a"), 0);
    assert_int_equal(loop_future_remove_done(f, mark_cb, "a"), 2);
    assert_int_equal(loop_future_remove_done(f, mark_cb, "z"), 0);
    assert_int_equal(loop_future_cancel(f), 1);
    assert_int_equal(loop_run(l), 0);
    assert_string_equal(trace, "b");
    loop_future_unref(f);
    assert_int_equal(loop_free(l), 0);
}

static void drop_last_ref(loop_future *f, void *arg)
{
    (void)arg;
    loop_future_unref(f); /* the future stays alive for the rest of its callbacks */
}

static void test_a_future_lives_while_its_callbacks_are_queued(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *f = new_future(l);
    reset_trace();
    assert_int_equal(loop_future_add_done(f, drop_last_ref, NULL), 0);
    assert_int_equal(loop_future_add_done(f, mark_cb, "a"), 0);
    assert_int_equal(loop_future_set_result(f, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_string_equal(trace, "a");
    assert_int_equal(loop_free(l), 0); /* ASan and valgrind: nothing leaked */
}

/* A future nobody holds is freed as soon as its callbacks have run, not at
 * loop_free; with one callback or several, and also when its only callback
 * drops the last reference itself.  Being freed is seen through the report
 * of an error nobody read, which comes exactly then. */
static void take_and_drop_ref(loop_future *f, void *arg)
{
    int *reports = arg;
    loop_future_ref(f);
    loop_future_unref(f); /* back to none: the future must outlive this call */
    assert_true(loop_future_done(f));
    assert_int_equal(*reports, 0);
}

static void count_report(loop_future *f, int err, void *arg)
{
    (void)f;
    assert_int_equal(err, -EIO);
    ++*(int *)arg;
}

static int reports_after_run(loop_t *l, int ncbs, bool held)
{
    int reports = 0;
    assert_int_equal(loop_future_on_unretrieved(l, count_report, &reports), 0);
    loop_future *f = new_future(l);
    for (int i = 0; i < ncbs; i++)
        assert_int_equal(loop_future_add_done(f, held ? drop_last_ref : take_and_drop_ref,
                                              held ? NULL : &reports),
                         0);
    assert_int_equal(loop_future_set_error(f, -EIO), 0);
    if (!held)
        loop_future_unref(f); /* only the queued callbacks keep it */
    assert_int_equal(reports, 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_future_on_unretrieved(l, NULL, NULL), 0);
    return reports;
}

static void test_a_future_is_freed_once_its_callbacks_have_run(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    assert_int_equal(reports_after_run(l, 1, true), 1);  /* its callback drops the ref */
    assert_int_equal(reports_after_run(l, 1, false), 1); /* nobody holds it */
    assert_int_equal(reports_after_run(l, 3, false), 1); /* several callbacks */
    assert_int_equal(loop_free(l), 0);
}

/* Futures made and freed over and over reuse their memory: after the
 * first few, making one allocates nothing, and loop_free returns it all. */
static void test_freed_futures_are_reused_and_returned_at_loop_free(void **state)
{
    (void)state;
    struct counting_alloc a = {0};
    loop_t *l;
    assert_int_equal(loop_new_with(&l, &(loop_options){.clock = LOOP_CLOCK_VIRTUAL,
                                                       .realloc = counting_realloc,
                                                       .alloc_ctx = &a}),
                     0);
    loop_future_unref(new_future(l));
    long calls = a.calls;
    for (int i = 0; i < 1000; i++)
        loop_future_unref(new_future(l));
    assert_int_equal(a.calls, calls);
    loop_future *many[200];
    for (int i = 0; i < 200; i++)
        many[i] = new_future(l);
    for (int i = 0; i < 200; i++)
        loop_future_unref(many[i]);
    assert_true(a.live_blocks < 100); /* a bounded number is kept */
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(a.live_blocks, 0);
}

/* ---- canceller ------------------------------------------------------------------ */

static int refuse(loop_future *f, void *arg)
{
    (void)f;
    ++*(int *)arg;
    return 0;
}

static void test_a_canceller_decides_and_cancel_now_overrides_it(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *f = new_future(l);
    int asked = 0;
    assert_int_equal(loop_future_set_canceller(f, refuse, &asked), 0);
    assert_int_equal(loop_future_cancel(f), 0);
    assert_int_equal(asked, 1);
    assert_int_equal(loop_future_state(f), LOOP_FUTURE_PENDING);
    assert_int_equal(loop_future_cancel_now(f), 1);
    assert_int_equal(loop_future_state(f), LOOP_FUTURE_CANCELLED);
    assert_int_equal(loop_future_cancel(f), 0); /* done: not asked again */
    assert_int_equal(asked, 1);
    loop_future_unref(f);
    assert_int_equal(loop_free(l), 0);
}

/* ---- run_until_complete ---------------------------------------------------------- */

static void complete_later(loop_t *loop, void *arg)
{
    (void)loop;
    assert_int_equal(loop_future_set_result(arg, (void *)42), 0);
}

static void test_run_until_complete_returns_the_outcome_once_done(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *f = new_future(l);
    loop_handle keep;
    /* Something else would keep the loop busy much longer. */
    assert_int_equal(loop_call_later(l, LOOP_SEC(100), mark_soon, "x", &keep), 0);
    assert_int_equal(loop_call_later(l, LOOP_MS(5), complete_later, f, NULL), 0);
    void *out = NULL;
    assert_int_equal(loop_run_until_complete(l, f, &out), 0);
    assert_ptr_equal(out, (void *)42);
    assert_true(loop_now(l) == LOOP_MS(5));
    assert_int_equal(loop_cancel(l, keep), 0);

    loop_future *g = new_future(l);
    assert_int_equal(loop_future_set_error(g, -EPROTO), 0);
    assert_int_equal(loop_run_until_complete(l, g, NULL), -EPROTO); /* done already: fine */
    loop_future_unref(f);
    loop_future_unref(g);
    assert_int_equal(loop_free(l), 0);
}

static void stop_it(loop_t *loop, void *arg)
{
    (void)arg;
    loop_stop(loop);
}

static void test_run_until_complete_is_edeadlk_when_the_loop_stops_first(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *f = new_future(l);
    /* Nothing can complete it. */
    assert_int_equal(loop_run_until_complete(l, f, NULL), -EDEADLK);
    /* Stopped before it completes. */
    assert_int_equal(loop_call_later(l, LOOP_MS(1), stop_it, NULL, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_MS(9), complete_later, f, NULL), 0);
    assert_int_equal(loop_run_until_complete(l, f, NULL), -EDEADLK);
    assert_false(loop_future_done(f));
    /* And then it can still be run to completion. */
    void *out;
    assert_int_equal(loop_run_until_complete(l, f, &out), 0);
    assert_ptr_equal(out, (void *)42);
    loop_future *other = new_future(l);
    loop_t *l2 = virtual_loop();
    assert_int_equal(loop_run_until_complete(l2, other, NULL), -EINVAL); /* another loop's */
    assert_int_equal(loop_free(l2), 0);
    loop_future_unref(other);
    loop_future_unref(f);
    assert_int_equal(loop_free(l), 0);
}

static void nested_run(loop_t *loop, void *arg)
{
    assert_int_equal(loop_run_until_complete(loop, arg, NULL), -EBUSY);
}

static void test_run_until_complete_from_a_callback_is_ebusy(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *f = new_future(l);
    assert_int_equal(loop_call_soon(l, nested_run, f, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_future_add_done(f, mark_cb, "a"), 0); /* its callback was removed */
    loop_future_unref(f);
    assert_int_equal(loop_free(l), 0);
}

/* ---- lifetime with the loop --------------------------------------------------------- */

static void test_freeing_the_loop_releases_queued_callbacks_and_futures(void **state)
{
    (void)state;
    loop_t *l = virtual_loop();
    loop_future *f = new_future(l), *g = new_future(l);
    reset_trace();
    assert_int_equal(loop_future_add_done(f, mark_cb, "a"), 0);
    assert_int_equal(loop_future_set_result(f, NULL), 0);
    assert_int_equal(loop_future_add_done(f, mark_cb, "b"), 0);
    loop_future_unref(f); /* only its queued callbacks hold it now */
    (void)g;              /* still referenced: freed with its loop */
    assert_int_equal(loop_free(l), 0);
    assert_string_equal(trace, ""); /* nothing ran; ASan and valgrind see no leak */
}

/* ---- allocation failure -------------------------------------------------------------- */

/* Every call either works or says -ENOMEM and changes nothing; the loop and
 * the futures stay usable, and nothing leaks. */
static bool alloc_scenario(long fail_at)
{
    struct counting_alloc a = {0};
    loop_t *l;
    assert_int_equal(loop_new_with(&l, &(loop_options){.clock = LOOP_CLOCK_VIRTUAL,
                                                       .realloc = counting_realloc,
                                                       .alloc_ctx = &a}),
                     0);
    a.fail_at = a.calls + fail_at; /* count from here: the loop itself is made */
    reset_trace();
    loop_future *f[4] = {0};
    int added = 0;
    for (int i = 0; i < 4; i++) {
        int err = loop_future_new(l, &f[i]);
        assert_true(err == 0 || err == -ENOMEM);
        if (err) {
            assert_null(f[i]);
            assert_int_equal(loop_future_new(l, &f[i]), 0);
        }
    }
    for (int i = 0; i < 6; i++) {
        int err = loop_future_add_done(f[0], mark_cb, "a");
        assert_true(err == 0 || err == -ENOMEM);
        added += !err;
    }
    int err = loop_future_set_result(f[0], NULL);
    assert_true(err == 0 || err == -ENOMEM);
    if (err) {
        assert_false(loop_future_done(f[0]));
        assert_int_equal(loop_future_set_result(f[0], NULL), 0);
    }
    err = loop_future_add_done(f[0], mark_cb, "b");
    assert_true(err == 0 || err == -ENOMEM);
    bool late = !err;
    err = loop_run(l);
    if (err)
        fail_msg("loop_run: %d with allocation %ld failing", err, fail_at);
    assert_int_equal((int)ntrace, added + late);
    for (int i = 0; i < 4; i++)
        loop_future_unref(f[i]);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(a.live_blocks, 0);
    assert_int_equal(a.bad_frees, 0);
    return a.failures > 0;
}

static void test_every_allocation_failure_is_enomem_and_changes_nothing(void **state)
{
    (void)state;
    long k = 1;
    while (alloc_scenario(k))
        k++;
    assert_true(k > 5); /* the scenario reached several allocation sites */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_future_completes_once_with_a_result_an_error_or_a_cancel),
        cmocka_unit_test(test_bad_input_is_einval),
        cmocka_unit_test(test_done_callbacks_run_from_the_loop_in_the_order_added),
        cmocka_unit_test(test_a_callback_added_to_a_done_future_is_scheduled_at_once),
        cmocka_unit_test(test_removed_callbacks_do_not_run_and_are_counted),
        cmocka_unit_test(test_a_future_lives_while_its_callbacks_are_queued),
        cmocka_unit_test(test_a_future_is_freed_once_its_callbacks_have_run),
        cmocka_unit_test(test_freed_futures_are_reused_and_returned_at_loop_free),
        cmocka_unit_test(test_a_canceller_decides_and_cancel_now_overrides_it),
        cmocka_unit_test(test_run_until_complete_returns_the_outcome_once_done),
        cmocka_unit_test(test_run_until_complete_is_edeadlk_when_the_loop_stops_first),
        cmocka_unit_test(test_run_until_complete_from_a_callback_is_ebusy),
        cmocka_unit_test(test_freeing_the_loop_releases_queued_callbacks_and_futures),
        cmocka_unit_test(test_every_allocation_failure_is_enomem_and_changes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
