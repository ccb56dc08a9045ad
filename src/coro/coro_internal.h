/*
 * What the coroutine layer's files share: the coroutine's state, the stack
 * allocator (stack.c) and the context switch (switch_<arch>.S).
 */
#ifndef LOOP_CORO_INTERNAL_H
#define LOOP_CORO_INTERNAL_H

#include "loop_coro.h"

#include <stddef.h>
#include <stdint.h>

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

#if defined(__SANITIZE_THREAD__)
#define LOOP_CORO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LOOP_CORO_TSAN 1
#endif
#endif
#ifndef LOOP_CORO_TSAN
#define LOOP_CORO_TSAN 0
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

/*
 * What loop_coro.sp holds besides a saved stack pointer: the state is read
 * with the pointer a resume needs anyway, and a yield's switch marks the
 * coroutine suspended by saving it.
 */
#define LOOP__CORO_RUNNING ((uintptr_t)0) /* running, or waiting for one it resumed */
#define LOOP__CORO_DONE ((uintptr_t)1)    /* its entry returned */

struct loop_coro {
    /* The two fields switch_<arch>.S reads and writes, at offsets 0 and 8. */
    void *sp;         /* saved stack pointer while suspended; else RUNNING or DONE */
    void *resumer_sp; /* the resumer's, while the coroutine runs */
    /*
     * Values cross a switch through memory: each side stores the value
     * the other receives before switching, so that nothing is left to do
     * after a switch and the switch can return straight to the caller of
     * loop_coro_resume() or loop_coro_yield().
     */
    void **out;         /* where the resumer wants the value yielded or returned */
    void **in;          /* where the suspended yield wants the next resume's value */
    loop_coro *resumer; /* loop_coro_current() of the resumer */
    void *first;        /* the first resume's value, for the entry */
    void *discard;      /* out and in point here when the caller passed NULL */
    loop_coro_fn *entry;
    void *arg;
    struct loop__stack stack; /* kept in place while the stack is pooled */
#if LOOP_CORO_ASAN
    void *fake_stack;         /* the coroutine's, while it is suspended */
    void *resumer_fake_stack; /* the resumer's, while the coroutine runs */
    const void *resumer_bottom;
    size_t resumer_size;
#endif
#if LOOP_CORO_TSAN
    void *tsan_fiber;         /* ThreadSanitizer's record of this coroutine */
    void *resumer_tsan_fiber; /* and of its resumer, while it runs */
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
 * The context switches, in switch_<arch>.S.  Each saves the callee-saved
 * registers and the floating-point control state on the stack it leaves,
 * and restores those of the stack it goes to (the control state is loaded
 * only when it differs from the current one: loading it is slow).
 *
 * loop__coro_enter: from the resumer into c, whose saved stack pointer is
 * sp (a yield's, or loop__coro_make's); the resumer's goes in
 * c->resumer_sp.  Returns, once c yields or returns, what loop__coro_leave
 * (1) or loop__coro_exit (0) says; the coroutine's side returns 0.
 *
 * loop__coro_leave: from c back to its resumer; c's stack pointer goes in
 * c->sp, which marks c suspended.  Returns 0 when c is next entered.
 *
 * loop__coro_exit: from c, done, back to its resumer for good: nothing of
 * c is saved.
 *
 * The unused arguments keep those of loop_coro_resume() and
 * loop_coro_yield() where they are, so that their tail calls move nothing.
 */
int loop__coro_enter(loop_coro *c, void *unused1, void *unused2, void *sp);
int loop__coro_leave(void *unused1, void *unused2, loop_coro *c);
_Noreturn void loop__coro_exit(loop_coro *c);

/*
 * Build, below `top` (16-byte aligned), the frame a first switch to a new
 * coroutine pops: the caller's floating-point control state and a return
 * into a trampoline that calls loop__coro_main(c).  Returns the stack
 * pointer to switch to.
 */
void *loop__coro_make(void *top, loop_coro *c);

/* The bottom of every coroutine's stack, in coro.c; never returns. */
_Noreturn void loop__coro_main(loop_coro *c);

#endif /* LOOP_CORO_INTERNAL_H */
