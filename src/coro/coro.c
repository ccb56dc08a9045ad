/*
 * Coroutines: generator semantics over the context switches of
 * switch_<arch>.S.
 *
 * A resume records who resumed (loop_coro_current() then, and the stack
 * pointer to come back to), marks the coroutine running and switches to
 * it; a yield or the entry's return hands its value over and switches
 * back.  The coroutine's state lives at the top of its own stack mapping,
 * so a coroutine costs one mapping and no malloc().
 *
 * Resume and yield are on every switch: their usual case is a handful of
 * loads and stores followed by a tail call of the switch, and whatever is
 * rare (bad input, a NULL out or in pointer) is decided by one test and
 * handled out of line.
 */
#include "coro_internal.h"

#include <errno.h>

#if LOOP_CORO_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#if LOOP_CORO_TSAN
#include <sanitizer/tsan_interface.h>
#endif

_Static_assert(sizeof(struct loop_coro) <= LOOP__CORO_HEAD, "loop_coro outgrew its room");
_Static_assert(offsetof(struct loop_coro, sp) == 0 && offsetof(struct loop_coro, resumer_sp) == 8,
               "switch_<arch>.S reads sp and resumer_sp at offsets 0 and 8");

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/*
 * The coroutine running on this thread.  initial-exec: a shared library's
 * default (global-dynamic) would call __tls_get_addr on every switch.
 */
static _Thread_local loop_coro *current __attribute__((tls_model("initial-exec")));

/*
 * The three switches.  AddressSanitizer keeps a record of the stack it
 * runs on: each switch says where it goes before (start) and confirms on
 * arrival (finish), and a coroutine's fake stack
 * (detect_stack_use_after_return) is saved while it is suspended and
 * destroyed (NULL) when it returns.  Without it, nothing follows a switch,
 * so the compiler makes it a tail call and the switch returns straight to
 * the caller of loop_coro_resume() or loop_coro_yield().
 */
#if LOOP_CORO_ASAN
static const void *stack_bottom(const loop_coro *c)
{
    return c->stack.map + loop__stack_guard_size();
}

static size_t stack_size(const loop_coro *c)
{
    return (size_t)((const char *)c - (const char *)stack_bottom(c));
}

static void asan_in_coro(loop_coro *c)
{
    __sanitizer_finish_switch_fiber(c->fake_stack, &c->resumer_bottom, &c->resumer_size);
}

static int switch_to_coro(loop_coro *c, void *in, void **out, void *sp)
{
    __sanitizer_start_switch_fiber(&c->resumer_fake_stack, stack_bottom(c), stack_size(c));
    int rc = loop__coro_enter(c, in, out, sp);
    __sanitizer_finish_switch_fiber(c->resumer_fake_stack, NULL, NULL);
    return rc;
}

static int switch_to_resumer(void *out, void **in, loop_coro *c)
{
    __sanitizer_start_switch_fiber(&c->fake_stack, c->resumer_bottom, c->resumer_size);
    int rc = loop__coro_leave(out, in, c);
    asan_in_coro(c);
    return rc;
}

/* The coroutine will not run again, so its fake stack goes (NULL). */
static _Noreturn void exit_to_resumer(loop_coro *c)
{
    __sanitizer_start_switch_fiber(NULL, c->resumer_bottom, c->resumer_size);
    loop__coro_exit(c);
}
#else
static void asan_in_coro(loop_coro *c)
{
    (void)c;
}

/*
 * ThreadSanitizer keeps a shadow call stack and a history per fiber: each
 * coroutine is one (made in loop_coro_new), and each switch says which
 * fiber runs next, just before it happens.
 */
#if LOOP_CORO_TSAN
static void tsan_to_coro(loop_coro *c)
{
    c->resumer_tsan_fiber = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(c->tsan_fiber, 0);
}

static void tsan_to_resumer(const loop_coro *c)
{
    __tsan_switch_to_fiber(c->resumer_tsan_fiber, 0);
}
#else
static void tsan_to_coro(loop_coro *c)
{
    (void)c;
}

static void tsan_to_resumer(const loop_coro *c)
{
    (void)c;
}
#endif

static int switch_to_coro(loop_coro *c, void *in, void **out, void *sp)
{
    tsan_to_coro(c);
    return loop__coro_enter(c, in, out, sp);
}

static int switch_to_resumer(void *out, void **in, loop_coro *c)
{
    tsan_to_resumer(c);
    return loop__coro_leave(out, in, c);
}

static _Noreturn void exit_to_resumer(loop_coro *c)
{
    tsan_to_resumer(c);
    loop__coro_exit(c);
}
#endif

int loop_coro_new(loop_coro **out, loop_coro_fn *entry, void *arg, size_t stack_size)
{
    if (out == NULL || entry == NULL || stack_size > LOOP_CORO_STACK_MAX)
        return -EINVAL;
    if (stack_size == 0)
        stack_size = LOOP_CORO_STACK_DEFAULT;
    else if (stack_size < LOOP_CORO_STACK_MIN)
        stack_size = LOOP_CORO_STACK_MIN;
    loop_coro *c = loop__stack_take(stack_size);
    if (c == NULL)
        return -ENOMEM;

    /* Only what is read before it is written: c->stack is filled in. */
    c->entry = entry;
    c->arg = arg;
    c->in = &c->first;
#if LOOP_CORO_ASAN
    c->fake_stack = NULL;
#endif
#if LOOP_CORO_TSAN
    c->tsan_fiber = __tsan_create_fiber(0);
#endif
    c->sp = loop__coro_make(c, c); /* suspended */
    *out = c;
    return 0;
}

/*
 * The value goes where the pending yield (or the entry) wants it, and the
 * yielder will store its own where `out` says.  sp: c->sp, a saved stack
 * pointer.
 */
static inline __attribute__((always_inline)) int resume(loop_coro *c, void *sp, void *in,
                                                        void **out)
{
    *c->in = in;
    c->out = out;
    c->sp = (void *)LOOP__CORO_RUNNING;
    c->resumer = current;
    current = c;
    return switch_to_coro(c, in, out, sp); /* 1 from a yield, 0 from the end */
}

static __attribute__((noinline, cold)) int resume_unusual(loop_coro *c, void *in, void **out)
{
    if (c == NULL || (uintptr_t)c->sp == LOOP__CORO_DONE)
        return -EINVAL;
    if ((uintptr_t)c->sp == LOOP__CORO_RUNNING)
        return -EBUSY;
    return resume(c, c->sp, in, out != NULL ? out : &c->discard);
}

int loop_coro_resume(loop_coro *c, void *in, void **out)
{
    void *sp;

    if (UNLIKELY(c == NULL || out == NULL || (uintptr_t)(sp = c->sp) <= LOOP__CORO_DONE))
        return resume_unusual(c, in, out);
    return resume(c, sp, in, out);
}

/* The resumer's side of the switch is done here, before it. */
int loop_coro_yield(void *out, void **in)
{
    loop_coro *c = current;

    if (UNLIKELY(c == NULL || in == NULL)) {
        if (c == NULL)
            return -EPERM;
        in = &c->discard;
    }
    *c->out = out;
    c->in = in;
    current = c->resumer;
    /* When this returns it may be on another thread: no thread-local is read. */
    return switch_to_resumer(out, in, c);
}

/*
 * After the entry returned: a function of its own, so that the thread-local
 * `current` is found anew (the coroutine may have moved to another thread
 * since it started, and a compiler may keep the thread pointer across the
 * entry's call).
 */
static __attribute__((noinline)) _Noreturn void finish(loop_coro *c, void *result)
{
    *c->out = result;
    c->sp = (void *)LOOP__CORO_DONE;
    current = c->resumer;
    exit_to_resumer(c); /* nothing switches to a done coroutine */
}

_Noreturn void loop__coro_main(loop_coro *c)
{
    asan_in_coro(c);
    finish(c, c->entry(c->arg, c->first));
}

loop_coro *loop_coro_current(void)
{
    return current;
}

int loop_coro_status(const loop_coro *c)
{
    if (c == NULL)
        return -EINVAL;
    switch ((uintptr_t)c->sp) {
    case LOOP__CORO_RUNNING:
        return LOOP_CORO_RUNNING;
    case LOOP__CORO_DONE:
        return LOOP_CORO_DONE;
    default:
        return LOOP_CORO_SUSPENDED;
    }
}

int loop_coro_free(loop_coro *c)
{
    if (c == NULL)
        return -EINVAL;
    if ((uintptr_t)c->sp == LOOP__CORO_RUNNING)
        return -EBUSY;
#if LOOP_CORO_TSAN
    __tsan_destroy_fiber(c->tsan_fiber);
#endif
    loop__stack_give(c); /* c lives on that stack */
    return 0;
}
