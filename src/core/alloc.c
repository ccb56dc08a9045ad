/*
 * Every allocation of a loop goes through its allocator (loop_options:
 * realloc and alloc_ctx), so tests can fail each one in turn; the layers
 * above use it too (loop_realloc), and keep their per-loop state as
 * attachments, released by loop_free.  A leaf: it calls nothing else of
 * the core.
 */
#include "alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void *libc_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, size);
}

void *loop__realloc(loop_t *loop, void *ptr, size_t size)
{
    if (loop->alloc.fn)
        return loop->alloc.fn(loop->alloc.ctx, ptr, size);
    return libc_realloc(NULL, ptr, size);
}

int loop_get_allocator(const loop_t *loop, void *(**realloc_fn)(void *, void *, size_t), void **ctx)
{
    if (!loop || !realloc_fn || !ctx)
        return -EINVAL;
    *realloc_fn = loop->alloc.fn ? loop->alloc.fn : libc_realloc;
    *ctx = loop->alloc.ctx;
    return 0;
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

void *loop_realloc(loop_t *loop, void *ptr, size_t size)
{
    return loop ? loop__realloc(loop, ptr, size) : NULL;
}

static struct loop__attachment *find(const loop_t *loop, const void *key)
{
    for (uint32_t i = 0; i < loop->alloc.nattached; i++)
        if (loop->alloc.attached[i].key == key)
            return &loop->alloc.attached[i];
    return NULL;
}

int loop_attach(loop_t *loop, const void *key, void *data, void (*release)(loop_t *, void *))
{
    if (!loop || !key)
        return -EINVAL;
    if (find(loop, key))
        return -EEXIST;
    struct loop__alloc *a = &loop->alloc;
    int err = loop__grow(loop, (void **)&a->attached, &a->attached_cap, sizeof(*a->attached),
                         a->nattached + 1);
    if (err)
        return err;
    a->attached[a->nattached++] = (struct loop__attachment){key, data, release};
    return 0;
}

void *loop_attached(const loop_t *loop, const void *key)
{
    const struct loop__attachment *at = loop && key ? find(loop, key) : NULL;
    return at ? at->data : NULL;
}

void *loop_attach_new(loop_t *loop, const void *key, size_t size, void (*release)(loop_t *, void *))
{
    if (!loop || !key || !size)
        return NULL;
    struct loop__attachment *at = find(loop, key);
    if (at)
        return at->data;
    void *data = loop__realloc(loop, NULL, size);
    if (!data)
        return NULL;
    memset(data, 0, size);
    if (loop_attach(loop, key, data, release)) {
        loop__realloc(loop, data, 0);
        return NULL;
    }
    return data;
}

int loop_detach(loop_t *loop, const void *key)
{
    struct loop__attachment *at = loop && key ? find(loop, key) : NULL;
    if (!at)
        return -ENOENT;
    struct loop__alloc *a = &loop->alloc;
    size_t after = (size_t)(a->attached + a->nattached - (at + 1));
    memmove(at, at + 1, after * sizeof(*at)); /* keep the order for release */
    a->nattached--;
    return 0;
}

/* loop_free: the last attached first; a release may attach or detach. */
void loop__attachments_release(loop_t *loop)
{
    struct loop__alloc *a = &loop->alloc;
    while (a->nattached) {
        struct loop__attachment at = a->attached[--a->nattached];
        if (at.release)
            at.release(loop, at.data);
    }
    loop__realloc(loop, a->attached, 0);
    a->attached = NULL;
    a->attached_cap = 0;
}
