/*
 * hello: two of the smallest asyncio programs, one after the other.
 *
 * Seed 001, asyncio-hello.py:            Seed 003 (as it was meant to be
 *                                        indented: asyncio.run at top level):
 *   async def main():
 *       print('Hello ...')                 async def main():
 *       await asyncio.sleep(2)                 await asyncio.sleep(1.0)
 *       print('... World!')                    print('done')
 *   asyncio.run(main())                    asyncio.run(main())
 *
 * With callbacks, a coroutine becomes one function per stretch of code
 * between two awaits, and `await asyncio.sleep(d)` becomes "schedule the
 * next stretch d from now".  asyncio.run() starts a coroutine at the next
 * iteration, as loop_call_soon() does.
 *
 * Prints "Hello ...", two seconds later "... World!", and one second after
 * that "done".
 */
#include "example.h"

#include <stdio.h>

static void done_after_sleep(loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
    puts("done");
}

/* Seed 003's main(), up to its await. */
static void done_main(loop_t *loop, void *arg)
{
    example_check(loop_call_later(loop, LOOP_MS(1000), done_after_sleep, arg, NULL), "call_later");
}

static void hello_after_sleep(loop_t *loop, void *arg)
{
    puts("... World!");
    /* The first asyncio.run() is over; the second one starts its main(). */
    example_check(loop_call_soon(loop, done_main, arg, NULL), "call_soon");
}

/* asyncio-hello.py's main(), up to its await. */
static void hello_main(loop_t *loop, void *arg)
{
    puts("Hello ...");
    example_check(loop_call_later(loop, LOOP_SEC(2), hello_after_sleep, arg, NULL), "call_later");
}

int main(int argc, char **argv)
{
    loop_t *loop = example_start(argc, argv, "[--virtual-time]", NULL);

    example_check(loop_call_soon(loop, hello_main, NULL, NULL), "call_soon");
    return example_run(loop);
}
