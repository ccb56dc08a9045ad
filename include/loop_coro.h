/*
 * libloop_coro: stackful coroutines with Python-generator semantics.  No
 * loop is needed: this layer links the core only for LOOP_API.
 *
 * A coroutine runs an entry function on a stack of its own.  The resumer
 * passes a value in and gets back the value the coroutine yielded, or its
 * return value once it has finished:
 *
 *     static void *consumer(void *arg, void *first)      // def consumer():
 *     {
 *         void *in = first;                                 //     the first send
 *         while (in != NULL) {                              //     while n:
 *             printf("%s\n", (char *)in);
 *             loop_coro_yield("ok", &in);                   //         n = yield 'ok'
 *         }
 *         return "bye";                                     //     return 'bye'
 *     }
 *
 *     loop_coro *c;
 *     void *r;
 *     loop_coro_new(&c, consumer, NULL, 0);
 *     loop_coro_resume(c, "a", &r);   // 1: consumer printed "a", r == "ok"
 *     loop_coro_resume(c, NULL, &r);  // 0: consumer returned, r == "bye"
 *     loop_coro_free(c);
 *
 * The first resume's value is what the entry receives as `first`, as
 * send(None) starts a Python generator (which must be sent None; here any
 * value may be sent first).
 *
 * Conventions (as for include/loop.h): fallible calls return 0, a count or
 * a state, or a negative errno; results go through out pointers, which may
 * be NULL when the result is not wanted.  The library never aborts, prints
 * or exits; every failure leaves everything usable.
 *
 * Threads.  Coroutines are not bound to a thread, but one coroutine runs
 * on one thread at a time: resuming a coroutine that is running anywhere
 * is a race the library does not detect across threads.  A suspended
 * coroutine may be resumed later by another thread; code inside it must
 * then not keep thread-local addresses across a yield (the compiler may
 * cache them, errno's included), so most programs keep each coroutine on
 * the thread that created it.  loop_coro_current() and the stack pool are
 * per thread: no lock is ever taken.
 *
 * Stacks.  Each coroutine has a stack of its own, mmap'd and committed
 * lazily (a coroutine that touches one page costs one page), with a guard
 * of four pages below it: an overflow is a SIGSEGV on the guard, never
 * silent corruption (a frame larger than the guard could still jump over
 * it, as on any thread's stack, unless built with
 * -fstack-clash-protection).  A program that handles SIGSEGV itself needs
 * sigaltstack() to run its handler.  Where the kernel offers
 * MADV_GUARD_INSTALL (Linux 6.13 and later) the guard costs no mapping of
 * its own, so stacks next to each other merge into one mapping and any
 * number of coroutines fit in vm.max_map_count.  Elsewhere the guard is an
 * mprotect(PROT_NONE) page range, which costs a second mapping per stack:
 * about vm.max_map_count / 2 (32,765 by default) stacks can exist at once,
 * and loop_coro_new() then returns -ENOMEM.  The coroutine's own state
 * lives at the top of its stack mapping; no malloc() is made.  Freed stacks
 * go to a per-thread pool and are reused by the next loop_coro_new() of the
 * same size on that thread.
 *
 * Tools.  Built with -fsanitize=address, the switches tell AddressSanitizer
 * about each stack change (__sanitizer_start/finish_switch_fiber), so
 * detect_stack_use_after_return=1 works.  Where <valgrind/valgrind.h> was
 * found at build time, stacks are registered with valgrind
 * (VALGRIND_STACK_REGISTER); the calls cost nothing outside valgrind.
 * Built with -fsanitize=thread, each coroutine is a ThreadSanitizer
 * fiber (__tsan_create_fiber) and every switch says so
 * (__tsan_switch_to_fiber), so threads that post work to coroutines can be
 * checked for races.
 *
 * Debuggers.  A backtrace taken inside a coroutine ends at its entry
 * function (the frame below it is marked as the outermost).
 */
#ifndef LOOP_CORO_H
#define LOOP_CORO_H

#include "loop.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loop_coro loop_coro;

/*
 * The entry function: `arg` is the argument given to loop_coro_new(),
 * `first` the value of the first loop_coro_resume().  What it returns is
 * the coroutine's return value, handed to that last resume.
 */
typedef void *loop_coro_fn(void *arg, void *first);

/* What loop_coro_status() returns. */
enum loop_coro_state {
    LOOP_CORO_SUSPENDED = 0, /* created, or stopped at a yield: may be resumed */
    LOOP_CORO_RUNNING = 1,   /* running, or waiting for a coroutine it resumed */
    LOOP_CORO_DONE = 2,      /* its entry returned: may only be freed */
};

/* The stack size that loop_coro_new() gives for 0: 256 KiB (virtual: only
 * the pages touched cost memory). */
#define LOOP_CORO_STACK_DEFAULT ((size_t)256 * 1024)
/* Smaller sizes are raised to this. */
#define LOOP_CORO_STACK_MIN ((size_t)16 * 1024)
/* Larger sizes are refused (-EINVAL). */
#define LOOP_CORO_STACK_MAX ((size_t)1 << 30)
/* Stacks kept in a thread's pool unless loop_coro_pool_limit() says otherwise. */
#define LOOP_CORO_POOL_DEFAULT 64

/*
 * Create a suspended coroutine that will run entry(arg, first) when first
 * resumed, on a stack of stack_size bytes (0: LOOP_CORO_STACK_DEFAULT;
 * rounded up to whole pages; at least LOOP_CORO_STACK_MIN).  Its
 * floating-point control state (rounding mode, exception masks) starts as
 * the caller's is now; each coroutine keeps its own across switches.  The
 * floating-point exception flags (fetestexcept()) are status, not control:
 * they are the thread's, shared by its coroutines (keeping them per side
 * would reload MXCSR, which waits for every floating-point instruction in
 * flight, at nearly every switch of a program that divides).  Returns 0
 * and stores the coroutine in *out; -EINVAL if out or entry is NULL or
 * stack_size is above LOOP_CORO_STACK_MAX; -ENOMEM if no stack could be
 * mapped (memory, address space, or vm.max_map_count exhausted), in which
 * case *out is untouched.
 */
LOOP_API int loop_coro_new(loop_coro **out, loop_coro_fn *entry, void *arg, size_t stack_size);

/*
 * Run c until it yields or returns, passing it `in`: the entry's `first`
 * argument at the first resume, else what its pending loop_coro_yield()
 * stores in its `in`.  Returns 1 if c yielded (*out = the value yielded;
 * c is suspended again) or 0 if it returned (*out = its return value; c
 * is done).  May be called from inside a coroutine, which then waits,
 * running, until c yields or returns.  Errors, with nothing run:
 * -EINVAL if c is NULL or done (like resuming a finished generator);
 * -EBUSY if c is running (it is the caller, or waits for one of the
 * coroutines the caller runs inside).
 */
LOOP_API int loop_coro_resume(loop_coro *c, void *in, void **out);

/*
 * From inside a coroutine: suspend it, handing `out` to the resumer; the
 * call returns when the coroutine is next resumed, with that resume's
 * value in *in (in may be NULL).  Returns 0, or -EPERM when not called
 * from inside a coroutine (nothing happens).  (Python's `x = yield out`.
 * The value comes back through a pointer, not as the result, so that the
 * error is an int like every other.)
 */
LOOP_API int loop_coro_yield(void *out, void **in);

/* The coroutine running on the calling thread, or NULL outside any. */
LOOP_API loop_coro *loop_coro_current(void);

/* LOOP_CORO_SUSPENDED, LOOP_CORO_RUNNING or LOOP_CORO_DONE; -EINVAL for NULL. */
LOOP_API int loop_coro_status(const loop_coro *c);

/*
 * Free c and give its stack to the calling thread's pool (or unmap it, if
 * the pool is full).  A done coroutine, and a suspended one, may be freed:
 * a suspended coroutine's stack is released without unwinding it (Python
 * would raise GeneratorExit in it; C has nothing to run), so whatever it
 * holds (memory, fds, locks) is not released: free only coroutines that
 * hold nothing at their yield, or run them to the end first.  Returns 0,
 * -EINVAL for NULL, or -EBUSY if c is running (nothing is freed).
 */
LOOP_API int loop_coro_free(loop_coro *c);

/*
 * Unmap every stack in the calling thread's pool; returns how many.  A
 * thread's pool is also emptied when the thread exits.
 */
LOOP_API size_t loop_coro_pool_trim(void);

/*
 * Keep at most max stacks in the calling thread's pool (default
 * LOOP_CORO_POOL_DEFAULT; 0 turns pooling off), unmapping those above it
 * now.  Returns the previous limit.  A pooled stack keeps the pages its
 * last coroutine touched, so the limit bounds that memory.
 */
LOOP_API size_t loop_coro_pool_limit(size_t max);

#ifdef __cplusplus
}
#endif

#endif /* LOOP_CORO_H */
