/* Allocation through the loop's allocator (alloc.c): a leaf module. */
#ifndef LOOP_CORE_ALLOC_H
#define LOOP_CORE_ALLOC_H

#include "internal.h"

/* realloc through loop_options.realloc, or libc; size 0 frees. */
void *loop__realloc(loop_t *loop, void *ptr, size_t size);
int loop__grow_slow(loop_t *loop, void **arr, uint32_t *cap, size_t elem, uint32_t need);
void loop__attachments_release(loop_t *loop);
int loop__grow_zero(loop_t *loop, void **arr, uint32_t *cap, size_t elem, uint32_t need);

/* Make *arr (of *cap elements) hold need elements, growing it by doubling. */
static inline int loop__grow(loop_t *loop, void **arr, uint32_t *cap, size_t elem, uint32_t need)
{
    return need <= *cap ? 0 : loop__grow_slow(loop, arr, cap, elem, need);
}

#endif
