# Random task programs on asyncio (Python 3.11) under a virtual clock, for
# test_task_random.c: each program's spec and the trace asyncio printed.
#     python3 tests/task/hops_random.py [SEED [COUNT]] > FILE
# tests/task/hops_random.txt is seed 1, 200 programs; CI makes thousands
# more with other seeds and runs the suite on them (LOOP_HOPS_FILE=FILE).
#
# A program is a list of task templates; template 0 is the main task, and
# template i spawns only templates above i.  Ops: sK sleeps K/64 s (K=0:
# sleep(0)); pJ spawns template J; aJ awaits the J-th child it spawned; cJ
# cancels it; gJ gathers its children 0..J; wJK waits for child J with a
# timeout of K/64 s; kK schedules a plain callback (K=0: call_soon, else
# call_later K/64 s); fK awaits a future that a plain callback completes
# (the same way); GJ runs a task group of two instances of template J
# whose body sleeps 1/64 s; e0 ends the task with an error.  A task that catches a
# cancel prints it and either goes on (stubborn) or ends cancelled.
#
# The runner is asyncio 3.11 with the deliberate fixes of DESIGN 5.3:
# timers of equal deadline run in the order they were set (rule 10),
# wait_for never swallows a cancel of the waiting task (rule 8, bpo-86296),
# and a task group cancels its children in the order they were created
# (rule 9; 3.11 iterates a set).
import asyncio
import asyncio.events
import asyncio.taskgroups
import asyncio.tasks
import functools
import random
import selectors
import sys

clock = [0.0]
UNIT = 1 / 64  # seconds: exact in binary, so equal deadlines stay equal


class VirtualSelector(selectors.DefaultSelector):
    def select(self, timeout=None):
        if timeout:
            clock[0] += timeout
        return []


seq = {}
_init = asyncio.events.TimerHandle.__init__


def _timer_init(self, *a, **k):
    _init(self, *a, **k)
    seq[id(self)] = len(seq) + 1 + max(seq.values(), default=0)


def _key(h):
    return (h._when, seq[id(h)])


asyncio.events.TimerHandle.__init__ = _timer_init
asyncio.events.TimerHandle.__lt__ = lambda a, b: _key(a) < _key(b)
asyncio.events.TimerHandle.__le__ = lambda a, b: _key(a) <= _key(b)


class OrderedTasks(dict):
    """A set that iterates in insertion order, for TaskGroup._tasks."""

    def add(self, t):
        self[t] = None

    def discard(self, t):
        self.pop(t, None)


_tg_init = asyncio.taskgroups.TaskGroup.__init__


def _tg_ordered_init(self, *a, **k):
    _tg_init(self, *a, **k)
    self._tasks = OrderedTasks()


asyncio.taskgroups.TaskGroup.__init__ = _tg_ordered_init


async def wait_for(fut, timeout):
    """asyncio 3.11's wait_for for a timeout > 0, except that a cancel of
    the waiting task is re-raised even if fut completed meanwhile."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    release = asyncio.tasks._release_waiter
    timeout_handle = loop.call_later(timeout, release, waiter)
    cb = functools.partial(release, waiter)
    fut.add_done_callback(cb)
    try:
        try:
            await waiter
        except asyncio.CancelledError:
            if not fut.done():
                fut.remove_done_callback(cb)
                await asyncio.tasks._cancel_and_wait(fut, loop=loop)
            raise
        if fut.done():
            return fut.result()
        fut.remove_done_callback(cb)
        await asyncio.tasks._cancel_and_wait(fut, loop=loop)
        try:
            return fut.result()
        except asyncio.CancelledError as exc:
            raise asyncio.TimeoutError() from exc
    finally:
        timeout_handle.cancel()


def gen(rng):
    n = rng.randint(2, 5)
    tmpl = []
    for i in range(n):
        ops = []
        nchildren = 0
        for _ in range(rng.randint(1, 6)):
            r = rng.random()
            if r < 0.25 or i == n - 1 and r < 0.6:
                ops.append("s%d" % rng.choice([0, 0, 1, 2, 3]))
            elif i == n - 1 or r < 0.33:
                ops.append("%s%d" % (rng.choice("kf"), rng.choice([0, 0, 1, 2])))
            elif r < 0.49:
                ops.append("p%d" % rng.randint(i + 1, n - 1))
                nchildren += 1
            elif r < 0.53:
                ops.append("G%d" % rng.randint(i + 1, n - 1))
            elif r < 0.66 and nchildren:
                ops.append("a%d" % rng.randrange(nchildren))
            elif r < 0.74 and nchildren:
                ops.append("g%d" % rng.randrange(nchildren))
            elif r < 0.82 and nchildren:
                ops.append("w%d%d" % (rng.randrange(nchildren), rng.choice([1, 2, 4])))
            elif nchildren:
                if rng.random() < 0.7:  # let the child start first
                    ops.append("s%d" % rng.choice([0, 0, 1]))
                ops.append("c%d" % rng.randrange(nchildren))
            else:
                ops.append("s0")
        if i > 0 and rng.random() < 0.15:
            ops.append("e0")
        tmpl.append((rng.random() < 0.4, ops))
    return tmpl


def run(tmpl):
    out = []
    counter = [0]
    events = [0]  # plain callbacks and futures, numbered as scheduled

    def later(k, fn, *args):
        if k:
            loop.call_later(k * UNIT, fn, *args)
        else:
            loop.call_soon(fn, *args)

    def plain(n):
        out.append("C%d" % n)

    def complete(fut, n):
        if not fut.done():
            fut.set_result(n)
            out.append("F%d set" % n)

    def child_outcome(me, kid):
        """What awaiting a done or failing child printed, or None."""
        if kid.cancelled():
            out.append("T%d child cancelled" % me)
            return True
        return None

    async def task(t, me):
        stubborn, ops = tmpl[t]
        kids = []
        for k, op in enumerate(ops):
            out.append("T%d op%d %s" % (me, k, op))
            kind, arg = op[0], int(op[1:])
            try:
                if kind == "s":
                    await asyncio.sleep(arg * UNIT)
                elif kind == "p":
                    counter[0] += 1
                    kids.append(asyncio.create_task(task(arg, counter[0])))
                elif kind == "a" or kind == "w":
                    kid = kids[int(op[1])]
                    try:
                        if kind == "a":
                            v = await kid
                        else:
                            v = await wait_for(kid, int(op[2:]) * UNIT)
                        out.append("T%d got %s" % (me, v))
                    except asyncio.TimeoutError:
                        out.append("T%d timeout" % me)
                    except OSError:
                        out.append("T%d child failed" % me)
                    except asyncio.CancelledError:
                        if not kid.done():
                            raise
                        if not child_outcome(me, kid):
                            raise
                elif kind == "g":
                    try:
                        vs = await asyncio.gather(*kids[: arg + 1])
                        out.append("T%d gathered %s" % (me, " ".join(map(str, vs))))
                    except OSError:
                        out.append("T%d gather failed" % me)
                elif kind == "k":
                    events[0] += 1
                    later(arg, plain, events[0])
                elif kind == "f":
                    events[0] += 1
                    fut = loop.create_future()
                    later(arg, complete, fut, events[0])
                    v = await fut
                    out.append("T%d got F%d" % (me, v))
                elif kind == "G":
                    try:
                        async with asyncio.TaskGroup() as tg:
                            for _ in range(2):
                                counter[0] += 1
                                tg.create_task(task(arg, counter[0]))
                            await asyncio.sleep(UNIT)
                        out.append("T%d group ok" % me)
                    except* OSError:
                        out.append("T%d group failed" % me)
                elif kind == "e":
                    out.append("T%d fails" % me)
                    raise OSError("boom")
                else:
                    out.append("T%d cancel %d" % (me, kids[arg].cancel()))
            except asyncio.CancelledError:
                out.append("T%d caught" % me)
                if not stubborn:
                    raise
        out.append("T%d end" % me)
        return me

    async def main():
        try:
            await task(0, 0)
        except asyncio.CancelledError:
            out.append("main cancelled")

    clock[0] = 0.0
    loop = asyncio.SelectorEventLoop(VirtualSelector())
    loop.time = lambda: clock[0]
    loop.set_exception_handler(lambda loop, ctx: None)  # never-retrieved errors
    loop.run_until_complete(main())
    # Let the tasks nobody awaited run to their end, and the plain
    # callbacks still scheduled run.
    while (asyncio.all_tasks(loop) or loop._ready
           or any(not h.cancelled() for h in loop._scheduled)):
        loop.run_until_complete(asyncio.sleep(UNIT))
    loop.close()
    return out


seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
count = int(sys.argv[2]) if len(sys.argv) > 2 else 200
rng = random.Random(seed)
for _ in range(count):
    tmpl = gen(rng)
    print("program %d" % len(tmpl))
    for stubborn, ops in tmpl:
        print("%d %s" % (stubborn, " ".join(ops)))
    for line in run(tmpl):
        print(line)
    print("end")
