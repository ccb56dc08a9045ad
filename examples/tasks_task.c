/*
 * tasks_task: tasks.c's seed (asyncio-task.py) with real tasks: each
 * coroutine is a function that keeps its locals on its own stack and
 * awaits asyncio.sleep(1) where the Python does.
 *
 *   tasks = [asyncio.Task(factorial(10)),
 *            asyncio.Task(fibonacci(10)),
 *            asyncio.Task(binomialCoeff(20, 10))]
 *   loop.run_until_complete(asyncio.wait(tasks))
 *
 * The three start in creation order at the first iteration (spawning is
 * a call_soon); their one-second sleeps, set in one iteration, fire in
 * the order set, and each task runs one hop after its timer, so the lines
 * come out as Python prints them (tests/golden/tasks.txt).
 */
#include "example.h"
#include "loop_task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Python's repr() of a float, as print() shows it (see tasks.c). */
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

static int factorial(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    int number = *(const int *)arg;
    unsigned long long f = 1;
    for (int i = 2; i <= number; i++) {
        printf("Asyncio.Task: Compute factorial(%d)\n", i);
        int err = loop_task_sleep(LOOP_SEC(1));
        if (err)
            return err;
        f *= (unsigned)i;
    }
    printf("Asyncio.Task - factorial(%d) = %llu\n", number, f);
    return 0;
}

static int fibonacci(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    int number = *(const int *)arg;
    unsigned long long a = 0, b = 1;
    for (int i = 0; i < number; i++) {
        printf("Asyncio.Task: Compute fibonacci (%d)\n", i);
        int err = loop_task_sleep(LOOP_SEC(1));
        if (err)
            return err;
        unsigned long long next = a + b;
        a = b;
        b = next;
    }
    printf("Asyncio.Task - fibonacci(%d) = %llu\n", number, a);
    return 0;
}

static int binomial_coeff(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    const int *nk = arg;
    int n = nk[0], k = nk[1];
    double r = 1; /* Python's / makes it a float */
    for (int i = 1; i <= k; i++) {
        r = r * (n - i + 1) / i;
        printf("Asyncio.Task: Compute binomialCoeff (%d)\n", i);
        int err = loop_task_sleep(LOOP_SEC(1));
        if (err)
            return err;
    }
    char buf[64];
    format_float(buf, sizeof buf, r);
    printf("Asyncio.Task - binomialCoeff(%d , %d) = %s\n", n, k, buf);
    return 0;
}

int main(int argc, char **argv)
{
    loop_t *loop = example_start(argc, argv, "[--virtual-time]", NULL);
    static const int ten = 10, twenty_ten[2] = {20, 10};
    loop_task *tasks[3];

    example_check(loop_task_spawn(loop, factorial, (void *)&ten, &tasks[0]), "spawn");
    example_check(loop_task_spawn(loop, fibonacci, (void *)&ten, &tasks[1]), "spawn");
    example_check(loop_task_spawn(loop, binomial_coeff, (void *)twenty_ten, &tasks[2]), "spawn");

    /* run_until_complete(asyncio.wait(tasks)) */
    loop_future *fs[3], *all;
    for (int i = 0; i < 3; i++)
        fs[i] = loop_task_future(tasks[i]);
    example_check(loop_wait(loop, fs, 3, LOOP_ALL_COMPLETED, -1, &all), "loop_wait");
    example_check(loop_run_until_complete(loop, all, NULL), "the tasks");
    loop_future_unref(all);
    for (int i = 0; i < 3; i++)
        loop_task_unref(tasks[i]);
    return example_run(loop);
}
