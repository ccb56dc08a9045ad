/*
 * receiver_coro: seed 000's first coroutine as a real generator (a
 * loop_coro), line for line as the Python:
 *
 *   def coroutine():
 *       while True:
 *           result = (yield)
 *           print("Received:",result)
 *
 *   cr = coroutine()
 *   next(cr)
 *   for i in range(10):
 *       cr.send(i)
 *
 * No loop is involved: cr.send(i) is loop_coro_resume(), `(yield)` is
 * loop_coro_yield().  (examples/receiver.c writes the same program as
 * callbacks on a loop.)  --virtual-time is accepted, for the golden test's
 * command line, and changes nothing: nothing here waits.
 */
#include "loop_coro.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(int err, const char *what)
{
    if (err < 0) {
        fprintf(stderr, "receiver_coro: %s: %s\n", what, loop_strerror(err));
        exit(1);
    }
}

/* def coroutine(): started by next(), whose value it ignores. */
static void *coroutine(void *arg, void *first)
{
    (void)arg;
    (void)first;

    void *result;
    while (loop_coro_yield(NULL, &result) == 0) /* result = (yield) */
        printf("Received: %ld\n", (long)(intptr_t)result);
    return NULL;
}

int main(int argc, char **argv)
{
    loop_coro *cr;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--virtual-time") != 0) {
            fprintf(stderr, "usage: %s [--virtual-time]\n", argv[0]);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    check(loop_coro_new(&cr, coroutine, NULL, 0), "coroutine()"); /* cr = coroutine() */
    check(loop_coro_resume(cr, NULL, NULL), "next");              /* next(cr) */
    for (int i = 0; i < 10; i++)
        check(loop_coro_resume(cr, (void *)(intptr_t)i, NULL), "send"); /* cr.send(i) */
    check(loop_coro_free(cr), "free"); /* the generator is dropped, as at exit */
    return 0;
}
