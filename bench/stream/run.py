#!/usr/bin/env python3
"""The stream layers' benchmarks (bench/stream/run.sh runs this).

    bench/stream/run.py --bindir DIR [--runs N] [--out FILE] [--quick]

1. W7 (TCP echo, 50 connections x 64 B) and W8 (HTTP hello under
   `wrk -t1 -c50 -d5s`), exactly as bench/run.py runs them, on libloop's
   raw callbacks, its stream layer in callback form and in task form,
   libuv, libev, libevent and raw epoll, plus Python asyncio (and uvloop)
   running the seed's server as reference rows: every cell interleaved.
2. A 1 GiB one-way transfer over TCP loopback: a blocking read/write loop
   beside both ends on the stream layer (bench_stream transfer).
3. 10,000 idle connections: RSS and library memory per connection
   (bench_stream idle).

Medians with min-max; writes the report (default bench/stream/RESULTS.md).
"""
import argparse
import datetime
import os
import re
import shutil
import stat
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import run as core  # noqa: E402  (bench/run.py)
from workloads import Job  # noqa: E402

# Columns of the W7/W8 table: (title, column, workload suffix).
IMPLS = [
    ("libloop callbacks", "libloop", ""),
    ("streams, callbacks", "libloop", "s"),
    ("streams, tasks", "libloop", "t"),
    ("libuv", "libuv", ""),
    ("libev", "libev", ""),
    ("libevent", "libevent", ""),
    ("raw epoll", "epoll", ""),
    ("asyncio", "asyncio", ""),
    ("uvloop", "uvloop", ""),
]
PEERS = ("libuv", "libev", "libevent")


def python_wrappers(bindir, log):
    """bench_asyncio and bench_uvloop in bindir: the Python servers, run
    by the same driver code as the C columns."""
    py = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else shutil.which("python3")
    if not py:
        log("no python3: the asyncio rows are skipped")
        return []
    made = []
    for name, extra in (("asyncio", ""), ("uvloop", " --uvloop")):
        if extra and subprocess.run([py, "-c", "import uvloop"], capture_output=True).returncode:
            log("uvloop is not installed for " + py + ": its row is skipped")
            continue
        path = os.path.join(bindir, f"bench_{name}")
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\nexec {py} {os.path.join(HERE, 'asyncio_servers.py')} "
                    f"\"$1\"{extra}\n")
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        made.append(name)
    return made


def stats(vals):
    if not vals:
        return None
    s = sorted(vals)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2, s[0], s[-1]


def cell(st, digits=None):
    if st is None:
        return "-"
    med, lo, hi = st
    if lo == hi:
        return core.fmt(med, digits)
    return f"{core.fmt(med, digits)} ({core.fmt(lo, digits)}–{core.fmt(hi, digits)})"


def servers(bindir, runs, log):
    have_py = python_wrappers(bindir, log)
    impls = [i for i in IMPLS if i[1] in ("libloop", "epoll", *PEERS, *have_py)
             and os.access(core.binary(bindir, i[1]), os.X_OK)]
    samples = {}
    workloads = ["w7"] + (["w8"] if shutil.which("wrk") else [])
    for w in workloads:
        jobs = [Job(w + suffix, col, [w + suffix], kind=w) for _, col, suffix in impls]
        log(f"== {w}: {len(jobs)} cells x {runs} runs, interleaved")
        for r in range(runs):
            for title, j in zip([i[0] for i in impls], jobs):
                try:
                    res = core.run_job(bindir, j)
                except (core.Failure, subprocess.TimeoutExpired) as e:
                    log(f"  FAIL {title} {w}: {e}")
                    continue
                if res:
                    samples.setdefault((w, title), []).append(res)
                    log(f"  run {r + 1} {title:18} " +
                        " ".join(f"{k}={core.fmt(v)}" for k, v in res.items()))
    rows = [("W7 TCP echo, 50 conns x 64 B", "round trips/s", "w7", "rt_per_s", "higher"),
            ("W7 server CPU", "us/round trip", "w7", "cpu_us_per_op", "lower"),
            ("W8 HTTP hello, wrk -t1 -c50 -d5s", "requests/s", "w8", "req_per_s", "higher"),
            ("W8 server CPU", "us/request", "w8", "cpu_us_per_op", "lower")]
    head = ["workload", "unit"] + [i[0] for i in impls] + ["callbacks / best peer",
                                                          "tasks / best peer"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    verdicts = []
    for label, unit, w, metric, better in rows:
        sts = {t: stats([s[metric] for s in samples.get((w, t), []) if metric in s])
               for t, _, _ in impls}
        peers = [sts[t] for t, c, _ in impls if c in PEERS and sts[t]]
        best_st = (max(peers) if better == "higher" else min(peers)) if peers else None
        best = best_st[0] if best_st else None
        ratios = []
        for t in ("streams, callbacks", "streams, tasks"):
            if best and sts.get(t):
                ratio = sts[t][0] / best
                ratios.append(f"{ratio:.2f}x")
                if better == "higher":
                    verdicts.append((f"{label}, {t}", ratio, sts[t], best_st))
            else:
                ratios.append("-")
        lines.append("| " + " | ".join([label, unit] + [cell(sts[t]) for t, _, _ in impls]
                                        + ratios) + " |")
    return "\n".join(lines), verdicts


def transfer(bindir, runs, mib, log):
    modes = [("blocking read/write", "blocking"), ("streams, callbacks", "cb"),
             ("streams, tasks", "task")]
    got = {}
    log(f"== transfer of {mib} MiB: {len(modes)} cells x {runs} runs, interleaved")
    for r in range(runs):
        for title, m in modes:
            res = core.run_plain(bindir, Job("t", "stream", ["transfer", f"mode={m}",
                                                             f"mib={mib}"]))
            got.setdefault(title, []).append(res["mib_per_s"])
            log(f"  run {r + 1} {title:20} {res['mib_per_s']:.0f} MiB/s")
    base = stats(got["blocking read/write"])[0]
    lines = ["| | MiB/s | / blocking | target |", "|---|---|---|---|"]
    verdicts = []
    for title, _ in modes:
        st = stats(got[title])
        ratio = st[0] / base
        tgt = "" if title.startswith("blocking") else (
            ">= 0.9x (" + ("met" if ratio >= 0.9 else "MISSED") + ")")
        if tgt:
            verdicts.append((f"{mib} MiB transfer, {title}", ratio))
        lines.append(f"| {title} | {cell(st)} | {ratio:.2f}x | {tgt} |")
    return "\n".join(lines), verdicts


def idle(bindir, runs, n, log):
    lines = ["| form | RSS per connection (B) | library memory per connection (B) |",
             "|---|---|---|"]
    log(f"== {n} idle connections")
    for title, m in (("streams, callbacks", "cb"), ("streams, tasks", "task")):
        rss, lib = [], []
        for _ in range(runs):
            res = core.run_plain(bindir, Job("i", "stream", ["idle", f"mode={m}", f"n={n}"]))
            rss.append(res["rss_per_conn"])
            lib.append(res["lib_per_conn"])
        log(f"  {title}: rss {rss} lib {lib}")
        lines.append(f"| {title} | {cell(stats(rss), 0)} | {cell(stats(lib), 0)} |")
    return "\n".join(lines)


def profile(bindir, log, total=20000):
    """Callgrind's instructions per W7 round trip (the whole server process
    while echo_client runs, start-up included), and where the task form
    spends them: its most costly functions, self cost."""
    if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
        return None
    lines = ["| server | Ir per round trip |", "|---|---|"]
    tops = {}
    for title, w in (("libloop callbacks", "w7"), ("streams, callbacks", "w7s"),
                     ("streams, tasks", "w7t")):
        out = os.path.join(bindir, f"callgrind.stream.{w}.out")
        srv = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                core.binary(bindir, "libloop"), w], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        port = int(srv.stdout.readline().split()[1])
        subprocess.run([os.path.join(bindir, "echo_client"), f"port={port}", "conns=50",
                        "size=64", f"total={total}"], capture_output=True, timeout=600)
        srv.communicate(input="", timeout=120)
        ann = subprocess.run(["callgrind_annotate", out], capture_output=True,
                             text=True).stdout.splitlines()
        total_ir = next(int(x.split()[0].replace(",", "")) for x in ann if "PROGRAM TOTALS" in x)
        lines.append(f"| {title} | {total_ir / total:,.0f} |")
        body = [x for x in ann if "(" in x and "%)" in x and "PROGRAM TOTALS" not in x]
        tops[title] = body[:12]
        log(f"  callgrind {title}: {total_ir / total:,.0f} Ir per round trip")
    md = "\n".join(lines)
    md += "\n\nThe task form's costliest functions (self cost, % of the process):\n\n```\n"
    md += "\n".join(re.sub(r"\s*\[.*\]$", "", x).strip() for x in tops["streams, tasks"])
    return md + "\n```"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bindir", required=True)
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "5")))
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--conns", type=int, default=10000)
    a = ap.parse_args()
    bindir = os.path.abspath(a.bindir)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    info = core.machine(bindir)
    start = datetime.datetime.now()
    w_table, w_verdicts = servers(bindir, a.runs, log)
    t_table, t_verdicts = transfer(bindir, a.runs, a.mib, log)
    i_table = idle(bindir, 3, a.conns, log)
    prof = profile(bindir, log)
    info.append(("load average at end", core.loadavg()))
    elapsed = str(datetime.datetime.now() - start).split(".")[0]
    out = ["# Stream layer benchmarks", "",
           "Produced by `bench/stream/run.sh`; every number below was measured on this "
           "machine in one run of that command.", "", "## Machine", ""]
    out += [f"- {k}: {v}" for k, v in info]
    out += [f"- runs per cell: {a.runs}, interleaved; total time {elapsed}", "",
            "## W7 and W8 on the stream layers", "",
            "The workloads and clients of `bench/run.py` (W7: `echo_client`, W8: `wrk`), "
            "every column interleaved.  *libloop callbacks* is the core's W7/W8 adapter "
            "(`loop_add_reader` and a hand-written buffer); *streams, callbacks* is "
            "`loop_stream.h` (on_data, `loop_stream_read`/`read_until`, "
            "`loop_stream_write`); *streams, tasks* is `loop_stream_task.h` (a task per "
            "connection: `read`/`read_until`, `write`, `drain`).  asyncio and uvloop run "
            "the seed's server (`asyncio_servers.py`) as reference rows.  Median "
            "(min–max); the ratios are over the best of libuv, libev and libevent.", "",
            w_table, "", "## 1 GiB over TCP loopback", "",
            "Sender and receiver in two processes.  *blocking* is a `write()`/`read()` "
            "loop of 64 KiB; the stream rows put both ends on the layer (callbacks: "
            "write while not paused, go on in on_drain, take every byte in on_data; "
            "tasks: `write` + `drain`, `read`).", "", t_table, "",
            f"## {a.conns:,} idle connections", "",
            "After one round trip on each; the growth of the server's RSS, and of what "
            "its loop's allocator holds (the stream layers' and the core's memory), "
            "divided by the connections.  The task form's RSS includes each handler "
            "task's coroutine stack (the pages it touched).", "", i_table, ""]
    if prof:
        out += ["## Where the time goes (callgrind)", "",
                "`valgrind --tool=callgrind` on the W7 server while `echo_client` makes "
                "20,000 round trips over 50 connections (user-space instructions only: "
                "the system calls, which are most of the CPU time in the table above, "
                "are not counted).  The task form pays for a future, a coroutine switch "
                "there and back and a ready-queue hop per message (the shape of "
                "asyncio's StreamReader), and a copy of each message out of the shared "
                "read buffer.", "", prof, ""]
    out += ["## Targets", ""]
    for label, ratio, st, best in w_verdicts:
        verdict = "met" if ratio >= 1.0 else "MISSED"
        if ratio < 1.0 and st[1] <= best[2] and best[1] <= st[2]:
            verdict += ", within the spread"  # the min-max ranges overlap
        out.append(f"- {label}: target >= 1.0x the best peer; {core.fmt(st[0])} vs "
                   f"{core.fmt(best[0])}, {ratio:.2f}x: **{verdict}**")
    for label, ratio in t_verdicts:
        out.append(f"- {label}: target >= 0.9x the blocking loop; {ratio:.2f}x: "
                   f"**{'met' if ratio >= 0.9 else 'MISSED'}**")
    out.append("")
    md = "\n".join(out)
    print(md)
    with open(a.out, "w") as f:
        f.write(md)
    log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
