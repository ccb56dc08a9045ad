"""What bench/run.py measures: the columns, the targets, the workloads (one
Job per process run, each naming the primitive it uses), the rows of the
table and the rows counted under callgrind.  Data and small helpers only;
run.py runs them.
"""

COLUMNS = ["libloop", "libuv", "libev", "libevent", "epoll"]
PEERS = ["libuv", "libev", "libevent"]
TITLES = {"epoll": "raw epoll"}

UNSUPPORTED = 2  # an adapter's exit status for a workload it does not build


# ---- Targets ------------------------------------------------------------------
#
# What libloop chases, in one place: edit a bound here and the next run's
# verdicts follow.  ref "best" is the fastest variant of any peer (libuv,
# libev, libevent; see the rows' cells below); a column name ("epoll",
# "libuv") is that column's fastest variant; "abs" is libloop's own figure.
# stable: the run-by-run ratios (libloop's run i over the same peer
# variant's run i, which ran beside it) must lie within this fraction of
# their median, so a verdict cannot flip between two runs of the table;
# from 5 runs up the highest and the lowest are left out, so that one run
# disturbed by another process on a shared machine cannot decide it alone
# (the full range is printed beside).
# every_run: an absolute bound that the worst run must meet, not the median.


class Target:
    def __init__(self, bound, ref="best", stable=None, every_run=False):
        self.bound, self.ref, self.stable, self.every_run = bound, ref, stable, every_run


TARGETS = {
    "W1a": Target(1.1, ref="epoll"),
    "W1b": Target(0.6),
    "W1b Ir": Target(40, ref="abs"),
    "W2b": Target(0.8),
    "W3 setup": Target(0.7),
    "W3 run CPU": Target(1.0),
    "W3 peak RSS": Target(40, ref="abs"),  # MB for 1M timers
    "W4": Target(0.5, stable=0.10),
    "W5 Ir": Target(100, ref="abs"),
    "W6": Target(1.0, ref="libuv"),  # and every closure run exactly once (checked by every run)
    "W9 p99": Target(100, ref="abs"),
    "W9 early": Target(0, ref="abs", every_run=True),
}


def scaled(n, scale, least=1):
    return max(least, int(n * scale))


class Job:
    """One cell's program: a column running one workload with arguments.
    prim names the library primitive it measures; cg holds the arguments of
    its callgrind run (smaller sizes), if it has one."""

    def __init__(self, key, col, args, prim="", kind="plain", cg=None):
        self.key, self.col, self.args, self.prim = key, col, args, prim
        self.kind, self.cg = kind, cg


# The primitive each peer's adapter uses, by (workload, column).
PRIMS = {
    ("w1", "libuv"): "uv_idle", ("w1_timer", "libuv"): "uv_timer 0 ms",
    ("w1", "libev"): "ev_idle", ("w1_feed", "libev"): "ev_feed_event",
    ("w1", "libevent"): "event_active", ("w1_timer", "libevent"): "evtimer 0 s",
    ("w2", "libuv"): "uv_idle", ("w2_timer", "libuv"): "uv_timer 0 ms",
    ("w2", "libev"): "ev_idle", ("w2_feed", "libev"): "ev_feed_event",
    ("w2", "libevent"): "event_active", ("w2_timer", "libevent"): "evtimer 0 s",
    ("w3", "libuv"): "uv_timer", ("w3", "libev"): "ev_timer", ("w3", "libevent"): "evtimer_add",
    ("w4", "libuv"): "uv_timer_start", ("w4", "libev"): "ev_timer_again",
    ("w4", "libevent"): "evtimer_add", ("w4_common", "libevent"): "evtimer_add, common timeout",
    ("w5", "libuv"): "uv_poll", ("w5", "libev"): "ev_io", ("w5", "libevent"): "EV_READ|EV_PERSIST",
    ("w6", "libuv"): "uv_async + locked queue", ("w6", "libev"): "ev_async + locked queue",
    ("w6", "libevent"): "event_active + locked queue",
    ("w7", "libuv"): "uv_tcp", ("w7", "libev"): "ev_io", ("w7", "libevent"): "EV_READ|EV_PERSIST",
    ("w8", "libuv"): "uv_tcp", ("w8", "libev"): "ev_io", ("w8", "libevent"): "EV_READ|EV_PERSIST",
    ("w9", "libuv"): "uv_timer (ms)", ("w9", "libev"): "ev_timer",
    ("w9", "libevent"): "evtimer_add", ("w9_precise", "libevent"): "evtimer_add, PRECISE_TIMER",
    ("mem_timer", "libuv"): "uv_timer", ("mem_timer", "libev"): "ev_timer",
    ("mem_timer", "libevent"): "evtimer_add", ("mem_fd", "libuv"): "uv_poll",
    ("mem_fd", "libev"): "ev_io", ("mem_fd", "libevent"): "EV_READ|EV_PERSIST",
    ("mem_cb", "libuv"): "uv_idle", ("mem_cb", "libev"): "ev_idle",
    ("mem_cb", "libevent"): "event_active",
}
PRIMS.update({("w5_9000", c): PRIMS[("w5", c)] for c in PEERS})


def job(key, col, args, cg=None, kind="plain"):
    return Job(key, col, [key] + args, PRIMS.get((key, col), ""), kind, cg and [key] + cg)


# W1: a chain of callbacks, each scheduling the next.  The primitives that
# poll once per callback (W1a's) run 1M; the queue-speed ones 10M.
POLLING_W1 = [("libloop", "w1a"), ("epoll", "w1a"), ("libuv", "w1"), ("libev", "w1"),
              ("libevent", "w1_timer")]
QUEUED_W1 = [("libloop", "w1b"), ("epoll", "w1b"), ("libuv", "w1_timer"), ("libev", "w1_feed"),
             ("libevent", "w1")]


def w1_jobs(s):
    slow, fast = scaled(1_000_000, s, 1000), scaled(10_000_000, s, 1000)
    return ([job(k, c, [f"n={slow}"], cg=["n=50000"]) for c, k in POLLING_W1]
            + [job(k, c, [f"n={fast}"], cg=["n=200000"]) for c, k in QUEUED_W1])


def w2_jobs(s):
    n = [f"n={scaled(1_000_000, s, 100)}"]
    cells = [(c, "w2") for c in COLUMNS] + [("libuv", "w2_timer"), ("libev", "w2_feed"),
                                            ("libevent", "w2_timer")]
    return [job(k, c, n, cg=["n=200000"]) for c, k in cells]


def w3_jobs(s):
    n = [f"n={scaled(1_000_000, s, 100)}"]
    cells = [(c, "w3") for c in COLUMNS] + [("libloop", "w3at")]
    return [job(k, c, n, cg=["n=100000"]) for c, k in cells]


def w4_jobs(s):
    args = [f"n={scaled(5_000_000, s, 1000)}", "timers=100000"]
    cells = [(c, "w4") for c in COLUMNS] + [("libloop", "w4at"), ("libloop", "w4re"),
                                            ("libloop", "w4ra"), ("libevent", "w4_common")]
    return [job(k, c, args, cg=["n=200000", "timers=100000"]) for c, k in cells]


def each(key, args, cg=None, kind="plain", extra=()):
    def make(s):
        cells = [(c, key) for c in COLUMNS] + list(extra)
        return [job(k, c, args(s), cg=cg, kind=kind) for c, k in cells]
    return make


# (group, how many runs of each cell by default, its jobs at a scale)
GROUPS = [
    ("w1", 5, w1_jobs),
    ("w2", 5, w2_jobs),
    ("w3", 5, w3_jobs),
    ("w4", 7, w4_jobs),
    ("w5", 5, each("w5", lambda s: ["n=1000", "active=100", f"rounds={scaled(100, s)}"],
                   cg=["n=1000", "active=100", "rounds=20"])),
    ("w5", 5, lambda s: [Job("w5_9000", c, ["w5", "n=9000", "active=100",
                                            f"rounds={scaled(20, s)}"], PRIMS.get(("w5", c), ""))
                         for c in COLUMNS]),
    ("w6", 5, each("w6", lambda s: [f"n={scaled(1_000_000, s, 100)}"])),
    # The stream layers' servers are extra libloop cells of W7 and W8.
    ("w7", 5, each("w7", lambda s: [], kind="w7",
                   extra=[("libloop", "w7s"), ("libloop", "w7t")])),
    ("w8", 3, each("w8", lambda s: [], kind="w8",
                   extra=[("libloop", "w8s"), ("libloop", "w8t")])),
    ("w9", 5, each("w9", lambda s: [f"rounds={scaled(200, s, 2)}"],
                   extra=[("libevent", "w9_precise")])),
    ("mem", 3, each("mem_timer", lambda s: [])),
    ("mem", 3, each("mem_fd", lambda s: [])),
    ("mem", 3, each("mem_cb", lambda s: [])),
]

W8_SECONDS = 3  # wrk -d

SMOKE_ARGS = {
    "w1": ["n=2000"], "w1a": ["n=2000"], "w1b": ["n=2000"], "w1_feed": ["n=2000"],
    "w1_timer": ["n=2000"], "w2": ["n=2000"], "w2_feed": ["n=2000"], "w2_timer": ["n=2000"],
    "w3": ["n=2000", "spread_ms=20"], "w3at": ["n=2000", "spread_ms=20"],
    "w4": ["n=5000", "timers=1000"], "w4at": ["n=5000", "timers=1000"],
    "w4re": ["n=5000", "timers=1000"], "w4ra": ["n=5000", "timers=1000"],
    "w4_common": ["n=5000", "timers=1000"],
    "w5": ["n=50", "active=5", "rounds=3"],
    "w6": ["n=5000"], "w9": ["rounds=3", "max_us=3000"], "w9_precise": ["rounds=3", "max_us=3000"],
    "mem_timer": ["n=2000"], "mem_cb": ["n=2000"], "mem_fd": ["n=100"],
}


# ---- Rows ------------------------------------------------------------------------
#
# A row: label, unit, metric (a key of the RESULT line), cells (column ->
# the job keys of its variants; a peer's cell shows its fastest variant and
# names it), which way is better, and the name of its target in TARGETS.


class Row:
    def __init__(self, label, unit, metric, cells, better="lower", target=None, digits=None,
                 cg_extra=()):
        self.label, self.unit, self.metric = label, unit, metric
        self.cells = {c: [k] if isinstance(k, str) else list(k) for c, k in cells.items()}
        self.better, self.digits, self.cg_extra = better, digits, list(cg_extra)
        self.target_name = target
        self.target = TARGETS[target] if target else None


def same(key, **over):
    d = {c: key for c in COLUMNS}
    d.update(over)
    return d


W1A_CELLS = {c: k for c, k in POLLING_W1}
W1B_CELLS = {"libloop": "w1b", "epoll": "w1b", "libuv": ["w1", "w1_timer"],
             "libev": ["w1", "w1_feed"], "libevent": ["w1", "w1_timer"]}
W2_CELLS = same("w2", libuv=["w2", "w2_timer"], libev=["w2", "w2_feed"],
                libevent=["w2", "w2_timer"])
W4_PEERS = {"libuv": "w4", "libev": "w4", "libevent": ["w4", "w4_common"], "epoll": "w4"}
W9_CELLS = same("w9", libevent=["w9", "w9_precise"])

ROWS = [
    Row("W1a chain with one poll per iteration", "ns/callback", "ns_per_op", W1A_CELLS,
        target="W1a"),
    Row("W1b call_soon chain", "ns/callback", "ns_per_op", W1B_CELLS, target="W1b"),
    Row("W2b fan-out 1M", "ns/callback", "ns_per_op", W2_CELLS, target="W2b"),
    Row("W3 1M timers: setup", "ns/timer", "setup_ns", same("w3"), target="W3 setup"),
    Row("W3' setup, libloop via call_at(loop_now() + d)", "ns/timer", "setup_ns",
        same("w3", libloop="w3at")),
    Row("W3 1M timers: run CPU", "ns/timer", "run_cpu_ns", same("w3"), target="W3 run CPU"),
    Row("W3 1M timers: peak RSS", "MB per 1M timers", "rss_per_timer", same("w3"),
        target="W3 peak RSS"),
    Row("W4 reset 1 of 100k timers (loop_reschedule)", "ns/reset", "ns_per_op",
        {"libloop": "w4re", **W4_PEERS}, target="W4"),
    Row("W4' via loop_reschedule_at(loop_now() + 30 s)", "ns/reset", "ns_per_op",
        {"libloop": "w4ra", **W4_PEERS}),
    Row("W4 via loop_cancel + loop_call_later", "ns/reset", "ns_per_op",
        {"libloop": "w4", **W4_PEERS}, target="W4"),
    Row("W4 via loop_cancel + loop_call_at(loop_now() + 30 s)", "ns/reset", "ns_per_op",
        {"libloop": "w4at", **W4_PEERS}),
    Row("W4 mean of all batches (loop_reschedule)", "ns/reset", "mean_ns",
        {"libloop": "w4re", **W4_PEERS}),
    Row("W5 fd ping-pong N=1000, A=100", "ns/event", "ns_per_event", same("w5")),
    Row("W5 fd ping-pong N=9000, A=100", "ns/event", "ns_per_event", same("w5_9000")),
    Row("W6 cross-thread post, 1M (each run exactly once, checked)", "ns/closure", "ns_per_op",
        same("w6"), target="W6"),
    Row("W7 TCP echo, 50 conns x 64 B", "round trips/s", "rt_per_s", same("w7"),
        better="higher"),
    Row("W7 TCP echo: server CPU", "us/round trip", "cpu_us_per_op", same("w7")),
    Row("W7' TCP echo, libloop streams, callbacks", "round trips/s", "rt_per_s",
        same("w7", libloop="w7s"), better="higher"),
    Row("W7' TCP echo, streams, callbacks: server CPU", "us/round trip", "cpu_us_per_op",
        same("w7", libloop="w7s")),
    Row("W7'' TCP echo, libloop streams, tasks", "round trips/s", "rt_per_s",
        same("w7", libloop="w7t"), better="higher"),
    Row("W7'' TCP echo, streams, tasks: server CPU", "us/round trip", "cpu_us_per_op",
        same("w7", libloop="w7t")),
    Row(f"W8 HTTP hello, wrk -t1 -c50 -d{W8_SECONDS}s", "requests/s", "req_per_s", same("w8"),
        better="higher"),
    Row("W8 HTTP hello: server CPU", "us/request", "cpu_us_per_op", same("w8")),
    Row("W8' HTTP hello, libloop streams, callbacks", "requests/s", "req_per_s",
        same("w8", libloop="w8s"), better="higher"),
    Row("W8' HTTP hello, streams, callbacks: server CPU", "us/request", "cpu_us_per_op",
        same("w8", libloop="w8s")),
    Row("W8'' HTTP hello, libloop streams, tasks", "requests/s", "req_per_s",
        same("w8", libloop="w8t"), better="higher"),
    Row("W8'' HTTP hello, streams, tasks: server CPU", "us/request", "cpu_us_per_op",
        same("w8", libloop="w8t")),
    Row("W9 timer lateness p50", "us", "p50_us", W9_CELLS),
    Row("W9 timer lateness p99", "us", "p99_us", W9_CELLS, target="W9 p99"),
    Row("W9 timer lateness max", "us", "max_us", W9_CELLS),
    Row("W9 timers fired early (of 10,000)", "count", "early", W9_CELLS, target="W9 early",
        digits=0),
    Row("Memory per pending timer", "bytes", "bytes_per_item", same("mem_timer")),
    Row("Memory per registered fd", "bytes", "bytes_per_item", same("mem_fd")),
    Row("Memory per queued callback", "bytes", "bytes_per_item", same("mem_cb")),
]

# Callgrind: every CPU-bound row, each cell's variants run once with its
# job's cg arguments (plus cg_extra); Ir of the measured region per
# operation.  W6 is left out: two threads under valgrind run one at a time.
CG_ROWS = [
    Row("W1a chain with one poll per iteration", "Ir/callback", "ir", W1A_CELLS),
    Row("W1b call_soon chain", "Ir/callback", "ir", W1B_CELLS, target="W1b Ir"),
    Row("W2b fan-out", "Ir/callback", "ir", W2_CELLS),
    Row("W3 setup (N=100,000)", "Ir/timer", "ir", same("w3")),
    Row("W3' setup, libloop via call_at", "Ir/timer", "ir", same("w3", libloop="w3at")),
    Row("W3 run phase (N=100,000 over 100 ms)", "Ir/timer", "ir", same("w3"),
        cg_extra=["count_run=1", "spread_ms=100"]),
    Row("W4 reset 1 of 100k timers (loop_reschedule)", "Ir/reset", "ir",
        {"libloop": "w4re", **W4_PEERS}),
    Row("W4' via loop_reschedule_at", "Ir/reset", "ir", {"libloop": "w4ra", **W4_PEERS}),
    Row("W4 via loop_cancel + loop_call_later", "Ir/reset", "ir", {"libloop": "w4", **W4_PEERS}),
    Row("W4 via loop_cancel + loop_call_at", "Ir/reset", "ir", {"libloop": "w4at", **W4_PEERS}),
    Row("W5 fd ping-pong N=1000, A=100", "Ir/event", "ir", same("w5"), target="W5 Ir"),
]
