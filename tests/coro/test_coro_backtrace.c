/*
 * A debugger's backtrace taken inside a coroutine ends cleanly at its
 * first frame (the layer's trampoline), instead of walking into whatever
 * lies above it ("0x0000000000000000 in ?? ()").  The test runs gdb on
 * this program, which stops itself inside a coroutine; it is skipped where
 * gdb is not installed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loop_coro.h"

static const char *self;

static __attribute__((noinline)) void stop_here(void)
{
    raise(SIGTRAP);
    __asm__ volatile("" : : : "memory"); /* not a tail call */
}

static __attribute__((noinline)) void *entry(void *arg, void *first)
{
    (void)arg;
    stop_here();
    return first;
}

/* The program gdb runs: stop inside a coroutine. */
static int trap_in_coroutine(void)
{
    loop_coro *c;

    if (loop_coro_new(&c, entry, NULL, 0) != 0)
        return 1;
    loop_coro_resume(c, NULL, NULL);
    return loop_coro_free(c) == 0 ? 0 : 1;
}

static bool have_gdb(void)
{
    return system("command -v gdb >/dev/null 2>&1") == 0;
}

static void a_debugger_backtrace_inside_a_coroutine_ends_at_its_first_frame(void **state)
{
    (void)state;
    char cmd[4096], out[16384] = "";

    if (!have_gdb())
        skip();
    snprintf(cmd, sizeof(cmd),
             "gdb -q -batch -nx -ex run -ex bt --args '%s' --trap-in-coroutine 2>&1 </dev/null",
             self);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    pclose(p);

    /* The frames, innermost first: stop_here, entry, ..., the trampoline. */
    const char *top = strstr(out, "#0 ");
    if (top == NULL)
        fail_msg("no backtrace in gdb's output:\n%s", out);
    const char *last = strrchr(top, '#');
    if (strstr(top, "entry") == NULL || strstr(last, "coro_trampoline") == NULL ||
        strstr(top, "?? ()") != NULL)
        fail_msg("the backtrace does not end at the coroutine's first frame:\n%s", top);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--trap-in-coroutine") == 0)
        return trap_in_coroutine();
    self = argv[0];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_debugger_backtrace_inside_a_coroutine_ends_at_its_first_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
