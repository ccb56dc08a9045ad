/*
 * Every allocation of a loop goes through its allocator (loop_options:
 * realloc and alloc_ctx), so tests can fail each one in turn.  A leaf: it
 * calls nothing else of the core.
 */
#include "alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void *loop__realloc(loop_t *loop, void *ptr, size_t size)
{
    if (loop->alloc.fn)
        return loop->alloc.fn(loop->alloc.ctx, ptr, size);
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, size);
}

/* Grow *arr (of *cap elements) by doubling until it holds need elements. */
int loop__grow_slow(loop_t *loop, void **arr, uint32_t *cap, size_t elem, uint32_t need)
{
    uint64_t ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    if (ncap > UINT32_MAX || ncap > SIZE_MAX / elem)
        return -ENOMEM;
    void *p = loop__realloc(loop, *arr, (size_t)ncap * elem);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = (uint32_t)ncap;
    return 0;
}

/* loop__grow, and the elements it adds are zero: for side arrays that are
 * indexed like another and read as 0 where never written. */
int loop__grow_zero(loop_t *loop, void **arr, uint32_t *cap, size_t elem, uint32_t need)
{
    uint32_t old = *cap;
    int err = loop__grow(loop, arr, cap, elem, need);
    if (!err && *cap > old)
        memset((char *)*arr + (size_t)old * elem, 0, (size_t)(*cap - old) * elem);
    return err;
}
