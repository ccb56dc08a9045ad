/*
 * Coroutine stacks: mmap'd, committed lazily by the kernel, a guard below
 * each, kept in a per-thread pool for reuse (the shape of libdill's
 * stack.c).
 *
 * The guard.  A PROT_NONE page range splits a stack's mapping in two, so
 * each stack costs two of the vm.max_map_count (65530) mappings a process
 * may have: a program with 40,000 coroutines would fail.  Linux 6.13's
 * MADV_GUARD_INSTALL puts markers in the page tables instead: the range
 * stays part of its mapping, and stacks mapped next to each other merge
 * into one mapping.  It is tried once per thread; a kernel without it
 * (EINVAL), or an madvise() that accepts anything (an emulator), makes
 * this thread fall back to mprotect, whose ENOMEM at the map limit is
 * returned as such.
 */
#include "coro_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#if LOOP_CORO_ASAN
#include <sanitizer/asan_interface.h>
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define LOOP_CORO_VALGRIND 1
#endif
#endif
#ifndef LOOP_CORO_VALGRIND
#define LOOP_CORO_VALGRIND 0
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define GUARD_PAGES 4

enum guard_kind { GUARD_UNKNOWN, GUARD_MADVISE, GUARD_MPROTECT };

/*
 * A pooled stack is listed through the struct loop__stack inside the
 * struct loop_coro at its top, left there by loop_coro_free(): taking it
 * back copies nothing.
 */
/* (cppcheck 2.10 misses the uses of members of a _Thread_local struct.) */
struct stack_pool {
    struct loop__stack *head;
    size_t count;
    /* cppcheck-suppress unusedStructMember */
    size_t limit;
    /* cppcheck-suppress unusedStructMember */
    size_t page; /* the page size, read once per thread */
    /* cppcheck-suppress unusedStructMember */
    bool registered; /* with the thread-exit destructor */
    /* cppcheck-suppress unusedStructMember */
    enum guard_kind guard;
};

static _Thread_local struct stack_pool pool = {.limit = LOOP_CORO_POOL_DEFAULT};
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t pool_key;
static bool key_ok;

static __attribute__((noinline, cold)) size_t read_page_size(void)
{
    long n = sysconf(_SC_PAGESIZE);

    pool.page = n > 0 ? (size_t)n : 4096;
    return pool.page;
}

static size_t page_size(void)
{
    return pool.page != 0 ? pool.page : read_page_size();
}

size_t loop__stack_guard_size(void)
{
    return GUARD_PAGES * page_size();
}

/* Where a mapping's struct loop_coro goes. */
static loop_coro *coro_of(char *map, size_t map_size)
{
    return (loop_coro *)(map + map_size - LOOP__CORO_HEAD);
}

/* st may live in the mapping: it is read before the munmap. */
static void unmap(const struct loop__stack *st)
{
    char *map = st->map;
    size_t map_size = st->map_size;

#if LOOP_CORO_VALGRIND
    VALGRIND_STACK_DEREGISTER(st->vg_id);
#endif
    munmap(map, map_size);
}

static void release_all(struct stack_pool *p, size_t keep)
{
    while (p->count > keep) {
        struct loop__stack *st = p->head;

        p->head = st->next;
        p->count--;
        unmap(st);
    }
}

/* Threads that exit give their pooled stacks back to the kernel. */
static void pool_destructor(void *arg)
{
    release_all(arg, 0);
}

static void make_key(void)
{
    key_ok = pthread_key_create(&pool_key, pool_destructor) == 0;
}

/*
 * Whether madvise() tells the truth: an emulator (qemu-user 7) answers 0
 * to every advice, doing nothing, which would leave stacks unguarded.  A
 * kernel refuses an advice that does not exist.
 */
static bool madvise_is_honest(char *map)
{
    return madvise(map, page_size(), 0x7fff) != 0;
}

static int install_guard(char *map, size_t guard)
{
    if (pool.guard == GUARD_UNKNOWN && !madvise_is_honest(map))
        pool.guard = GUARD_MPROTECT;
    if (pool.guard != GUARD_MPROTECT) {
        if (madvise(map, guard, MADV_GUARD_INSTALL) == 0) {
            pool.guard = GUARD_MADVISE;
            return 0;
        }
        if (errno != EINVAL)
            return -errno;
        /* The kernel does not know the advice (or refuses it for this
         * mapping, as under mlockall(MCL_FUTURE)): mprotect always works. */
        pool.guard = GUARD_MPROTECT;
    }
    return mprotect(map, guard, PROT_NONE) == 0 ? 0 : -errno;
}

static __attribute__((noinline)) loop_coro *map_stack(size_t map_size)
{
    size_t guard = loop__stack_guard_size();
    char *map = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);

    if (map == MAP_FAILED)
        return NULL; /* memory, address space or the map count */
    if (install_guard(map, guard) < 0) {
        munmap(map, map_size);
        return NULL; /* ENOMEM (the map count) or EAGAIN: out of resources */
    }
#ifdef MADV_NOHUGEPAGE
    /* A huge page would commit 2 MiB to a coroutine that touches 4 KiB. */
    madvise(map, map_size, MADV_NOHUGEPAGE);
#endif
    loop_coro *c = coro_of(map, map_size);
    c->stack.map = map;
    c->stack.map_size = map_size;
#if LOOP_CORO_VALGRIND
    c->stack.vg_id = VALGRIND_STACK_REGISTER(map + guard, map + map_size);
#else
    c->stack.vg_id = 0;
#endif
    return c;
}

loop_coro *loop__stack_take(size_t size)
{
    size_t page = page_size();
    size_t map_size = ((size + LOOP__CORO_HEAD + page - 1) & ~(page - 1)) + GUARD_PAGES * page;

    for (struct loop__stack **link = &pool.head; *link != NULL; link = &(*link)->next) {
        struct loop__stack *st = *link;

        if (st->map_size == map_size) {
            *link = st->next;
            pool.count--;
            return coro_of(st->map, map_size);
        }
    }
    return map_stack(map_size);
}

static __attribute__((noinline, cold)) void register_destructor(void)
{
    pthread_once(&key_once, make_key);
    pool.registered = key_ok && pthread_setspecific(pool_key, &pool) == 0;
}

void loop__stack_give(loop_coro *c)
{
    struct loop__stack *st = &c->stack;

#if LOOP_CORO_ASAN
    /* Frames abandoned on it may have left their redzones poisoned. */
    size_t guard = loop__stack_guard_size();
    __asan_unpoison_memory_region(st->map + guard, st->map_size - guard);
#endif
    if (pool.count >= pool.limit) {
        unmap(st);
        return;
    }
    if (!pool.registered)
        register_destructor();
    st->next = pool.head;
    pool.head = st;
    pool.count++;
}

size_t loop_coro_pool_trim(void)
{
    size_t n = pool.count;

    release_all(&pool, 0);
    return n;
}

size_t loop_coro_pool_limit(size_t max)
{
    size_t old = pool.limit;

    pool.limit = max;
    release_all(&pool, max);
    return old;
}
