/*
 * Guard pages and the mapping budget (DESIGN §5.2): a stack overflow is a
 * SIGSEGV on the guard below the stack, never silent corruption; with
 * MADV_GUARD_INSTALL stacks do not cost a mapping each, and without it
 * (the mprotect fallback, reached here by making the kernel refuse the
 * advice) an exhausted vm.max_map_count is a clean -ENOMEM after which
 * everything still works.  A failed stack mmap is -ENOMEM too.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "coro_testing.h"
#include "loop_coro.h"

#define V(n) ((void *)(uintptr_t)(n))
#define SMALL_STACK ((size_t)64 * 1024)
#define GUARD_PAGES 4 /* as documented in loop_coro.h */

static volatile int dive_limit = 1 << 30;
static char *guard_lo, *guard_hi;

/* Recurse until the stack runs out (the limit is never reached). */
static __attribute__((noinline)) int dive(volatile char *prev, int depth)
{
    volatile char buf[512];

    buf[0] = (char)depth;
    buf[sizeof(buf) - 1] = prev != NULL ? prev[0] : 0;
    if (depth > dive_limit)
        return 0;
    return dive(buf, depth + 1) + buf[100];
}

static void *diver(void *arg, void *first)
{
    (void)arg;
    (void)first;
    return V(dive(NULL, 0));
}

static void on_segv(int signo, siginfo_t *si, void *ctx)
{
    (void)signo;
    (void)ctx;
    char *a = si->si_addr;
    _exit(a >= guard_lo && a < guard_hi ? 42 : 43);
}

/* The child: overflow a coroutine's stack; exit 42 if the fault hit its guard. */
static void overflow_child(void *arg)
{
    bool fallback = arg != NULL;
    static char altstack[256 * 1024];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};
    struct sigaction sa = {.sa_sigaction = on_segv, .sa_flags = SA_SIGINFO | SA_ONSTACK};
    loop_coro *c;

    if (fallback)
        CHILD_CHECK(refuse_guard_install() == 0);
    CHILD_CHECK(sigaltstack(&ss, NULL) == 0);
    CHILD_CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
    CHILD_CHECK(loop_coro_new(&c, diver, NULL, SMALL_STACK) == 0);
    /* The usable part is at least SMALL_STACK and less than a page more. */
    guard_hi = (char *)c - SMALL_STACK;
    guard_lo = guard_hi - test_page() - GUARD_PAGES * test_page();
    loop_coro_resume(c, NULL, NULL);
    _exit(2); /* the overflow went unnoticed */
}

static void expect_overflow_on_the_guard(bool fallback)
{
    int status = run_in_child(overflow_child, fallback ? V(1) : NULL);

    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 42);
}

static void overflow_is_a_sigsegv_on_the_guard_below_the_stack(void **state)
{
    (void)state;
    expect_overflow_on_the_guard(false);
}

static void overflow_is_a_sigsegv_on_the_guard_with_the_mprotect_fallback(void **state)
{
    (void)state;
    expect_overflow_on_the_guard(true);
}

static void overflow_child_without_handler(void *arg)
{
    loop_coro *c;

    if (arg != NULL)
        CHILD_CHECK(refuse_guard_install() == 0);
    CHILD_CHECK(loop_coro_new(&c, diver, NULL, SMALL_STACK) == 0);
    loop_coro_resume(c, NULL, NULL);
    _exit(2);
}

static void overflow_without_a_handler_kills_the_process_with_sigsegv(void **state)
{
    (void)state;
    if (TEST_ASAN)
        skip(); /* AddressSanitizer reports the overflow and exits instead */
    for (int fallback = 0; fallback < 2; fallback++) {
        int status = run_in_child(overflow_child_without_handler, fallback ? V(1) : NULL);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGSEGV);
    }
}

static void *yield_once(void *arg, void *first)
{
    (void)arg;
    void *in;
    loop_coro_yield(first, &in);
    return in;
}

static bool kernel_has_guard_install(void)
{
    size_t page = test_page();
    void *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bool ok = p != MAP_FAILED && madvise(p, page, 102) == 0;

    if (p != MAP_FAILED)
        munmap(p, 2 * page);
    return ok;
}

#define MANY 200

/*
 * Create MANY coroutines and resume each once; return how many mappings
 * hold their stacks and guards (addrs: room for 2 * MANY addresses).
 */
static long mappings_of_many(loop_coro **cs, void **addrs)
{
    for (int i = 0; i < MANY; i++) {
        if (loop_coro_new(&cs[i], yield_once, NULL, SMALL_STACK) != 0)
            return -1;
        if (loop_coro_resume(cs[i], V(i), NULL) != 1)
            return -1;
        addrs[2 * i] = cs[i];                                             /* its top */
        addrs[2 * i + 1] = (char *)cs[i] - SMALL_STACK - 2 * test_page(); /* its guard */
    }
    return mappings_holding(addrs, 2 * MANY);
}

static void with_guard_install_stacks_do_not_cost_a_mapping_each(void **state)
{
    (void)state;
    static loop_coro *cs[MANY];
    static void *addrs[2 * MANY];

    if (!kernel_has_guard_install())
        skip(); /* the kernel is older than 6.13: the fallback test covers it */
    if (TEST_ASAN)
        skip(); /* its fake stack per coroutine lands between the stacks */
    loop_coro_pool_trim();
    long n = mappings_of_many(cs, addrs);
    assert_true(n >= 1);
    assert_true(n < MANY / 10);
    for (int i = 0; i < MANY; i++)
        assert_int_equal(loop_coro_free(cs[i]), 0);
    loop_coro_pool_trim();
}

static void fallback_mappings_child(void *arg)
{
    static loop_coro *cs[MANY];
    static void *addrs[2 * MANY];
    (void)arg;

    CHILD_CHECK(refuse_guard_install() == 0);
    CHILD_CHECK(loop_coro_pool_limit(0) == LOOP_CORO_POOL_DEFAULT); /* fresh stacks */
    CHILD_CHECK(mappings_of_many(cs, addrs) == 2 * MANY);           /* stack and guard: two each */
    for (int i = 0; i < MANY; i++)
        CHILD_CHECK(loop_coro_free(cs[i]) == 0);
    _exit(0);
}

static void with_the_mprotect_fallback_each_stack_costs_two_mappings(void **state)
{
    (void)state;
    int status = run_in_child(fallback_mappings_child, NULL);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

#define MAP_LIMIT_TRIES 70000

static void map_count_child(void *arg)
{
    loop_coro **cs = calloc(MAP_LIMIT_TRIES, sizeof(*cs));
    int n = 0, err = 0;
    void *out;
    (void)arg;

    CHILD_CHECK(cs != NULL);
    CHILD_CHECK(refuse_guard_install() == 0);
    CHILD_CHECK(loop_coro_pool_limit(0) == LOOP_CORO_POOL_DEFAULT);
    while (n < MAP_LIMIT_TRIES && (err = loop_coro_new(&cs[n], yield_once, NULL, 0)) == 0)
        n++;
    CHILD_CHECK(err == -ENOMEM);
    CHILD_CHECK(n > 1000);
    /* Still usable: the coroutines that exist run, and freeing makes room. */
    CHILD_CHECK(loop_coro_resume(cs[0], V(1), &out) == 1 && out == V(1));
    CHILD_CHECK(loop_coro_resume(cs[0], V(2), &out) == 0 && out == V(2));
    for (int i = 0; i < 10; i++)
        CHILD_CHECK(loop_coro_free(cs[--n]) == 0);
    CHILD_CHECK(loop_coro_new(&cs[n], yield_once, NULL, 0) == 0);
    CHILD_CHECK(loop_coro_resume(cs[n], V(3), &out) == 1 && out == V(3));
    n++;
    while (n > 0)
        CHILD_CHECK(loop_coro_free(cs[--n]) == 0);
    free(cs);
    _exit(0);
}

static void an_exhausted_map_count_is_enomem_and_everything_stays_usable(void **state)
{
    (void)state;
    if (under_valgrind() || TEST_ASAN)
        skip(); /* they need mappings of their own, and fail without them */
    int status = run_in_child(map_count_child, NULL);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void mmap_failure_child(void *arg)
{
    loop_coro *c, *d = V(0x1234);
    void *out;
    (void)arg;

    loop_coro_pool_limit(0); /* nothing pooled: the next stack needs an mmap */
    loop_coro_pool_limit(4);
    CHILD_CHECK(loop_coro_new(&c, yield_once, NULL, 0) == 0);
    CHILD_CHECK(loop_coro_resume(c, V(1), &out) == 1);
    CHILD_CHECK(refuse_stack_mmap() == 0);
    CHILD_CHECK(loop_coro_new(&d, yield_once, NULL, 0) == -ENOMEM);
    CHILD_CHECK(d == V(0x1234));
    CHILD_CHECK(loop_coro_resume(c, V(2), &out) == 0 && out == V(2));
    CHILD_CHECK(loop_coro_free(c) == 0); /* to the pool */
    CHILD_CHECK(loop_coro_new(&d, yield_once, NULL, 0) == 0);
    CHILD_CHECK(loop_coro_resume(d, V(3), &out) == 1 && out == V(3));
    CHILD_CHECK(loop_coro_free(d) == 0);
    _exit(0);
}

static void a_failed_stack_mmap_is_enomem_and_everything_stays_usable(void **state)
{
    (void)state;
    int status = run_in_child(mmap_failure_child, NULL);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(overflow_is_a_sigsegv_on_the_guard_below_the_stack),
        cmocka_unit_test(overflow_is_a_sigsegv_on_the_guard_with_the_mprotect_fallback),
        cmocka_unit_test(overflow_without_a_handler_kills_the_process_with_sigsegv),
        cmocka_unit_test(with_guard_install_stacks_do_not_cost_a_mapping_each),
        cmocka_unit_test(with_the_mprotect_fallback_each_stack_costs_two_mappings),
        cmocka_unit_test(an_exhausted_map_count_is_enomem_and_everything_stays_usable),
        cmocka_unit_test(a_failed_stack_mmap_is_enomem_and_everything_stays_usable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
