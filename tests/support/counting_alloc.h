/*
 * A counting allocator for loop_options.realloc: it counts calls, live
 * blocks and bytes and their peak, notices frees of pointers it never
 * handed out, and fails on request (one chosen call, or every call from
 * some point on).  Not thread-safe: use it from the loop's thread.
 *
 *     struct counting_alloc a = {0};
 *     loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc,
 *                                              .alloc_ctx = &a});
 */
#ifndef LOOP_TESTS_ALLOC_H
#define LOOP_TESTS_ALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

struct counting_alloc {
    long calls;       /* allocating calls (size > 0), failed ones included */
    long fail_at;     /* fail this call (1-based), once; 0: never */
    long fail_from;   /* fail this call and every later one; 0: never */
    long failures;    /* calls failed on purpose so far */
    long live_blocks; /* blocks handed out and not freed */
    long live_bytes;
    long peak_bytes; /* the most live_bytes ever were */
    long bad_frees;  /* frees of pointers it never handed out */
};

/* Each block carries its size in front, aligned for anything. */
typedef union {
    max_align_t align;
    size_t size;
} counting_alloc_header;

static inline void *counting_realloc(void *ctx, void *ptr, size_t size)
{
    struct counting_alloc *a = ctx;
    counting_alloc_header *old = ptr ? (counting_alloc_header *)ptr - 1 : NULL;
    if (size == 0) {
        if (old) {
            if (a->live_blocks <= 0)
                a->bad_frees++;
            a->live_blocks--;
            a->live_bytes -= (long)old->size;
            free(old);
        }
        return NULL;
    }
    a->calls++;
    if ((a->fail_at && a->calls == a->fail_at) || (a->fail_from && a->calls >= a->fail_from)) {
        a->failures++;
        if (a->calls == a->fail_at)
            a->fail_at = 0; /* one failure: the loop must carry on after it */
        return NULL;
    }
    if (size > SIZE_MAX - sizeof(counting_alloc_header))
        return NULL;
    size_t old_size = old ? old->size : 0;
    counting_alloc_header *b = realloc(old, sizeof(counting_alloc_header) + size);
    if (!b)
        return NULL;
    if (!old)
        a->live_blocks++;
    a->live_bytes += (long)size - (long)old_size;
    if (a->live_bytes > a->peak_bytes)
        a->peak_bytes = a->live_bytes;
    b->size = size;
    return b + 1;
}

/* Let n more allocations succeed, then fail every one after them. */
static inline void counting_alloc_fail_after(struct counting_alloc *a, long n)
{
    a->fail_from = a->calls + n + 1;
}

/* Stop failing. */
static inline void counting_alloc_never_fail(struct counting_alloc *a)
{
    a->fail_at = 0;
    a->fail_from = 0;
}

#endif /* LOOP_TESTS_ALLOC_H */
