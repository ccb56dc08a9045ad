/*
 * event_loop: seed 001's asyncio-event-loop.py, which needs no coroutines:
 *
 *   def function_1(end_time, loop):
 *       print("function_1 called")
 *       if (loop.time() + 1.0) < end_time:
 *           loop.call_later(1, function_2, end_time, loop)
 *       else:
 *           loop.stop()
 *   ... function_2 calls function_3 next, function_3 calls function_1,
 *   ... function_4 calls itself; function_2 prints a trailing space.
 *
 *   loop = asyncio.get_event_loop()
 *   end_loop = loop.time() + 9.0
 *   loop.call_soon(function_1, end_loop, loop)
 *   loop.call_soon(function_4, end_loop, loop)
 *   loop.run_forever()
 *
 * Two chains tick once a second, side by side: 1 2 3 1 2 3 ... and 4 4 4 ...
 * At 8 s, 8 + 1 < 9 no longer holds, both call stop, and the loop ends
 * after the 18th line.
 *
 * The next link is scheduled with loop_call_at(loop_now() + 1 s) rather than
 * loop_call_later(1 s): loop_now() is the same for every callback of one
 * iteration, so the two chains stay due at exactly the same instant and
 * always run in the same iteration.  With loop_call_later each link would
 * be due a few microseconds after the one scheduled just before it; libloop
 * wakes at a timer's deadline to the nanosecond, so in real time the stop
 * of function_1..3 could end the loop one iteration before function_4's
 * last line.  (asyncio gets away with it because it rounds its poll
 * timeout up to a whole millisecond.)
 */
#include "example.h"

#include <stdio.h>

static uint64_t end_time; /* end_loop */

static void function_1(loop_t *loop, void *arg);
static void function_2(loop_t *loop, void *arg);
static void function_3(loop_t *loop, void *arg);
static void function_4(loop_t *loop, void *arg);

/* function_N schedules next[N]: 1 -> 2 -> 3 -> 1, and 4 -> 4. */
static loop_fn *const next[] = {NULL, function_2, function_3, function_1, function_4};

/* The common body of function_1..4. */
static void function_n(loop_t *loop, int n)
{
    printf("function_%d called%s\n", n, n == 2 ? " " : "");
    if (loop_now(loop) + LOOP_SEC(1) < end_time)
        example_check(loop_call_at(loop, loop_now(loop) + LOOP_SEC(1), next[n], NULL, NULL),
                      "call_at");
    else
        loop_stop(loop);
}

static void function_1(loop_t *loop, void *arg)
{
    (void)arg;
    function_n(loop, 1);
}

static void function_2(loop_t *loop, void *arg)
{
    (void)arg;
    function_n(loop, 2);
}

static void function_3(loop_t *loop, void *arg)
{
    (void)arg;
    function_n(loop, 3);
}

static void function_4(loop_t *loop, void *arg)
{
    (void)arg;
    function_n(loop, 4);
}

int main(int argc, char **argv)
{
    loop_t *loop = example_start(argc, argv, "[--virtual-time]", NULL);

    end_time = loop_now(loop) + LOOP_SEC(9);
    example_check(loop_call_soon(loop, function_1, NULL, NULL), "call_soon");
    example_check(loop_call_soon(loop, function_4, NULL, NULL), "call_soon");
    return example_run(loop);
}
