/*
 * Every allocation of a loop goes through its allocator (loop_options:
 * realloc and alloc_ctx), so tests can fail each one in turn.  A leaf: it
 * calls nothing else of the core.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

void *loop__realloc(loop_t *loop, void *ptr, size_t size)
{
    if (loop->realloc)
        return loop->realloc(loop->alloc_ctx, ptr, size);
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
