# The hop rules of DESIGN 5.3 on asyncio: the trace that test_task_hops.c
# must print.  Regenerate hops.txt with Python 3.11:
#     python3 tests/task/hops.py > tests/task/hops.txt
# (Timers are 10 ms apart at least, so real time cannot reorder them.)
import asyncio


def say(*a):
    print(*a)


async def sleeper(name, d, refuse=False):
    say(name, "start")
    try:
        await asyncio.sleep(d)
    except asyncio.CancelledError:
        say(name, "cancelled")
        if refuse:
            return name + "-refused"
        raise
    say(name, "woke")
    return name


async def zero(name, n):
    for i in range(n):
        say(name, "step", i)
        await asyncio.sleep(0)
    say(name, "done")


async def waiter(name, fut):
    say(name, "awaits")
    try:
        v = await fut
    except asyncio.CancelledError:
        say(name, "cancelled")
        raise
    say(name, "got", v)
    return v


async def failer(name, d):
    say(name, "start")
    await asyncio.sleep(d)
    say(name, "fails")
    raise OSError("boom")


async def main():
    loop = asyncio.get_running_loop()
    # Rules 1 and 5: spawning and sleep(0) are call_soon, interleaved with callbacks.
    a = asyncio.create_task(zero("a", 2))
    loop.call_soon(say, "cb1")
    b = asyncio.create_task(zero("b", 2))
    say("main spawned")
    await asyncio.sleep(0)
    say("main back")
    await a
    await b
    say("main joined")
    # Rule 3: the waiter runs before what the completing callback queues next.
    fut = loop.create_future()
    w = asyncio.create_task(waiter("w", fut))

    def complete():
        say("complete")
        fut.set_result(7)
        loop.call_soon(say, "after-complete")

    loop.call_later(0.01, complete)
    await w
    say("main got w")
    # Rule 4: a done future is read without a hop.
    loop.call_soon(say, "cb2")
    v = await fut
    say("main read", v)
    await asyncio.sleep(0)
    # Rule 6: a cancel goes down a chain of awaits...
    s = asyncio.create_task(sleeper("s", 10))
    t = asyncio.create_task(waiter("t", s))
    await asyncio.sleep(0)
    say("cancel t", t.cancel())
    try:
        await t
    except asyncio.CancelledError:
        say("t ended cancelled", s.cancelled())
    # ...a task may refuse it, and its awaiter gets its value...
    r = asyncio.create_task(sleeper("r", 10, refuse=True))
    q = asyncio.create_task(waiter("q", r))
    await asyncio.sleep(0)
    say("cancel q", q.cancel())
    v = await q
    say("q got", v)
    # ...and a task cancelled before its first step never runs.
    n = asyncio.create_task(zero("never", 1))
    say("cancel never", n.cancel())
    try:
        await n
    except asyncio.CancelledError:
        say("never cancelled")
    # Rule 7: gather.
    g1 = asyncio.create_task(sleeper("g1", 0.02))
    g2 = asyncio.create_task(sleeper("g2", 0.01))
    res = await asyncio.gather(g1, g2)
    say("gathered", *res)
    # Rule 9: a task group whose second child fails.
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(sleeper("k1", 10))
            tg.create_task(failer("k2", 0.01))
            tg.create_task(sleeper("k3", 10))
            await asyncio.sleep(10)
    except* OSError:
        say("group failed")
    say("main done")


asyncio.run(main())
