# Random task programs on asyncio (Python 3.11) under a virtual clock, for
# test_task_random.c: each program's spec and the trace asyncio printed.
#     python3 tests/task/hops_random.py > tests/task/hops_random.txt
#
# A program is a list of task templates; template 0 is the main task, and
# template i spawns only templates above i.  Ops: sK sleeps K/64 s (K=0:
# sleep(0)); pJ spawns template J; aJ awaits the J-th child it spawned; cJ
# cancels it.  A task that catches a cancel prints it and either goes on
# (stubborn) or ends cancelled.  Timers of equal deadline run in the order
# they were set (DESIGN 5.3 rule 10, one of our deliberate fixes), which
# the harness gives asyncio too.
import asyncio
import asyncio.events
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


def gen(rng):
    n = rng.randint(2, 5)
    tmpl = []
    for i in range(n):
        ops = []
        nchildren = 0
        for _ in range(rng.randint(1, 5)):
            r = rng.random()
            if r < 0.35 or i == n - 1:
                ops.append("s%d" % rng.choice([0, 0, 1, 2, 3]))
            elif r < 0.6:
                ops.append("p%d" % rng.randint(i + 1, n - 1))
                nchildren += 1
            elif r < 0.8 and nchildren:
                ops.append("a%d" % rng.randrange(nchildren))
            elif nchildren:
                if rng.random() < 0.7:  # let the child start first
                    ops.append("s%d" % rng.choice([0, 0, 1]))
                ops.append("c%d" % rng.randrange(nchildren))
            else:
                ops.append("s0")
        tmpl.append((rng.random() < 0.4, ops))
    return tmpl


def run(tmpl):
    out = []
    counter = [0]

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
                elif kind == "a":
                    try:
                        v = await kids[arg]
                        out.append("T%d got %s" % (me, v))
                    except asyncio.CancelledError:
                        if kids[arg].done():
                            out.append("T%d child cancelled" % me)
                        else:
                            raise
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
    loop.run_until_complete(main())
    # Let the tasks nobody awaited run to their end.
    while asyncio.all_tasks(loop):
        loop.run_until_complete(asyncio.sleep(UNIT))
    loop.close()
    return out


rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
for _ in range(200):
    tmpl = gen(rng)
    print("program %d" % len(tmpl))
    for stubborn, ops in tmpl:
        print("%d %s" % (stubborn, " ".join(ops)))
    for line in run(tmpl):
        print(line)
    print("end")
