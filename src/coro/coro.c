/*
 * Coroutines: generator semantics over the context switch of
 * switch_<arch>.S.
 *
 * A resume records who resumed (loop_coro_current() then, and the stack
 * pointer to come back to), marks the coroutine running and switches to
 * it; a yield or the entry's return switches back with a value.  The
 * coroutine's state lives at the top of its own stack mapping, so a
 * coroutine costs one mapping and no malloc().
 */
#include "coro_internal.h"

#include <errno.h>
#include <stdbool.h>

#if LOOP_CORO_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

_Static_assert(sizeof(struct loop_coro) <= LOOP__CORO_HEAD, "loop_coro outgrew its room");

/*
 * The coroutine running on this thread.  initial-exec: a shared library's
 * default (global-dynamic) would call __tls_get_addr on every switch.
 */
static _Thread_local loop_coro *current __attribute__((tls_model("initial-exec")));

/*
 * AddressSanitizer keeps a record of the stack it runs on: each switch
 * says where it goes before (start) and confirms on arrival (finish), and
 * a coroutine's fake stack (detect_stack_use_after_return) is saved while
 * it is suspended, and destroyed (NULL) when it returns.
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

static void asan_to_coro(loop_coro *c)
{
    __sanitizer_start_switch_fiber(&c->resumer_fake_stack, stack_bottom(c), stack_size(c));
}

static void asan_back_in_resumer(loop_coro *c)
{
    __sanitizer_finish_switch_fiber(c->resumer_fake_stack, NULL, NULL);
}

/* done: the coroutine will not run again, so its fake stack goes. */
static void asan_to_resumer(loop_coro *c, bool done)
{
    __sanitizer_start_switch_fiber(done ? NULL : &c->fake_stack, c->resumer_bottom,
                                   c->resumer_size);
}

static void asan_in_coro(loop_coro *c)
{
    __sanitizer_finish_switch_fiber(c->fake_stack, &c->resumer_bottom, &c->resumer_size);
}
#else
static void asan_to_coro(loop_coro *c)
{
    (void)c;
}

static void asan_back_in_resumer(loop_coro *c)
{
    (void)c;
}

static void asan_to_resumer(loop_coro *c, bool done)
{
    (void)c;
    (void)done;
}

static void asan_in_coro(loop_coro *c)
{
    (void)c;
}
#endif

int loop_coro_new(loop_coro **out, loop_coro_fn *entry, void *arg, size_t stack_size)
{
    struct loop__stack st;

    if (out == NULL || entry == NULL || stack_size > LOOP_CORO_STACK_MAX)
        return -EINVAL;
    if (stack_size == 0)
        stack_size = LOOP_CORO_STACK_DEFAULT;
    else if (stack_size < LOOP_CORO_STACK_MIN)
        stack_size = LOOP_CORO_STACK_MIN;
    int err = loop__stack_take(stack_size, &st);
    if (err < 0)
        return err;

    loop_coro *c = (loop_coro *)(st.map + st.map_size - LOOP__CORO_HEAD);
    *c = (loop_coro){.entry = entry, .arg = arg, .state = LOOP_CORO_SUSPENDED, .stack = st};
    c->sp = loop__coro_make(c, c);
    *out = c;
    return 0;
}

int loop_coro_resume(loop_coro *c, void *in, void **out)
{
    if (c == NULL || c->state == LOOP_CORO_DONE)
        return -EINVAL;
    if (c->state == LOOP_CORO_RUNNING)
        return -EBUSY;
    c->resumer = current;
    c->state = LOOP_CORO_RUNNING;
    current = c;
    asan_to_coro(c);
    void *value = loop__coro_switch(&c->resumer_sp, c->sp, in);
    asan_back_in_resumer(c);
    current = c->resumer;
    if (out != NULL)
        *out = value;
    if (c->state == LOOP_CORO_DONE)
        return 0;
    c->state = LOOP_CORO_SUSPENDED;
    return 1;
}

int loop_coro_yield(void *out, void **in)
{
    loop_coro *c = current;

    if (c == NULL)
        return -EPERM;
    asan_to_resumer(c, false);
    void *value = loop__coro_switch(&c->sp, c->resumer_sp, out);
    /* From here on this may be another thread: no thread-local is read. */
    asan_in_coro(c);
    if (in != NULL)
        *in = value;
    return 0;
}

_Noreturn void loop__coro_main(loop_coro *c, void *first)
{
    asan_in_coro(c);
    void *result = c->entry(c->arg, first);
    c->state = LOOP_CORO_DONE;
    asan_to_resumer(c, true);
    loop__coro_switch(&c->sp, c->resumer_sp, result);
    __builtin_unreachable(); /* nothing switches to a done coroutine */
}

loop_coro *loop_coro_current(void)
{
    return current;
}

int loop_coro_status(const loop_coro *c)
{
    return c == NULL ? -EINVAL : c->state;
}

int loop_coro_free(loop_coro *c)
{
    if (c == NULL)
        return -EINVAL;
    if (c->state == LOOP_CORO_RUNNING)
        return -EBUSY;
    struct loop__stack st = c->stack; /* c lives on that stack */
    loop__stack_give(&st);
    return 0;
}
