/*
 * The tools stay usable inside coroutines (DESIGN §5.2): under
 * AddressSanitizer, code that leaves frames without returning (longjmp)
 * inside a coroutine leaves no poisoned stack behind, which needs ASan to
 * know the coroutine's stack (the fiber annotations); the values and
 * frames used after it are those of the coroutine.  Without ASan the same
 * test checks that longjmp within a coroutine's stack works.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "loop_coro.h"

#define V(n) ((void *)(uintptr_t)(n))

static jmp_buf escape;

/* A frame with arrays (redzones, under ASan) that is left by longjmp. */
static __attribute__((noinline)) void leave_by_longjmp(int depth)
{
    volatile char big[1024];

    if (depth < 0)
        return;
    memset((char *)big, depth, sizeof(big));
    if (depth == 0)
        longjmp(escape, 1);
    leave_by_longjmp(depth - 1);
}

/* Frames over the same addresses, touching every byte of their arrays. */
static __attribute__((noinline)) int reuse_the_stack(int depth)
{
    volatile char big[1500];
    int sum = 0;

    memset((char *)big, 1, sizeof(big));
    for (size_t i = 0; i < sizeof(big); i++)
        sum += big[i];
    return depth > 0 ? sum + reuse_the_stack(depth - 1) : sum;
}

static void *jumper(void *arg, void *first)
{
    int *sum = arg;
    (void)first;

    for (int round = 0; round < 3; round++) {
        if (setjmp(escape) == 0)
            leave_by_longjmp(8);
        *sum += reuse_the_stack(8);
        loop_coro_yield(V(round), NULL);
    }
    return NULL;
}

static void longjmp_inside_a_coroutine_leaves_its_stack_usable(void **state)
{
    (void)state;
    loop_coro *c;
    int sum = 0;
    void *out;

    assert_int_equal(loop_coro_new(&c, jumper, &sum, 0), 0);
    for (int round = 0; round < 3; round++) {
        assert_int_equal(loop_coro_resume(c, NULL, &out), 1);
        assert_ptr_equal(out, V(round));
    }
    assert_int_equal(loop_coro_resume(c, NULL, NULL), 0);
    assert_int_equal(sum, 3 * 9 * 1500);
    assert_int_equal(loop_coro_free(c), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(longjmp_inside_a_coroutine_leaves_its_stack_usable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
