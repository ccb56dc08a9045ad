/*
 * hello_task: hello.c's two seed programs as real tasks, `await
 * asyncio.sleep()` and all.
 *
 *   async def main():                      async def main():
 *       print('Hello ...')                     await asyncio.sleep(1.0)
 *       await asyncio.sleep(2)                 print('done')
 *       print('... World!')                asyncio.run(main())
 *   asyncio.run(main())
 *
 * asyncio.run(main()) is a task spawned on the loop and run until its
 * future is done.  Prints "Hello ...", two seconds later "... World!",
 * and one second after that "done", as tests/golden/hello.txt.
 */
#include "example.h"
#include "loop_task.h"

#include <stdio.h>

static int hello_main(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)arg;
    (void)result;
    puts("Hello ...");
    int err = loop_task_sleep(LOOP_SEC(2));
    if (err)
        return err;
    puts("... World!");
    return 0;
}

static int done_main(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)arg;
    (void)result;
    int err = loop_task_sleep(LOOP_MS(1000));
    if (err)
        return err;
    puts("done");
    return 0;
}

/* asyncio.run(main()): run a task until it is done. */
static void run(loop_t *loop, loop_task_fn *fn)
{
    loop_task *t;
    example_check(loop_task_spawn(loop, fn, NULL, &t), "loop_task_spawn");
    example_check(loop_run_until_complete(loop, loop_task_future(t), NULL), "the task");
    loop_task_unref(t);
}

int main(int argc, char **argv)
{
    loop_t *loop = example_start(argc, argv, "[--virtual-time]", NULL);

    run(loop, hello_main);
    run(loop, done_main);
    return example_run(loop);
}
