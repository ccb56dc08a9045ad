/* ctest-link-options: -Wl,--wrap=getaddrinfo,--wrap=freeaddrinfo */
/*
 * Allocation failure in name resolution (loop_pool_getaddrinfo): each
 * allocation of a program that resolves names -- one read and freed, one
 * never read, one cancelled -- is failed in turn, and the call that fails
 * says -ENOMEM, a future that cannot get its list fails with -ENOMEM, and
 * no byte and no getaddrinfo() list is left once the loop is freed.  And a
 * future whose completion cannot be queued gets its list an iteration
 * later.  The pool's threads allocate nothing from the loop's allocator
 * here (this one is not thread-safe, and TSan would say so).
 */
#include "pool_testing.h"

#include "resolver_stub.h"

struct program {
    loop_future *read, *unread, *cancelled;
    int callbacks;
};

static void count_done(loop_future *f, void *arg)
{
    (void)f;
    ++*(int *)arg;
}

static int ask(loop_pool *p, const char *host, loop_future **f)
{
    int err = loop_pool_getaddrinfo(p, host, "80", NULL, f);
    assert_true(err == 0 || err == -ENOMEM);
    assert_true(err == 0 ? *f != NULL : *f == NULL);
    return err;
}

static bool ended(loop_pool *p, const struct program *pr)
{
    return pool_stats(p).outstanding == 0 && (!pr->read || loop_future_done(pr->read)) &&
           (!pr->unread || loop_future_done(pr->unread));
}

static void run_program(loop_t *l, struct program *pr)
{
    loop_pool *p = NULL;
    int err = loop_pool_default(l, &p);
    assert_true(err == 0 || err == -ENOMEM);
    if (err)
        return;
    if (ask(p, "localhost", &pr->read) == 0) /* completing it then queues a callback */
        assert_true(loop_future_add_done(pr->read, count_done, &pr->callbacks) != -EINVAL);
    ask(p, "127.0.0.1", &pr->unread);
    if (ask(p, "127.0.0.1", &pr->cancelled) == 0)
        assert_true(loop_future_cancel(pr->cancelled) >= 0); /* 0 if it was done already */
    for (int tries = 0; !ended(p, pr); tries++) {
        assert_true(tries < 100000);
        err = loop_run_once(l, 1000000);
        assert_true(err == 0 || err == -ENOMEM);
    }
    if (pr->read) {
        void *r = NULL;
        err = loop_future_result(pr->read, &r);
        if (err == 0) {
            assert_non_null(r);
            loop_pool_freeaddrinfo(l, r);
        } else {
            assert_int_equal(err, -ENOMEM); /* the copy could not be made */
        }
    }
    loop_future_unref(pr->read);
    loop_future_unref(pr->unread); /* its list, if any, is loop_free()'s */
    loop_future_unref(pr->cancelled);
}

static void test_each_failed_allocation_is_enomem_and_nothing_leaks(void **state)
{
    (void)state;
    long at = 1;
    for (;; at++) {
        struct counting_alloc a = {0};
        loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
        a.fail_at = a.calls + at;
        struct program pr = {0};
        run_program(l, &pr);
        assert_int_equal(loop_free(l), 0);
        assert_int_equal(a.live_blocks, 0);
        assert_int_equal(a.bad_frees, 0);
        assert_int_equal(stub_lists_alive(), 0);
        if (a.failures == 0)
            break; /* past the last allocation: the program ran whole */
        assert_true(at < 1000);
    }
    assert_true(at > 10);
}

/* Make every allocation fail from the moment the loop takes the finished
 * resolutions, until the iteration ends; fill the ready ring first if
 * asked, so that completing a future fails too (the reader's own entry
 * leaves one slot, which the first completion takes). */
struct filler {
    struct counting_alloc *a;
    bool fill;
};

static void fail_from_now(loop_t *loop, void *arg)
{
    struct filler *fl = arg;
    counting_alloc_fail_after(fl->a, 0);
    while (fl->fill && loop_call_soon(loop, nop_cb, NULL, NULL) == 0)
        ;
}

static void take_them_failing(loop_t *l, struct counting_alloc *a, loop_pool *p, bool fill)
{
    wait_until(pool_all_idle, p, "the resolutions to finish");
    wait_loop_readable(l);
    struct filler fl = {.a = a, .fill = fill};
    assert_int_equal(loop_call_soon(l, fail_from_now, &fl, NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_true(a->failures > 0);
    counting_alloc_never_fail(a);
}

static loop_t *strict_counted_loop(struct counting_alloc *a)
{
    return new_loop_with(
        (loop_options){.strict_poll = true, .realloc = counting_realloc, .alloc_ctx = a});
}

static void test_a_list_that_cannot_be_copied_fails_the_future_with_enomem_and_is_freed(void **s)
{
    (void)s;
    struct counting_alloc a = {0};
    loop_t *l = strict_counted_loop(&a);
    loop_pool *p = new_pool(l, 1);
    loop_future *f = NULL;
    assert_int_equal(loop_pool_getaddrinfo(p, "127.0.0.1", "80", NULL, &f), 0);
    take_them_failing(l, &a, p, false);
    assert_int_equal(loop_future_state(f), LOOP_FUTURE_FAILED);
    assert_int_equal(loop_future_result(f, NULL), -ENOMEM);
    assert_int_equal(stub_lists_alive(), 0);
    loop_future_unref(f);
    loop_pool_free(p);
    loop_free(l);
    assert_int_equal(a.live_blocks, 0);
}

static void
test_a_resolution_whose_future_cannot_complete_gets_its_list_an_iteration_later(void **s)
{
    (void)s;
    struct counting_alloc a = {0};
    loop_t *l = strict_counted_loop(&a);
    loop_pool *p = new_pool(l, 1);
    loop_future *f[2];
    int callbacks = 0;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(loop_pool_getaddrinfo(p, "127.0.0.1", "80", NULL, &f[i]), 0);
        assert_int_equal(loop_future_add_done(f[i], count_done, &callbacks), 0);
    }
    take_them_failing(l, &a, p, true);
    assert_int_equal(loop_future_result(f[0], NULL), -ENOMEM); /* took the last slot */
    assert_false(loop_future_done(f[1]));                      /* waits: nothing was lost */
    assert_int_equal(stub_lists_alive(), 1);
    void *r = NULL;
    assert_int_equal(loop_run_until_complete(l, f[1], &r), 0);
    assert_int_equal(((struct addrinfo *)r)->ai_family, AF_INET);
    loop_pool_freeaddrinfo(l, r);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(callbacks, 2);
    assert_int_equal(stub_lists_alive(), 0);
    for (int i = 0; i < 2; i++)
        loop_future_unref(f[i]);
    loop_pool_free(p);
    loop_free(l);
    assert_int_equal(a.live_blocks, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_failed_allocation_is_enomem_and_nothing_leaks),
        cmocka_unit_test(
            test_a_list_that_cannot_be_copied_fails_the_future_with_enomem_and_is_freed),
        cmocka_unit_test(
            test_a_resolution_whose_future_cannot_complete_gets_its_list_an_iteration_later),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
