/*
 * What the layers above the core build on: the loop's allocator
 * (loop_realloc) and per-loop attachments released by loop_free.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"

struct counting {
    long live;
    long calls;
    bool fail;
};

static void *counting_realloc(void *ctx, void *ptr, size_t size)
{
    struct counting *c = ctx;
    c->calls++;
    if (size && c->fail)
        return NULL;
    if (!ptr && size)
        c->live++;
    if (ptr && !size)
        c->live--;
    if (!size) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, size);
}

static void test_loop_realloc_goes_through_the_loops_allocator(void **state)
{
    (void)state;
    struct counting c = {0};
    loop_t *l;
    assert_int_equal(loop_new_with(&l, &(loop_options){.realloc = counting_realloc, .alloc_ctx = &c}),
                     0);
    long live = c.live, calls = c.calls;
    char *p = loop_realloc(l, NULL, 100);
    assert_non_null(p);
    assert_int_equal(c.live, live + 1);
    p = loop_realloc(l, p, 1000);
    assert_non_null(p);
    assert_null(loop_realloc(l, p, 0));
    assert_int_equal(c.live, live);
    assert_int_equal(c.calls, calls + 3);
    c.fail = true;
    assert_null(loop_realloc(l, NULL, 10));
    c.fail = false;
    assert_null(loop_realloc(NULL, NULL, 10));

    /* The allocator itself, for memory that outlives the loop. */
    void *(*fn)(void *, void *, size_t) = NULL;
    void *ctx = NULL;
    assert_int_equal(loop_get_allocator(l, &fn, &ctx), 0);
    assert_ptr_equal(fn, counting_realloc);
    assert_ptr_equal(ctx, &c);
    assert_int_equal(loop_get_allocator(NULL, &fn, &ctx), -EINVAL);
    assert_int_equal(loop_get_allocator(l, NULL, &ctx), -EINVAL);
    assert_int_equal(loop_get_allocator(l, &fn, NULL), -EINVAL);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(c.live, 0);

    /* Without one: libc's, through a function that frees on size 0. */
    assert_int_equal(loop_new(&l), 0);
    assert_int_equal(loop_get_allocator(l, &fn, &ctx), 0);
    assert_non_null(fn);
    void *p2 = fn(ctx, NULL, 64);
    assert_non_null(p2);
    assert_null(fn(ctx, p2, 0));
    assert_int_equal(loop_free(l), 0);
}

static char order[8];
static size_t norder;

static void release(loop_t *loop, void *data)
{
    assert_non_null(loop);
    order[norder++] = *(const char *)data;
    /* The loop is still usable for its allocator. */
    void *p = loop_realloc(loop, NULL, 8);
    assert_non_null(p);
    loop_realloc(loop, p, 0);
}

static const int key_a = 0, key_b = 0, key_c = 0;

static void test_attachments_are_found_by_key_and_released_last_first(void **state)
{
    (void)state;
    loop_t *l;
    assert_int_equal(loop_new(&l), 0);
    norder = 0;
    assert_int_equal(loop_attach(l, &key_a, "a", release), 0);
    assert_int_equal(loop_attach(l, &key_b, "b", release), 0);
    assert_int_equal(loop_attach(l, &key_c, "c", release), 0);
    assert_int_equal(loop_attach(l, &key_b, "x", release), -EEXIST);
    assert_string_equal(loop_attached(l, &key_b), "b");
    assert_null(loop_attached(l, &norder));
    assert_int_equal(loop_detach(l, &key_b), 0); /* not released */
    assert_int_equal(loop_detach(l, &key_b), -ENOENT);
    assert_null(loop_attached(l, &key_b));
    assert_int_equal(loop_attach(l, &key_b, "b", NULL), 0); /* no release: fine */
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(norder, 2);
    assert_memory_equal(order, "ca", 2);
}

static void test_attach_rejects_bad_input_and_survives_allocation_failure(void **state)
{
    (void)state;
    struct counting c = {0};
    loop_t *l;
    assert_int_equal(loop_new_with(&l, &(loop_options){.realloc = counting_realloc, .alloc_ctx = &c}),
                     0);
    assert_int_equal(loop_attach(NULL, &key_a, "a", release), -EINVAL);
    assert_int_equal(loop_attach(l, NULL, "a", release), -EINVAL);
    assert_null(loop_attached(NULL, &key_a));
    assert_null(loop_attached(l, NULL));
    assert_int_equal(loop_detach(NULL, &key_a), -ENOENT);
    c.fail = true;
    assert_int_equal(loop_attach(l, &key_a, "a", release), -ENOMEM);
    c.fail = false;
    assert_null(loop_attached(l, &key_a));
    norder = 0;
    assert_int_equal(loop_attach(l, &key_a, "a", release), 0);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(norder, 1);
    assert_int_equal(c.live, 0);
}

static void free_with_loop(loop_t *loop, void *data)
{
    norder++;
    loop_realloc(loop, data, 0);
}

static void test_attach_new_makes_zeroed_data_once_and_fails_cleanly(void **state)
{
    (void)state;
    struct counting c = {0};
    loop_t *l;
    assert_int_equal(loop_new_with(&l, &(loop_options){.realloc = counting_realloc, .alloc_ctx = &c}),
                     0);
    long live = c.live;
    c.fail = true;
    assert_null(loop_attach_new(l, &key_a, 64, free_with_loop)); /* no memory: nothing attached */
    c.fail = false;
    assert_null(loop_attached(l, &key_a));
    assert_int_equal(c.live, live);

    unsigned char *d = loop_attach_new(l, &key_a, 64, free_with_loop);
    assert_non_null(d);
    for (int i = 0; i < 64; i++)
        assert_int_equal(d[i], 0);
    d[0] = 7;
    assert_ptr_equal(loop_attach_new(l, &key_a, 64, free_with_loop), d); /* the same, kept */
    assert_int_equal(d[0], 7);
    assert_ptr_equal(loop_attached(l, &key_a), d);

    assert_null(loop_attach_new(NULL, &key_b, 8, free_with_loop));
    assert_null(loop_attach_new(l, NULL, 8, free_with_loop));
    assert_null(loop_attach_new(l, &key_b, 0, free_with_loop));
    norder = 0;
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(norder, 1);
    assert_int_equal(c.live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_realloc_goes_through_the_loops_allocator),
        cmocka_unit_test(test_attachments_are_found_by_key_and_released_last_first),
        cmocka_unit_test(test_attach_rejects_bad_input_and_survives_allocation_failure),
        cmocka_unit_test(test_attach_new_makes_zeroed_data_once_and_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
