/*
 * Coroutine stacks (DESIGN §5.2): the size asked for (or the default) is
 * usable; pages are committed only when touched; freed stacks are pooled
 * per thread and reused, the pool is bounded, trimmed on request and
 * emptied when its thread exits; 10,000 coroutines can be alive at once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>

#include "coro_testing.h"
#include "loop_coro.h"

#define V(n) ((void *)(uintptr_t)(n))
#define KiB ((size_t)1024)

/* Use about `bytes` of stack in 1 KiB frames, then return depth. */
static __attribute__((noinline)) size_t use_stack(size_t bytes)
{
    volatile char buf[1024];

    buf[0] = 1;
    buf[sizeof(buf) - 1] = 2;
    if (bytes <= sizeof(buf))
        return 1;
    return use_stack(bytes - sizeof(buf)) + (size_t)buf[0];
}

static void *stack_user(void *arg, void *first)
{
    (void)arg;
    return V(use_stack((size_t)(uintptr_t)first));
}

/*
 * Run a coroutine of stack size `size` that uses `use` bytes in 1 KiB
 * buffers (frames are larger: callers ask for 3/4 of the size); 1 if it
 * returned.  AddressSanitizer's redzones make each frame up to twice as
 * large, so it is asked to use half that.
 */
static bool runs_with(size_t size, size_t use)
{
    if (TEST_ASAN)
        use /= 2;
    loop_coro *c;
    void *out = NULL;

    if (loop_coro_new(&c, stack_user, NULL, size) != 0)
        return false;
    bool ok = loop_coro_resume(c, V(use), &out) == 0 && out != NULL;
    return loop_coro_free(c) == 0 && ok;
}

static void the_stack_size_asked_for_is_usable(void **state)
{
    (void)state;
    assert_true(runs_with(64 * KiB, 48 * KiB));
    assert_true(runs_with(1024 * KiB, 768 * KiB));
}

static void stack_size_zero_gives_the_default(void **state)
{
    (void)state;
    assert_true(runs_with(0, LOOP_CORO_STACK_DEFAULT / 4 * 3));
}

static void sizes_below_the_minimum_are_raised_to_it(void **state)
{
    (void)state;
    assert_true(runs_with(1, LOOP_CORO_STACK_MIN / 4 * 3));
}

static void *small_yielder(void *arg, void *first)
{
    (void)arg;
    loop_coro_yield(first, NULL);
    return NULL;
}

static void stack_pages_are_committed_only_when_touched(void **state)
{
    (void)state;
    loop_coro *c;
    size_t page = test_page();

    loop_coro_pool_trim(); /* a fresh stack, not one touched before */
    assert_int_equal(loop_coro_new(&c, small_yielder, NULL, 4096 * KiB), 0);
    assert_int_equal(loop_coro_resume(c, NULL, NULL), 1);
    char *top = (char *)(((uintptr_t)c + page) & ~(uintptr_t)(page - 1));
    long resident = resident_pages(top - 4096 * KiB, top);
    assert_true(resident >= 1);
    assert_true(resident <= 4); /* of 1024 */
    assert_int_equal(loop_coro_free(c), 0);
    loop_coro_pool_trim();
}

static void a_freed_stack_is_reused_by_the_next_coroutine_of_its_size(void **state)
{
    (void)state;
    loop_coro *a, *b, *other;

    loop_coro_pool_trim();
    assert_int_equal(loop_coro_new(&a, small_yielder, NULL, 0), 0);
    assert_int_equal(loop_coro_resume(a, V(1), NULL), 1);
    assert_int_equal(loop_coro_free(a), 0); /* suspended: freed without unwinding */
    assert_int_equal(loop_coro_new(&other, small_yielder, NULL, 128 * KiB), 0);
    assert_ptr_not_equal(other, a); /* another size: not that stack */
    assert_int_equal(loop_coro_new(&b, small_yielder, NULL, 0), 0);
    assert_ptr_equal(b, a);
    assert_int_equal(loop_coro_status(b), LOOP_CORO_SUSPENDED);
    void *out;
    assert_int_equal(loop_coro_resume(b, V(2), &out), 1); /* a fresh start */
    assert_ptr_equal(out, V(2));
    assert_int_equal(loop_coro_free(b), 0);
    assert_int_equal(loop_coro_free(other), 0);
    assert_int_equal(loop_coro_pool_trim(), 2);
}

static void pool_trim_unmaps_the_pooled_stacks(void **state)
{
    (void)state;
    loop_coro *c;

    loop_coro_pool_trim();
    assert_int_equal(loop_coro_new(&c, small_yielder, NULL, 0), 0);
    assert_true(page_mapped(c));
    assert_int_equal(loop_coro_free(c), 0);
    assert_true(page_mapped(c)); /* pooled */
    assert_int_equal(loop_coro_pool_trim(), 1);
    assert_false(page_mapped(c));
    assert_int_equal(loop_coro_pool_trim(), 0);
}

static void the_pool_keeps_at_most_its_limit(void **state)
{
    (void)state;
    loop_coro *cs[5];

    loop_coro_pool_trim();
    assert_int_equal(loop_coro_pool_limit(2), LOOP_CORO_POOL_DEFAULT);
    for (int i = 0; i < 5; i++)
        assert_int_equal(loop_coro_new(&cs[i], small_yielder, NULL, 0), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(loop_coro_free(cs[i]), 0);
    assert_false(page_mapped(cs[2])); /* the pool was full: unmapped at once */
    assert_int_equal(loop_coro_pool_trim(), 2);
    /* Lowering the limit unmaps what is above it now. */
    assert_int_equal(loop_coro_pool_limit(5), 2);
    for (int i = 0; i < 5; i++)
        assert_int_equal(loop_coro_new(&cs[i], small_yielder, NULL, 0), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(loop_coro_free(cs[i]), 0);
    assert_int_equal(loop_coro_pool_limit(1), 5);
    assert_int_equal(loop_coro_pool_trim(), 1);
    /* 0 turns pooling off. */
    assert_int_equal(loop_coro_pool_limit(0), 1);
    assert_int_equal(loop_coro_new(&cs[0], small_yielder, NULL, 0), 0);
    assert_int_equal(loop_coro_free(cs[0]), 0);
    assert_false(page_mapped(cs[0]));
    assert_int_equal(loop_coro_pool_limit(LOOP_CORO_POOL_DEFAULT), 0);
}

struct thread_run {
    loop_coro *freed;  /* a coroutine freed on the thread, so pooled there */
    size_t other_trim; /* what loop_coro_pool_trim() said on the thread */
    int err;
};

static void *thread_main(void *arg)
{
    struct thread_run *t = arg;

    t->other_trim = loop_coro_pool_trim(); /* not the main thread's pool */
    t->err = loop_coro_new(&t->freed, small_yielder, NULL, 0);
    if (t->err == 0)
        t->err = loop_coro_free(t->freed);
    return NULL;
}

static void each_thread_has_its_own_pool_emptied_when_it_exits(void **state)
{
    (void)state;
    struct thread_run t = {0};
    loop_coro *mine;
    pthread_t th;

    loop_coro_pool_trim();
    assert_int_equal(loop_coro_new(&mine, small_yielder, NULL, 0), 0);
    assert_int_equal(loop_coro_free(mine), 0); /* in the main thread's pool */
    assert_int_equal(pthread_create(&th, NULL, thread_main, &t), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(t.err, 0);
    assert_int_equal(t.other_trim, 0);
    assert_ptr_not_equal(t.freed, mine);
    assert_false(page_mapped(t.freed)); /* released when its thread exited */
    assert_true(page_mapped(mine));
    assert_int_equal(loop_coro_pool_trim(), 1);
}

#define ALIVE 10000

static void *echo_index(void *arg, void *first)
{
    uintptr_t i = (uintptr_t)arg;
    void *in = first;

    while (in == V(i))
        loop_coro_yield(V(i * 2 + 1), &in);
    return in;
}

static void ten_thousand_coroutines_are_alive_at_once(void **state)
{
    (void)state;
    static loop_coro *cs[ALIVE];
    void *out;

    for (uintptr_t i = 0; i < ALIVE; i++) {
        assert_int_equal(loop_coro_new(&cs[i], echo_index, V(i), 0), 0);
        assert_int_equal(loop_coro_resume(cs[i], V(i), &out), 1);
        assert_ptr_equal(out, V(i * 2 + 1));
    }
    for (uintptr_t i = ALIVE; i-- > 0;) {
        assert_int_equal(loop_coro_resume(cs[i], V(i), &out), 1);
        assert_ptr_equal(out, V(i * 2 + 1));
    }
    for (uintptr_t i = 0; i < ALIVE; i++) {
        assert_int_equal(loop_coro_resume(cs[i], V(i + 1), &out), 0);
        assert_ptr_equal(out, V(i + 1));
        assert_int_equal(loop_coro_free(cs[i]), 0);
    }
    loop_coro_pool_trim();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_stack_size_asked_for_is_usable),
        cmocka_unit_test(stack_size_zero_gives_the_default),
        cmocka_unit_test(sizes_below_the_minimum_are_raised_to_it),
        cmocka_unit_test(stack_pages_are_committed_only_when_touched),
        cmocka_unit_test(a_freed_stack_is_reused_by_the_next_coroutine_of_its_size),
        cmocka_unit_test(pool_trim_unmaps_the_pooled_stacks),
        cmocka_unit_test(the_pool_keeps_at_most_its_limit),
        cmocka_unit_test(each_thread_has_its_own_pool_emptied_when_it_exits),
        cmocka_unit_test(ten_thousand_coroutines_are_alive_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
