/*
 * producer_consumer: seed 004, the producer/consumer hand-off that Python
 * writes with a generator:
 *
 *   def consumer():
 *       r = ''
 *       while True:
 *           n = yield r
 *           if not n:
 *               return
 *           print('[CONSUMER] Consuming %s...' % n)
 *           r = '200 OK'
 *
 *   def produce(c):
 *       c.send(None)
 *       n = 0
 *       while n < 5:
 *           n = n + 1
 *           print('[PRODUCER] Producing %s...' % n)
 *           r = c.send(n)
 *           print('[PRODUCER] Consumer return: %s' % r)
 *       c.close()
 *
 *   c = consumer()
 *   produce(c)
 *
 * Here both sides are callbacks on the loop.  c.send(n) becomes "store n in
 * the consumer and schedule it"; the consumer's yield becomes "store r and
 * schedule the producer".  Each hand-off is one loop_call_soon, so exactly
 * one side runs at a time and control passes back and forth as with the
 * generator, without locks and without a thread.
 */
#include "example.h"

#include <stdbool.h>
#include <stdio.h>

struct consumer {
    bool started, closed;
    int n;         /* the value sent in */
    const char *r; /* the value yielded back */
    loop_fn *yield_to;
    void *yield_arg;
};

struct producer {
    struct consumer *c;
    int n;
    enum { PRODUCE_START, PRODUCE_PRIMED, PRODUCE_SENT } state;
};

/* The consumer, from one yield to the next. */
static void consumer_step(loop_t *loop, void *arg)
{
    struct consumer *c = arg;

    if (c->closed)
        return;
    if (!c->started) { /* primed by send(None): run up to the first yield */
        c->started = true;
        c->r = "";
    } else {
        if (!c->n) { /* if not n: return */
            c->closed = true;
            return;
        }
        printf("[CONSUMER] Consuming %d...\n", c->n);
        c->r = "200 OK";
    }
    example_check(loop_call_soon(loop, c->yield_to, c->yield_arg, NULL), "call_soon");
}

/* c.send(n): the sender returns right after this and is resumed by the yield. */
static void consumer_send(loop_t *loop, struct consumer *c, int n)
{
    c->n = n;
    example_check(loop_call_soon(loop, consumer_step, c, NULL), "call_soon");
}

/* produce(c), from one send to the next. */
static void produce_step(loop_t *loop, void *arg)
{
    struct producer *p = arg;

    switch (p->state) {
    case PRODUCE_START:
        p->state = PRODUCE_PRIMED;
        consumer_send(loop, p->c, 0); /* c.send(None) */
        return;
    case PRODUCE_PRIMED:
        p->n = 0;
        break;
    case PRODUCE_SENT:
        printf("[PRODUCER] Consumer return: %s\n", p->c->r);
        break;
    }
    if (p->n < 5) {
        p->n = p->n + 1;
        printf("[PRODUCER] Producing %d...\n", p->n);
        p->state = PRODUCE_SENT;
        consumer_send(loop, p->c, p->n);
        return;
    }
    p->c->closed = true; /* c.close() */
}

int main(int argc, char **argv)
{
    loop_t *loop = example_start(argc, argv, "[--virtual-time]", NULL);
    struct producer p = {0};
    struct consumer c = {.yield_to = produce_step, .yield_arg = &p};

    p.c = &c;
    example_check(loop_call_soon(loop, produce_step, &p, NULL), "call_soon");
    return example_run(loop);
}
