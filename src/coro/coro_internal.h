/*
 * What the coroutine layer's files share: the coroutine's state, the stack
 * allocator (stack.c) and the context switch (switch_<arch>.S).
 */
#ifndef LOOP_CORO_INTERNAL_H
#define LOOP_CORO_INTERNAL_H

#include "loop_coro.h"

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define LOOP_CORO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LOOP_CORO_ASAN 1
#endif
#endif
#ifndef LOOP_CORO_ASAN
#define LOOP_CORO_ASAN 0
#endif

/* One stack mapping: [guard | usable stack | struct loop_coro]. */
struct loop__stack {
    char *map;                /* the whole mapping, guard included */
    size_t map_size;          /* bytes, a multiple of the page size */
    struct loop__stack *next; /* the next stack in the pool, while pooled */
    unsigned vg_id;           /* valgrind's id for the usable part (0 without valgrind) */
};

/* Bytes kept at the top of every mapping for struct loop_coro. */
#define LOOP__CORO_HEAD 256

struct loop_coro {
    void *sp;           /* the coroutine's stack pointer while it is suspended */
    void *resumer_sp;   /* the resumer's, while the coroutine runs */
    loop_coro *resumer; /* loop_coro_current() of the resumer */
    /*
     * Values cross a switch through memory: each side stores the value
     * the other receives before switching, so that nothing is left to do
     * after a switch and the switch can return straight to the caller of
     * loop_coro_resume() or loop_coro_yield().
     */
    void **out;    /* where the resumer wants the value yielded or returned */
    void **in;     /* where the suspended yield wants the next resume's value */
    void *first;   /* the first resume's value, for the entry */
    void *discard; /* out and in point here when the caller passed NULL */
    loop_coro_fn *entry;
    void *arg;
    int state;                /* enum loop_coro_state */
    struct loop__stack stack; /* kept in place while the stack is pooled */
#if LOOP_CORO_ASAN
    void *fake_stack;         /* the coroutine's, while it is suspended */
    void *resumer_fake_stack; /* the resumer's, while the coroutine runs */
    const void *resumer_bottom;
    size_t resumer_size;
#endif
};

/*
 * Map (or take from the calling thread's pool) a stack whose usable part
 * holds at least `size` bytes below the LOOP__CORO_HEAD bytes at its top.
 * Returns where its struct loop_coro goes, with only .stack filled in, or
 * NULL: out of memory, address space or mappings (-ENOMEM).
 */
loop_coro *loop__stack_take(size_t size);

/* Give c's stack back: to the calling thread's pool, or unmap it. */
void loop__stack_give(loop_coro *c);

/* Bytes below the usable part: the guard. */
size_t loop__stack_guard_size(void);

/*
 * The context switch, in switch_<arch>.S: save the callee-saved registers
 * and floating-point control words on the current stack, store its stack
 * pointer in *save, continue on the stack `to` (as saved by an earlier
 * switch or made by loop__coro_make) and return `rc` there.
 */
int loop__coro_switch(void **save, void *to, int rc);

/*
 * Build, below `top` (16-byte aligned), the frame a first switch to a new
 * coroutine pops: the caller's floating-point control words and a return
 * into a trampoline that calls loop__coro_main(c).  Returns the stack
 * pointer to switch to.
 */
void *loop__coro_make(void *top, loop_coro *c);

/* The bottom of every coroutine's stack, in coro.c; never returns. */
_Noreturn void loop__coro_main(loop_coro *c);

#endif /* LOOP_CORO_INTERNAL_H */
