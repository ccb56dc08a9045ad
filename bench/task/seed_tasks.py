#!/usr/bin/env python3
"""The seed program asyncio-task.py, scaled, for asyncio or uvloop.

    seed_tasks.py [TASKS [STEPS]] [--uvloop]     (default 100000 10)

TASKS tasks, factorial / fibonacci / binomialCoeff in turn, each awaiting
asyncio.sleep(0) STEPS times where the seed awaits asyncio.sleep(1), run
under asyncio.wait(tasks) as the seed does.  The seed's prints are left
out (a million lines would be all there is to measure); each coroutine
returns its result instead, and the sums are printed on an OUTPUT line,
the same as seed_tasks.c prints, so the two can be compared.  A RESULT line
gives the time per step: from creating the first task to the end of
run_until_complete, over TASKS * STEPS.
"""
import argparse
import asyncio
import resource
import time


async def factorial(number):
    f = 1
    for i in range(2, number + 1):
        await asyncio.sleep(0)
        f *= i
    return f


async def fibonacci(number):
    a, b = 0, 1
    for _ in range(number):
        await asyncio.sleep(0)
        a, b = b, a + b
    return a


async def binomialCoeff(n, k):
    result = 1
    for i in range(1, k + 1):
        result = result * (n - i + 1) / i
        await asyncio.sleep(0)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tasks", type=int, nargs="?", default=100000)
    ap.add_argument("steps", type=int, nargs="?", default=10)
    ap.add_argument("--uvloop", action="store_true")
    a = ap.parse_args()
    if a.tasks < 1 or not 1 <= a.steps <= 19:
        ap.error("TASKS >= 1 and 1 <= STEPS <= 19 (factorial(STEPS + 1) fits 64 bits in C)")
    if a.uvloop:
        import uvloop

        loop, name = uvloop.new_event_loop(), "uvloop"
    else:
        loop, name = asyncio.new_event_loop(), "asyncio"
    asyncio.set_event_loop(loop)
    s = a.steps
    kinds = [lambda: factorial(s + 1), lambda: fibonacci(s), lambda: binomialCoeff(2 * s, s)]

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter_ns()
    tasks = [loop.create_task(kinds[i % 3]()) for i in range(a.tasks)]
    loop.run_until_complete(asyncio.wait(tasks))
    ns = time.perf_counter_ns() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    loop.close()

    counts, sums = [0, 0, 0], [0, 0, 0.0]
    for i, t in enumerate(tasks):
        counts[i % 3] += 1
        sums[i % 3] += t.result()
    print(
        f"OUTPUT tasks={a.tasks} steps={s}"
        f" factorial({s + 1})={tasks[0].result()} x{counts[0]} sum={sums[0]}"
        + (f" fibonacci({s})={tasks[1].result()} x{counts[1]} sum={sums[1]}" if a.tasks > 1 else "")
        + (
            f" binomialCoeff({2 * s},{s})={tasks[2].result():.1f} x{counts[2]} sum={sums[2]:.1f}"
            if a.tasks > 2
            else ""
        )
    )
    print(
        f"RESULT seed-{name} ns_per_step={ns / (a.tasks * s):.2f} total_s={ns / 1e9:.3f}"
        f" user_s={cpu1.ru_utime - cpu0.ru_utime:.3f} sys_s={cpu1.ru_stime - cpu0.ru_stime:.3f}"
    )


if __name__ == "__main__":
    main()
