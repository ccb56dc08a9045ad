/*
 * tasks: seed 001's asyncio-task.py, three coroutines that advance one step
 * a second, interleaved:
 *
 *   async def factorial(number):
 *       f = 1
 *       for i in range(2, number + 1):
 *           print("Asyncio.Task: Compute factorial(%s)" % (i))
 *           await asyncio.sleep(1)
 *           f *= i
 *       print("Asyncio.Task - factorial(%s) = %s" % (number, f))
 *
 *   async def fibonacci(number):
 *       a, b = 0, 1
 *       for i in range(number):
 *           print("Asyncio.Task: Compute fibonacci (%s)" % (i))
 *           await asyncio.sleep(1)
 *           a, b = b, a + b
 *       print("Asyncio.Task - fibonacci(%s) = %s" % (number, a))
 *
 *   async def binomialCoeff(n, k):
 *       result = 1
 *       for i in range(1, k + 1):
 *           result = result * (n - i + 1) / i
 *           print("Asyncio.Task: Compute binomialCoeff (%s)" % (i))
 *           await asyncio.sleep(1)
 *       print("Asyncio.Task - binomialCoeff(%s , %s) = %s" % (n, k, result))
 *
 *   tasks = [asyncio.Task(factorial(10)),
 *            asyncio.Task(fibonacci(10)),
 *            asyncio.Task(binomialCoeff(20, 10))]
 *   loop.run_until_complete(asyncio.wait(tasks))
 *
 * Each coroutine here is a struct holding its local variables and a step
 * function that runs from one await to the next.  The scheduling is
 * asyncio's, hop for hop:
 *
 *  - asyncio.Task() schedules the task's first step with call_soon, so the
 *    three start at the first iteration, in creation order;
 *  - asyncio.sleep(1) schedules a timer one second ahead; when it fires it
 *    completes a future, whose done callback (the task's wake-up) is
 *    scheduled with call_soon, so the task runs again one iteration later.
 *
 * The three timers set in one iteration are due at the same instant and
 * fire in the order they were set, so the tasks keep their order, one line
 * each per second, until factorial finishes at 9 s and the other two at
 * 10 s.  (The seed's printed output stops at 8 s; Python prints all 33
 * lines, and so does this program.)
 */
#include "example.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What every task has: its step function and whether it is awaiting. */
struct task {
    loop_fn *step; /* called with the task itself as argument */
    bool resumed;  /* false for the first step, true after an await */
};

/* The future of asyncio.sleep() is done: wake its task at the next iteration. */
static void sleep_done(loop_t *loop, void *arg)
{
    struct task *t = arg;
    example_check(loop_call_soon(loop, t->step, t, NULL), "call_soon");
}

/* await asyncio.sleep(seconds): the caller returns right after this. */
static void task_sleep(loop_t *loop, struct task *t, unsigned seconds)
{
    t->resumed = true;
    example_check(loop_call_later(loop, LOOP_SEC(seconds), sleep_done, t, NULL), "call_later");
}

/* asyncio.Task(coro): the first step runs at the next iteration. */
static void task_start(loop_t *loop, struct task *t, loop_fn *step)
{
    t->step = step;
    t->resumed = false;
    example_check(loop_call_soon(loop, step, t, NULL), "call_soon");
}

/*
 * Python's repr() of a float, as print() shows it: the shortest digits
 * that read back as the same value, with ".0" if it looks like an integer.
 */
static void format_float(char *buf, size_t size, double x)
{
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, size, "%.*g", digits, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    if (!strpbrk(buf, ".eninf"))
        strncat(buf, ".0", size - strlen(buf) - 1);
}

struct factorial {
    struct task task; /* first, so that a task pointer is a struct pointer */
    int number, i;
    unsigned long long f;
};

static void factorial_step(loop_t *loop, void *arg)
{
    struct factorial *c = arg;

    if (c->task.resumed) { /* back from the await: the rest of the loop body */
        c->f *= (unsigned)c->i;
        c->i++;
    }
    if (c->i <= c->number) {
        printf("Asyncio.Task: Compute factorial(%d)\n", c->i);
        task_sleep(loop, &c->task, 1);
        return;
    }
    printf("Asyncio.Task - factorial(%d) = %llu\n", c->number, c->f);
}

struct fibonacci {
    struct task task;
    int number, i;
    unsigned long long a, b;
};

static void fibonacci_step(loop_t *loop, void *arg)
{
    struct fibonacci *c = arg;

    if (c->task.resumed) {
        unsigned long long a = c->b, b = c->a + c->b;
        c->a = a;
        c->b = b;
        c->i++;
    }
    if (c->i < c->number) {
        printf("Asyncio.Task: Compute fibonacci (%d)\n", c->i);
        task_sleep(loop, &c->task, 1);
        return;
    }
    printf("Asyncio.Task - fibonacci(%d) = %llu\n", c->number, c->a);
}

struct binomial {
    struct task task;
    int n, k, i;
    double result; /* Python's / makes it a float from the first step on */
};

static void binomial_step(loop_t *loop, void *arg)
{
    struct binomial *c = arg;
    char buf[64];

    if (c->task.resumed)
        c->i++;
    if (c->i <= c->k) {
        c->result = c->result * (c->n - c->i + 1) / c->i;
        printf("Asyncio.Task: Compute binomialCoeff (%d)\n", c->i);
        task_sleep(loop, &c->task, 1);
        return;
    }
    format_float(buf, sizeof buf, c->result);
    printf("Asyncio.Task - binomialCoeff(%d , %d) = %s\n", c->n, c->k, buf);
}

int main(int argc, char **argv)
{
    loop_t *loop = example_start(argc, argv, "[--virtual-time]", NULL);
    struct factorial fact = {.number = 10, .i = 2, .f = 1};
    struct fibonacci fib = {.number = 10, .i = 0, .a = 0, .b = 1};
    struct binomial binom = {.n = 20, .k = 10, .i = 1, .result = 1};

    task_start(loop, &fact.task, factorial_step);
    task_start(loop, &fib.task, fibonacci_step);
    task_start(loop, &binom.task, binomial_step);
    /* run_until_complete(asyncio.wait(tasks)): the loop ends with the tasks. */
    return example_run(loop);
}
