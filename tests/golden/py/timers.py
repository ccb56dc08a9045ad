# The asyncio counterpart of examples/timers.c (not from a seed): a tour of
# call_soon, call_later, call_at, a repeating timer (libloop's call_every,
# written here as a callback that re-arms itself at its previous deadline
# plus the period) and cancel, printing what runs when.
import asyncio

loop = asyncio.new_event_loop()
start = loop.time()
ran = set()


def log(msg):
    print("[%.1f] %s" % (loop.time() - start, msg))


def cancel(handle):
    # libloop's loop_cancel() says whether the callback was still pending.
    if handle.cancelled() or handle in ran:
        return "no such callback"
    handle.cancel()
    return "cancelled"


def soon(name):
    log("call_soon: %s" % name)
    if name == "a":
        loop.call_soon(soon, "c (queued by a, so it runs after b)")


def later():
    ran.add(half)
    log("call_later 0.5 s")


def at():
    log("call_at start + 1.3 s")


def tick():
    global ticks, every
    ticks += 1
    every = loop.call_at(every.when() + 1.0, tick)
    if ticks < 3:
        log("call_every 1.0 s: tick %d" % ticks)
    else:
        log("call_every 1.0 s: tick %d, cancel it: %s" % (ticks, cancel(every)))


def never():
    log("call_later 2.5 s: never runs")


def canceller():
    log("cancel the 2.5 s timer: %s" % cancel(victim))
    log("cancel it again: %s" % cancel(victim))
    log("cancel the 0.5 s timer: %s" % cancel(half))


def stop():
    log("stop")
    loop.stop()


ticks = 0
log("scheduling")
loop.call_soon(soon, "a")
loop.call_soon(soon, "b")
half = loop.call_later(0.5, later)
loop.call_at(start + 1.3, at)
every = loop.call_at(start + 1.0, tick)
victim = loop.call_later(2.5, never)
loop.call_later(1.5, canceller)
loop.call_later(3.5, stop)
loop.run_forever()
loop.close()
