/*
 * timers: a short tour of the ways to schedule a callback, printing what
 * runs when (seconds since the start).  With --virtual-time it takes no
 * time at all and prints exactly the same lines.  tests/golden/py/timers.py
 * is the same program written with asyncio; its output is the reference.
 *
 *   call_soon   a, b        run at the next iteration, in order; c, queued
 *                           by a while it runs, waits for the iteration after
 *   call_later  0.5 s       runs once, half a second from now
 *   call_every  1.0 s       runs at 1, 2 and 3 s; the third run cancels it
 *   call_at     start + 1.3 runs at an absolute time on the loop's clock
 *   call_later  2.5 s       cancelled at 1.5 s: never runs
 *   cancel                  0 once, then -ENOENT: already cancelled or ran
 *   call_later  3.5 s       stops the loop
 */
#include "example.h"

#include <stdio.h>

static uint64_t start;
static loop_handle half, every, victim;
static int ticks;

static void say(loop_t *loop, const char *what)
{
    printf("[%.1f] %s\n", (double)(loop_now(loop) - start) / 1e9, what);
}

static const char *cancel(loop_t *loop, loop_handle h)
{
    return loop_cancel(loop, h) == 0 ? "cancelled" : "no such callback";
}

static void soon(loop_t *loop, void *arg)
{
    const char *name = arg;
    char line[80];

    snprintf(line, sizeof line, "call_soon: %s", name);
    say(loop, line);
    if (name[0] == 'a')
        example_check(loop_call_soon(loop, soon, "c (queued by a, so it runs after b)", NULL),
                      "call_soon");
}

static void later(loop_t *loop, void *arg)
{
    (void)arg;
    say(loop, "call_later 0.5 s");
}

static void at(loop_t *loop, void *arg)
{
    (void)arg;
    say(loop, "call_at start + 1.3 s");
}

static void tick(loop_t *loop, void *arg)
{
    char line[80];

    (void)arg;
    ticks++;
    if (ticks < 3) {
        snprintf(line, sizeof line, "call_every 1.0 s: tick %d", ticks);
    } else {
        snprintf(line, sizeof line, "call_every 1.0 s: tick %d, cancel it: %s", ticks,
                 cancel(loop, every));
    }
    say(loop, line);
}

static void never(loop_t *loop, void *arg)
{
    (void)arg;
    say(loop, "call_later 2.5 s: never runs");
}

static void canceller(loop_t *loop, void *arg)
{
    char line[80];

    (void)arg;
    snprintf(line, sizeof line, "cancel the 2.5 s timer: %s", cancel(loop, victim));
    say(loop, line);
    snprintf(line, sizeof line, "cancel it again: %s", cancel(loop, victim));
    say(loop, line);
    snprintf(line, sizeof line, "cancel the 0.5 s timer: %s", cancel(loop, half));
    say(loop, line);
}

static void stop(loop_t *loop, void *arg)
{
    (void)arg;
    say(loop, "stop");
    loop_stop(loop);
}

int main(int argc, char **argv)
{
    loop_t *loop = example_start(argc, argv, "[--virtual-time]", NULL);

    start = loop_now(loop);
    say(loop, "scheduling");
    example_check(loop_call_soon(loop, soon, "a", NULL), "call_soon");
    example_check(loop_call_soon(loop, soon, "b", NULL), "call_soon");
    example_check(loop_call_later(loop, LOOP_MS(500), later, NULL, &half), "call_later");
    example_check(loop_call_at(loop, start + LOOP_MS(1300), at, NULL, NULL), "call_at");
    example_check(loop_call_every(loop, LOOP_SEC(1), tick, NULL, &every), "call_every");
    example_check(loop_call_later(loop, LOOP_MS(2500), never, NULL, &victim), "call_later");
    example_check(loop_call_later(loop, LOOP_MS(1500), canceller, NULL, NULL), "call_later");
    example_check(loop_call_later(loop, LOOP_MS(3500), stop, NULL, NULL), "call_later");
    return example_run(loop);
}
