/*
 * producer_consumer_coro: seed 004's producer/consumer, with the consumer
 * a real generator (a loop_coro), line for line as the Python:
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
 * No loop is involved: c.send(n) is loop_coro_resume(), `yield r` is
 * loop_coro_yield().  (examples/producer_consumer.c writes the same hand-off
 * as callbacks on a loop.)  --virtual-time is accepted, for the golden
 * test's command line, and changes nothing: nothing here waits.
 */
#include "loop_coro.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INT(v) ((intptr_t)(v))
#define PTR(n) ((void *)(intptr_t)(n))

static void check(int err, const char *what)
{
    if (err < 0) {
        fprintf(stderr, "producer_consumer_coro: %s: %s\n", what, loop_strerror(err));
        exit(1);
    }
}

/* def consumer(): started by the first send, whose value (None) it ignores. */
static void *consumer(void *arg, void *first)
{
    const char *r = "";
    (void)arg;
    (void)first;

    for (;;) {
        void *n;
        check(loop_coro_yield((void *)r, &n), "yield"); /* n = yield r */
        if (!n)
            return NULL;
        printf("[CONSUMER] Consuming %ld...\n", (long)INT(n));
        r = "200 OK";
    }
}

static void produce(loop_coro *c)
{
    void *r;

    check(loop_coro_resume(c, NULL, NULL), "send(None)"); /* c.send(None) */
    int n = 0;
    while (n < 5) {
        n = n + 1;
        printf("[PRODUCER] Producing %d...\n", n);
        check(loop_coro_resume(c, PTR(n), &r), "send"); /* r = c.send(n) */
        printf("[PRODUCER] Consumer return: %s\n", (const char *)r);
    }
    check(loop_coro_free(c), "close"); /* c.close(): it holds nothing to clean up */
}

int main(int argc, char **argv)
{
    loop_coro *c;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--virtual-time") != 0) {
            fprintf(stderr, "usage: %s [--virtual-time]\n", argv[0]);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    check(loop_coro_new(&c, consumer, NULL, 0), "consumer()"); /* c = consumer() */
    produce(c);
    return 0;
}
