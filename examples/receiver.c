/*
 * receiver: seed 000's first coroutine, a consumer that is sent 0 to 9:
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
 * The generator becomes a callback on the loop: cr.send(i) stores i and
 * schedules the receiver; the receiver prints it and, at its yield, hands
 * control back to the sender with another loop_call_soon.
 */
#include "example.h"

#include <stdbool.h>
#include <stdio.h>

struct receiver {
    bool started;
    int value; /* what was sent */
    loop_fn *yield_to;
    void *yield_arg;
};

struct sender {
    struct receiver *cr;
    int i;
    bool primed;
};

static void receiver_step(loop_t *loop, void *arg)
{
    struct receiver *cr = arg;

    if (cr->started) /* resumed at (yield) with the value sent */
        printf("Received: %d\n", cr->value);
    cr->started = true;
    example_check(loop_call_soon(loop, cr->yield_to, cr->yield_arg, NULL), "call_soon");
}

static void receiver_send(loop_t *loop, struct receiver *cr, int value)
{
    cr->value = value;
    example_check(loop_call_soon(loop, receiver_step, cr, NULL), "call_soon");
}

/* The main program, from one send to the next. */
static void sender_step(loop_t *loop, void *arg)
{
    struct sender *s = arg;

    if (!s->primed) { /* next(cr) */
        s->primed = true;
        receiver_send(loop, s->cr, 0);
        return;
    }
    if (s->i < 10) {
        receiver_send(loop, s->cr, s->i);
        s->i++;
    }
}

int main(int argc, char **argv)
{
    loop_t *loop = example_start(argc, argv, "[--virtual-time]", NULL);
    struct sender s = {0};
    struct receiver cr = {.yield_to = sender_step, .yield_arg = &s};

    s.cr = &cr;
    example_check(loop_call_soon(loop, sender_step, &s, NULL), "call_soon");
    return example_run(loop);
}
