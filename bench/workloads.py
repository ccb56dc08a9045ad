"""What bench/run.py measures: the columns, the workloads (one Job per
process run), the rows of the table with their targets, and the rows
counted under callgrind.  Data and small helpers only; run.py runs them.
"""

COLUMNS = ["libloop", "libuv", "libev", "libevent", "epoll"]
PEERS = ["libuv", "libev", "libevent"]
TITLES = {"epoll": "raw epoll"}

UNSUPPORTED = 2  # an adapter's exit status for a workload it does not build


def scaled(n, scale, least=1):
    return max(least, int(n * scale))


class Job:
    """One cell's program: a column running one workload with arguments."""

    def __init__(self, key, col, args, kind="plain"):
        self.key, self.col, self.args, self.kind = key, col, args, kind


def w1_jobs(s):
    n = scaled(10_000_000, s, 1000)
    jobs = [Job("w1a", "libloop", ["w1a", f"n={n}"]), Job("w1b", "libloop", ["w1b", f"n={n}"]),
            Job("w1a", "epoll", ["w1a", f"n={n}"]), Job("w1b", "epoll", ["w1b", f"n={n}"])]
    # The peers have one way to run a chain; their cell serves both rows.
    jobs += [Job("w1", c, ["w1", f"n={n}"]) for c in PEERS]
    return jobs


def each(key, args):
    return lambda s: [Job(key, c, args(s)) for c in COLUMNS]


def w3_jobs(s):
    args = [f"n={scaled(1_000_000, s, 100)}"]
    jobs = [Job("w3", c, ["w3"] + args) for c in COLUMNS]
    jobs.insert(1, Job("w3at", "libloop", ["w3at"] + args))
    return jobs


def w4_jobs(s):
    args = [f"n={scaled(10_000_000, s, 1000)}", "timers=100000"]
    jobs = [Job("w4", c, ["w4"] + args) for c in COLUMNS]
    jobs.insert(1, Job("w4at", "libloop", ["w4at"] + args))
    jobs.insert(2, Job("w4re", "libloop", ["w4re"] + args))
    return jobs


def server_jobs(key, streams=()):
    """A server workload on every column, and on libloop's stream layers
    (extra libloop cells, interleaved with the rest)."""
    return lambda s: ([Job(key, c, [key], kind=key) for c in COLUMNS]
                      + [Job(k, "libloop", [k], kind=key) for k in streams])


GROUPS = [
    ("w1", w1_jobs),
    ("w2", each("w2", lambda s: ["w2", f"n={scaled(1_000_000, s, 100)}"])),
    ("w3", w3_jobs),
    ("w4", w4_jobs),
    ("w5", each("w5_1000", lambda s: ["w5", "n=1000", "active=100",
                                      f"rounds={scaled(100, s)}"])),
    ("w5", each("w5_9000", lambda s: ["w5", "n=9000", "active=100",
                                      f"rounds={scaled(20, s)}"])),
    ("w6", each("w6", lambda s: ["w6", f"n={scaled(1_000_000, s, 100)}"])),
    ("w7", server_jobs("w7", ("w7s", "w7t"))),
    ("w8", server_jobs("w8", ("w8s", "w8t"))),
    ("w9", each("w9", lambda s: ["w9", f"rounds={scaled(200, s, 2)}"])),
    ("mem", each("mem_timer", lambda s: ["mem_timer"])),
    ("mem", each("mem_fd", lambda s: ["mem_fd"])),
    ("mem", each("mem_cb", lambda s: ["mem_cb"])),
]

SMOKE_ARGS = {
    "w1": ["n=2000"], "w1a": ["n=2000"], "w1b": ["n=2000"], "w2": ["n=2000"],
    "w3": ["n=2000", "spread_ms=20"], "w3at": ["n=2000", "spread_ms=20"],
    "w4": ["n=5000", "timers=1000"],
    "w4at": ["n=5000", "timers=1000"], "w4re": ["n=5000", "timers=1000"],
    "w5": ["n=50", "active=5", "rounds=3"],
    "w6": ["n=5000"], "w9": ["rounds=3", "max_us=3000"],
    "mem_timer": ["n=2000"], "mem_cb": ["n=2000"], "mem_fd": ["n=100"],
}

# Rows: label, unit, metric, the job of each column, which way is better,
# and the target the lead chases (ratio to the best peer, or absolute).


class Row:
    def __init__(self, label, unit, metric, jobs, better="lower", target=None, digits=None):
        self.label, self.unit, self.metric = label, unit, metric
        self.jobs = jobs  # dict column -> job key (missing: "-")
        self.better, self.target, self.digits = better, target, digits


def same(key, **over):
    d = {c: key for c in COLUMNS}
    d.update(over)
    return d


ROWS = [
    Row("W1a call_soon chain, strict_poll", "ns/callback", "ns_per_op",
        same("w1", libloop="w1a", epoll="w1a")),
    Row("W1b call_soon chain, defaults", "ns/callback", "ns_per_op",
        same("w1", libloop="w1b", epoll="w1b"), target=("ratio", 0.6)),
    Row("W2 fan-out, 1M callbacks", "ns/callback", "ns_per_op", same("w2"),
        target=("ratio", 0.8)),
    Row("W3 1M timers: setup", "ns/timer", "setup_ns", same("w3"), target=("ratio", 0.7)),
    Row("W3' setup, libloop via call_at(loop_now() + d)", "ns/timer", "setup_ns",
        same("w3", libloop="w3at")),
    Row("W3 1M timers: run-phase CPU", "ns/timer", "run_cpu_ns", same("w3"),
        target=("ratio", 1.0)),
    Row("W3 1M timers: peak RSS", "B/timer", "rss_per_timer", same("w3"),
        target=("abs", 48)),
    Row("W4 reset churn (cancel + call_later)", "ns/reset", "ns_per_op", same("w4"),
        target=("ratio", 0.5)),
    Row("W4' reset churn, libloop via call_at(loop_now() + 30 s)", "ns/reset", "ns_per_op",
        same("w4", libloop="w4at")),
    Row("W4'' reset churn, libloop via loop_reschedule", "ns/reset", "ns_per_op",
        same("w4", libloop="w4re"), target=("ratio", 0.5)),
    Row("W5 ping-pong N=1000, A=100", "us/round", "us_per_round", same("w5_1000")),
    Row("W5 ping-pong N=1000, A=100", "ns/event", "ns_per_event", same("w5_1000")),
    Row("W5 ping-pong N=9000, A=100", "us/round", "us_per_round", same("w5_9000")),
    Row("W5 ping-pong N=9000, A=100", "ns/event", "ns_per_event", same("w5_9000")),
    Row("W6 cross-thread posts, 1M", "ns/closure", "ns_per_op", same("w6"),
        target=("ratio", 1.0)),
    Row("W7 TCP echo, 50 conns x 64 B", "round trips/s", "rt_per_s", same("w7"),
        better="higher", target=("ratio", 1.0)),
    Row("W7 TCP echo: server CPU", "us/round trip", "cpu_us_per_op", same("w7")),
    Row("W7' TCP echo, libloop streams, callbacks", "round trips/s", "rt_per_s",
        same("w7", libloop="w7s"), better="higher", target=("ratio", 1.0)),
    Row("W7' TCP echo, streams, callbacks: server CPU", "us/round trip", "cpu_us_per_op",
        same("w7", libloop="w7s")),
    Row("W7'' TCP echo, libloop streams, tasks", "round trips/s", "rt_per_s",
        same("w7", libloop="w7t"), better="higher", target=("ratio", 1.0)),
    Row("W7'' TCP echo, streams, tasks: server CPU", "us/round trip", "cpu_us_per_op",
        same("w7", libloop="w7t")),
    Row("W8 HTTP hello, wrk -t1 -c50 -d5s", "requests/s", "req_per_s", same("w8"),
        better="higher", target=("ratio", 1.0)),
    Row("W8 HTTP hello: server CPU", "us/request", "cpu_us_per_op", same("w8")),
    Row("W8' HTTP hello, libloop streams, callbacks", "requests/s", "req_per_s",
        same("w8", libloop="w8s"), better="higher", target=("ratio", 1.0)),
    Row("W8' HTTP hello, streams, callbacks: server CPU", "us/request", "cpu_us_per_op",
        same("w8", libloop="w8s")),
    Row("W8'' HTTP hello, libloop streams, tasks", "requests/s", "req_per_s",
        same("w8", libloop="w8t"), better="higher", target=("ratio", 1.0)),
    Row("W8'' HTTP hello, streams, tasks: server CPU", "us/request", "cpu_us_per_op",
        same("w8", libloop="w8t")),
    Row("W9 timer lateness p50", "us", "p50_us", same("w9"), target=("abs", 40)),
    Row("W9 timer lateness p99", "us", "p99_us", same("w9"), target=("abs", 150)),
    Row("W9 timer lateness max", "us", "max_us", same("w9")),
    Row("W9 timers fired early (of 10,000)", "count", "early", same("w9"),
        target=("abs", 0), digits=0),
    Row("Memory per pending timer", "bytes", "bytes_per_item", same("mem_timer")),
    Row("Memory per registered fd", "bytes", "bytes_per_item", same("mem_fd")),
    Row("Memory per queued callback", "bytes", "bytes_per_item", same("mem_cb")),
]

# Callgrind: smaller N; Ir of the measured region per operation.
CG_ROWS = [
    ("W1a call_soon chain, strict_poll", "Ir/callback",
     {"libloop": ["w1a", "n=200000"], "epoll": ["w1a", "n=200000"],
      **{c: ["w1", "n=200000"] for c in PEERS}}, None),
    ("W1b call_soon chain, defaults", "Ir/callback",
     {"libloop": ["w1b", "n=200000"], "epoll": ["w1b", "n=200000"],
      **{c: ["w1", "n=200000"] for c in PEERS}}, ("abs", 40)),
    ("W2 fan-out", "Ir/callback", {c: ["w2", "n=200000"] for c in COLUMNS}, None),
    ("W3 setup (N=100,000)", "Ir/timer", {c: ["w3", "n=100000"] for c in COLUMNS}, None),
    ("W3' setup, libloop via call_at", "Ir/timer",
     {"libloop": ["w3at", "n=100000"],
      **{c: ["w3", "n=100000"] for c in COLUMNS if c != "libloop"}}, None),
    ("W4 reset churn (cancel + call_later)", "Ir/reset",
     {c: ["w4", "n=200000", "timers=100000"] for c in COLUMNS}, None),
    ("W4' reset churn, libloop via call_at", "Ir/reset",
     {"libloop": ["w4at", "n=200000", "timers=100000"],
      **{c: ["w4", "n=200000", "timers=100000"] for c in COLUMNS if c != "libloop"}}, None),
    ("W4'' reset churn, libloop via loop_reschedule", "Ir/reset",
     {"libloop": ["w4re", "n=200000", "timers=100000"],
      **{c: ["w4", "n=200000", "timers=100000"] for c in COLUMNS if c != "libloop"}}, None),
    ("W5 ping-pong N=1000, A=100", "Ir/event",
     {c: ["w5", "n=1000", "active=100", "rounds=20"] for c in COLUMNS}, ("abs", 100)),
]


# ---- Running one job -----------------------------------------------------------
