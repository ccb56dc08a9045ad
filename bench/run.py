#!/usr/bin/env python3
"""Run libloop's benchmarks beside libuv, libev, libevent and raw epoll.

    bench/run.py [--bindir DIR] [--runs N] [--scale S] [--only w1,w5,...]
                 [--no-callgrind] [--out FILE]
    bench/run.py --smoke --bindir DIR
    bench/run.py --callgrind-only [--bindir DIR]

Every workload runs on every column that was built, the columns
interleaved (A B C D E A B C D E ...), --runs times each.  Each run is a
fresh process.  The table gives the median of each cell, its min-max
spread, and libloop's ratio to the best of libuv, libev and libevent (the
raw-epoll column is a baseline, not a peer).  Instruction counts come from
one run of each cell under callgrind, counting only the measured region.

Environment: BENCH_RUNS, BENCH_SCALE (multiplies every N; 0.1 for a quick
look), BENCH_ONLY, BENCH_CALLGRIND=0.

--smoke runs every adapter once with tiny sizes and checks that each one
verified its counts; speed is never pass/fail.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# The tables of what is measured.
from workloads import (  # noqa: E402
    CG_ROWS,
    COLUMNS,
    GROUPS,
    Job,
    PEERS,
    ROWS,
    SMOKE_ARGS,
    TITLES,
    UNSUPPORTED,
)

class Failure(Exception):
    pass


# ---- Workloads ---------------------------------------------------------------


def parse_result(text):
    for line in text.splitlines():
        if line.startswith("RESULT "):
            parts = line.split()
            d = {}
            for kv in parts[3:]:
                k, _, v = kv.partition("=")
                try:
                    d[k] = float(v)
                except ValueError:
                    d[k] = v
            return d
    return None


def binary(bindir, col):
    return os.path.join(bindir, f"bench_{col}")


def run_plain(bindir, job, prefix=(), timeout=600):
    cmd = list(prefix) + [binary(bindir, job.col)] + job.args
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if p.returncode == UNSUPPORTED and "unsupported" in p.stderr:
        return None
    res = parse_result(p.stdout)
    if p.returncode != 0 or res is None:
        raise Failure(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()[-500:]}")
    return res


def run_server(bindir, job, client):
    """Start job's server, run client(port) against it, then stop it."""
    cmd = [binary(bindir, job.col)] + job.args
    srv = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        line = srv.stdout.readline()
        if not line.startswith("PORT "):
            srv.kill()
            _, err = srv.communicate()
            if srv.returncode == UNSUPPORTED and "unsupported" in err:
                return None
            raise Failure(f"{' '.join(cmd)}: no port: {err.strip()[-300:]}")
        port = int(line.split()[1])
        cres = client(port)
    except BaseException:
        srv.kill()
        srv.communicate()
        raise
    try:
        # The servers stop when their stdin closes.
        out, err = srv.communicate(input="", timeout=30)
    except subprocess.TimeoutExpired:
        srv.kill()
        srv.communicate()
        raise Failure(f"{' '.join(cmd)}: did not stop when its stdin closed")
    sres = parse_result(line + out)
    if srv.returncode != 0 or sres is None:
        raise Failure(f"{' '.join(cmd)}: exit {srv.returncode}: {err.strip()[-500:]}")
    return sres, cres


def echo_client(bindir, total, conns=50, http=False):
    def client(port):
        cmd = [os.path.join(bindir, "echo_client"), f"port={port}", f"conns={conns}",
               "size=64", f"total={total}", f"http={int(http)}"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        res = parse_result(p.stdout)
        if p.returncode != 0 or res is None:
            raise Failure(f"echo_client: exit {p.returncode}: {p.stderr.strip()[-300:]}")
        return res
    return client


def wrk_client(seconds):
    def client(port):
        cmd = ["wrk", "-t1", "-c50", f"-d{seconds}s", f"http://127.0.0.1:{port}/"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        if p.returncode != 0:
            raise Failure(f"wrk: exit {p.returncode}: {p.stderr.strip()[-300:]}")
        m = re.search(r"Requests/sec:\s+([\d.]+)", p.stdout)
        n = re.search(r"(\d+) requests in", p.stdout)
        if not m or not n:
            raise Failure(f"wrk: cannot parse: {p.stdout[-300:]}")
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", p.stdout)
        errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                         p.stdout)
        if bad or (errs and any(int(x) for x in errs.groups())):
            raise Failure(f"wrk reported errors: {p.stdout[-400:]}")
        return {"req_per_s": float(m.group(1)), "requests": float(n.group(1))}
    return client


def run_job(bindir, job, smoke=False):
    if job.kind == "w7":
        total = 2000 if smoke else 200000
        r = run_server(bindir, job, echo_client(bindir, total))
        if r is None:
            return None
        s, c = r
        if s["bytes"] != total * 64 or c["round_trips"] != total:
            raise Failure(f"w7 {job.col}: server echoed {s['bytes']:.0f} bytes, "
                          f"expected {total * 64}")
        return {"rt_per_s": c["rt_per_s"], "cpu_us_per_op": s["cpu_ns"] / total / 1e3}
    if job.kind == "w8":
        if smoke:
            r = run_server(bindir, job, echo_client(bindir, 500, conns=10, http=True))
            if r is None:
                return None
            s, c = r
            if s["requests"] != 500:
                raise Failure(f"w8 {job.col}: server answered {s['requests']:.0f} of 500")
            return {"req_per_s": c["rt_per_s"], "cpu_us_per_op": s["cpu_ns"] / 500 / 1e3}
        r = run_server(bindir, job, wrk_client(5))
        if r is None:
            return None
        s, c = r
        # wrk counts the responses it completed; the server may have answered
        # a few more that were in flight when wrk stopped.
        if not c["requests"] <= s["requests"] <= c["requests"] + 50:
            raise Failure(f"w8 {job.col}: server answered {s['requests']:.0f}, "
                          f"wrk completed {c['requests']:.0f}")
        return {"req_per_s": c["req_per_s"], "cpu_us_per_op": s["cpu_ns"] / s["requests"] / 1e3}
    args = job.args
    if smoke:
        args = [args[0]] + SMOKE_ARGS.get(args[0], [])
    return run_plain(bindir, Job(job.key, job.col, args))


# ---- Statistics and the table ---------------------------------------------------


def fmt(v, digits=None):
    if v is None:
        return "-"
    if digits is not None:
        return f"{v:,.{digits}f}"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def cell_stats(samples):
    if not samples:
        return None
    return statistics.median(samples), min(samples), max(samples)


def best_peer(values, better):
    peers = [v for c, v in values.items() if c in PEERS and v is not None]
    if not peers:
        return None
    return min(peers) if better == "lower" else max(peers)


def target_text(target, better):
    if not target:
        return ""
    kind, bound = target
    if kind == "ratio":
        return f"{'<=' if better == 'lower' else '>='} {bound:g}x"
    return f"<= {bound:g}"


def judge_ratio(target, ratio, better):
    kind, bound = target
    if better == "lower":
        return "met" if ratio <= bound else "MISSED"
    return "met" if ratio >= bound else "MISSED"


def overlaps(row, samples, cols, best, med):
    """Does libloop's min-max range overlap the best peer's (a 1.0x target
    missed by noise rather than by design)?"""
    if row.target[1] != 1.0:
        return False
    ranges = {}
    for c in cols:
        vals = [s[row.metric] for s in samples.get((row.jobs.get(c), c), []) if row.metric in s]
        if vals:
            ranges[c] = (min(vals), max(vals))
    peer = next((c for c in PEERS if med.get(c) == best), None)
    if "libloop" not in ranges or peer not in ranges:
        return False
    (a, b), (x, y) = ranges["libloop"], ranges[peer]
    return a <= y and x <= b


def render_table(cols, samples, failures):
    head = ["workload", "unit"] + [TITLES.get(c, c) for c in cols]
    head += ["libloop / best peer", "target"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    verdicts = []
    for row in ROWS:
        med = {}
        cells = []
        for c in cols:
            key = row.jobs.get(c)
            if key is None:
                cells.append("-")
                med[c] = None
                continue
            if (key, c) in failures:
                cells.append("FAIL")
                med[c] = None
                continue
            vals = [s[row.metric] for s in samples.get((key, c), []) if row.metric in s]
            st = cell_stats(vals)
            if st is None:
                cells.append("-")
                med[c] = None
                continue
            med[c] = st[0]
            if st[1] == st[2]:
                cells.append(fmt(st[0], row.digits))
            else:
                cells.append(f"{fmt(st[0], row.digits)} ({fmt(st[1], row.digits)}–"
                             f"{fmt(st[2], row.digits)})")
        best = best_peer(med, row.better)
        mine = med.get("libloop")
        ratio = ""
        if mine is not None and best:
            ratio = f"{mine / best:.2f}x"
        verdict = ""
        if row.target:
            if row.target[0] == "ratio" and mine is not None and best:
                verdict = judge_ratio(row.target, mine / best, row.better)
                if verdict == "MISSED" and overlaps(row, samples, cols, best, med):
                    verdict = "MISSED, within the spread"
            elif row.target[0] == "abs" and mine is not None:
                verdict = "met" if mine <= row.target[1] else "MISSED"
            verdicts.append((row, mine, best, verdict))
        tgt = target_text(row.target, row.better)
        if verdict:
            tgt += f" ({verdict})"
        lines.append("| " + " | ".join([row.label, row.unit] + cells + [ratio, tgt]) + " |")
    return "\n".join(lines), verdicts


# ---- Callgrind --------------------------------------------------------------------


LIB_OBJECTS = {"libloop": "libloop.so", "libuv": "libuv.so", "libev": "libev.so",
               "libevent": "libevent"}


def library_ir(out, col):
    """Ir spent in the library's own shared object (its functions' self
    cost), from callgrind_annotate; None for the raw-epoll column."""
    prefix = LIB_OBJECTS.get(col)
    if not prefix or not shutil.which("callgrind_annotate"):
        return None
    p = subprocess.run(["callgrind_annotate", "--threshold=100", out], capture_output=True,
                       text=True, timeout=300)
    total = 0
    for line in p.stdout.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(.*?\)\s+\S.*\[(.+)\]\s*$", line)
        if m and os.path.basename(m.group(2)).startswith(prefix):
            total += int(m.group(1).replace(",", ""))
    return total


def callgrind_ir(bindir, col, args, outdir):
    """(Ir per operation, the library's share of it) of one run."""
    out = os.path.join(outdir, f"callgrind.{col}.{'_'.join(args).replace('=', '')}.out")
    prefix = ["valgrind", "--tool=callgrind", "--collect-atstart=no",
              f"--callgrind-out-file={out}"]
    res = run_plain(bindir, Job("cg", col, args), prefix=prefix, timeout=1800)
    if res is None:
        return None
    ir = None
    with open(out) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                ir = int(line.split()[1])
    if ir is None:
        raise Failure(f"no totals in {out}")
    lib = library_ir(out, col)
    return ir / res["ops"], None if lib is None else lib / res["ops"]


def run_callgrind(bindir, cols, outdir, log):
    rows = []
    for label, unit, jobs, target in CG_ROWS:
        vals, libs = {}, {}
        for c in cols:
            vals[c] = libs[c] = None
            if c not in jobs:
                continue
            try:
                r = callgrind_ir(bindir, c, jobs[c], outdir)
                if r:
                    vals[c], libs[c] = r
            except (Failure, subprocess.TimeoutExpired) as e:
                log(f"  callgrind {c} {jobs[c]}: FAILED: {e}")
                vals[c] = "FAIL"
        rows.append((label, unit, vals, libs, target))
        log(f"  {label}: " + ", ".join(f"{c}={v if isinstance(v, str) else fmt(v)}"
                                        for c, v in vals.items()))
    head = ["workload", "unit"] + [TITLES.get(c, c) for c in cols] + ["libloop / best peer",
                                                                      "target"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    verdicts = []
    for label, unit, vals, libs, target in rows:
        num = {c: v for c, v in vals.items() if isinstance(v, float)}
        best = best_peer(num, "lower")
        mine = num.get("libloop")
        ratio = f"{mine / best:.2f}x" if mine is not None and best else ""
        tgt = ""
        if target:
            verdict = "met" if mine is not None and mine <= target[1] else "MISSED"
            tgt = f"<= {target[1]:g} ({verdict})"
            verdicts.append((label, unit, mine, target, verdict, libs.get("libloop")))
        cells = []
        for c, v in vals.items():
            if isinstance(v, float) and libs.get(c) is not None:
                cells.append(f"{fmt(v)} ({fmt(libs[c])})")
            else:
                cells.append(v if isinstance(v, str) else fmt(v))
        lines.append("| " + " | ".join([label, unit] + cells + [ratio, tgt]) + " |")
    return "\n".join(lines), verdicts


def epoll_ctl_per_event(bindir, cols, log):
    """W5's epoll_ctl calls per event, from strace: the difference between a
    long and a short run, so that registration and teardown cancel out."""
    if not shutil.which("strace"):
        return None
    res = {}
    for c in cols:
        counts = []
        for rounds in (2, 12):
            with tempfile.NamedTemporaryFile("r", suffix=".strace") as tf:
                cmd = ["strace", "-f", "-c", "-e", "trace=epoll_ctl", "-o", tf.name,
                       binary(bindir, c), "w5", "n=1000", "active=100", f"rounds={rounds}"]
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
                if p.returncode != 0:
                    counts = None
                    break
                m = re.search(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?epoll_ctl",
                              tf.read(), re.M)
                counts.append(int(m.group(1)) if m else 0)
        res[c] = None if counts is None else (counts[1] - counts[0]) / (10 * 1000)
    log("  epoll_ctl per W5 event: " + ", ".join(f"{c}={v}" for c, v in res.items()))
    return res


# ---- Machine details ---------------------------------------------------------------


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=20).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return ""


def machine(bindir):
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    mem = sh("grep MemTotal /proc/meminfo | awk '{printf \"%.1f GiB\", $2/1048576}'")
    ev = sh("awk '/define EV_VERSION_(MAJOR|MINOR)/{printf \"%s%s\", s, $3; s=\".\"}' "
            "/usr/include/ev.h")
    cc = sh(f"grep -m1 CMAKE_C_COMPILER: {bindir}/../CMakeCache.txt | cut -d= -f2")
    return [
        ("date", datetime.datetime.now().strftime("%Y-%m-%d %H:%M")),
        ("cpu", f"{cpu}, {os.cpu_count()} logical CPUs"),
        ("memory", mem),
        ("kernel", platform.release()),
        ("compiler", sh(f"{cc or 'cc'} --version | head -1")),
        ("libuv", sh("pkg-config --modversion libuv") or "not found"),
        ("libev", ev or "not found"),
        ("libevent", sh("pkg-config --modversion libevent_core") or "not found"),
        ("wrk", sh("wrk --version 2>&1 | head -1").split(" Copyright")[0] or "not found"),
        ("valgrind", sh("valgrind --version") or "not found"),
        ("libloop source", source_id()),
        ("load average at start", loadavg()),
    ]


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def source_id():
    """The commit, and a hash of the library's sources as they were built
    (they may differ from the commit)."""
    import hashlib
    h = hashlib.sha256()
    for d in ("include", "src"):
        for name in sorted(os.listdir(os.path.join(ROOT, d))):
            if name.endswith((".c", ".h")):
                with open(os.path.join(ROOT, d, name), "rb") as f:
                    h.update(name.encode() + b"\0" + f.read())
    head = sh(f"git -C {ROOT} rev-parse --short HEAD 2>/dev/null") or "no commit"
    dirty = sh(f"git -C {ROOT} status --porcelain -- src include 2>/dev/null")
    return (f"{head}{' + uncommitted changes' if dirty else ''}; "
            f"sha256 of src/ and include/ {h.hexdigest()[:12]}")


# ---- Main ----------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bindir", default=os.path.join(ROOT, "build-bench", "bench"))
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "5")))
    ap.add_argument("--scale", type=float, default=float(os.environ.get("BENCH_SCALE", "1")))
    ap.add_argument("--only", default=os.environ.get("BENCH_ONLY", ""))
    ap.add_argument("--no-callgrind", action="store_true",
                    default=os.environ.get("BENCH_CALLGRIND", "1") == "0")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--callgrind-only", action="store_true",
                    help="print the instruction-count table only (RESULTS.md is not written)")
    a = ap.parse_args()

    bindir = os.path.abspath(a.bindir)
    cols = [c for c in COLUMNS if os.access(binary(bindir, c), os.X_OK)]
    if "libloop" not in cols:
        sys.exit(f"run.py: no {binary(bindir, 'libloop')}; build with -DLOOP_BUILD_BENCH=ON")
    only = {w.strip() for w in a.only.split(",") if w.strip()}
    groups = [(g, f) for g, f in GROUPS if not only or g in only]
    if not shutil.which("wrk") and not a.smoke:
        print("run.py: wrk not found: W8 is skipped", file=sys.stderr)
        groups = [(g, f) for g, f in groups if g != "w8"]

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    if a.smoke:
        return smoke(bindir, cols, groups, log)
    if a.callgrind_only:
        outdir = os.path.join(bindir, "callgrind")
        os.makedirs(outdir, exist_ok=True)
        table, _ = run_callgrind(bindir, cols, outdir, log)
        print(f"libloop source: {source_id()}\n\n{table}")
        return 0

    machine_info = machine(bindir)
    samples, failures = {}, {}
    start = datetime.datetime.now()
    for g, make in groups:
        jobs = [j for j in make(a.scale) if j.col in cols]
        log(f"== {g}: {len(jobs)} cells x {a.runs} runs, interleaved")
        for r in range(a.runs):
            for j in jobs:
                if (j.key, j.col) in failures:
                    continue
                try:
                    res = run_job(bindir, j)
                except (Failure, subprocess.TimeoutExpired) as e:
                    failures[(j.key, j.col)] = str(e)
                    log(f"  FAIL {j.col} {j.key}: {e}")
                    continue
                if res is None:
                    continue
                samples.setdefault((j.key, j.col), []).append(res)
                brief = " ".join(f"{k}={fmt(v) if isinstance(v, float) else v}"
                                 for k, v in res.items() if k not in ("n", "ops"))
                log(f"  run {r + 1} {j.col:8} {j.key:9} {brief}")

    table, verdicts = render_table(cols, samples, failures)
    cg_table, cg_verdicts, ctl = None, [], None
    if not a.no_callgrind and (not only or only & {"w1", "w2", "w3", "w4", "w5"}):
        if shutil.which("valgrind"):
            outdir = os.path.join(bindir, "callgrind")
            os.makedirs(outdir, exist_ok=True)
            log("== callgrind (one run per cell; only the measured region is counted)")
            cg_table, cg_verdicts = run_callgrind(bindir, cols, outdir, log)
        else:
            log("run.py: valgrind not found: no instruction counts")
    if not only or "w5" in only:
        ctl = epoll_ctl_per_event(bindir, cols, log)
    elapsed = datetime.datetime.now() - start
    machine_info.append(("load average at end", loadavg()))
    with open(os.path.join(bindir, "results.json"), "w") as f:
        json.dump({"samples": [[k, c, v] for (k, c), v in samples.items()],
                   "failures": [[k, c, m] for (k, c), m in failures.items()]}, f, indent=1)

    md = report(a, cols, machine_info, table, cg_table, ctl, verdicts, cg_verdicts, failures,
                elapsed)
    print(md)
    with open(a.out, "w") as f:
        f.write(md)
    log(f"run.py: wrote {a.out}")
    return 1 if failures else 0


def report(a, cols, info, table, cg_table, ctl, verdicts, cg_verdicts, failures, elapsed):
    out = ["# libloop benchmarks", "",
           "Produced by `bench/run.sh` (which calls `bench/run.py`); every number below was "
           "measured on this machine in one run of that command.", "",
           "## Machine", ""]
    out += [f"- {k}: {v}" for k, v in info]
    out += [f"- runs per cell: {a.runs}, interleaved; sizes scaled by {a.scale:g}; "
            f"total time {str(elapsed).split('.')[0]}", "",
            "## Results", "",
            "Median of the runs, with the min–max spread in parentheses.  "
            "The ratio is libloop's median over the best median of libuv, libev and "
            "libevent (below 1 is better for times, above 1 for rates).  "
            "Raw epoll is a baseline written with no library.", "",
            table, ""]
    if ctl:
        out += ["epoll_ctl calls per W5 event (strace, registration excluded): "
                + ", ".join(f"{TITLES.get(c, c)} {v:.3f}" if v is not None else
                            f"{TITLES.get(c, c)} -" for c, v in ctl.items()), ""]
    if cg_table:
        out += ["## Instruction counts", "",
                "`valgrind --tool=callgrind --collect-atstart=no`, one run per cell with "
                "smaller N, counting only the measured region (user-space instructions; "
                "the kernel's work is not in these numbers).  Each cell is all the "
                "instructions of the region per operation, and in parentheses those "
                "executed in the library's own shared object (not the benchmark's "
                "callback, not libc).  The ratio and the targets use the first number.", "",
                cg_table, ""]
    out += ["## Targets", ""]
    for row, mine, best, verdict in verdicts:
        ratio = f", {mine / best:.2f}x the best peer" if best and mine is not None else ""
        out.append(f"- {row.label} ({row.unit}): target {target_text(row.target, row.better)}"
                   f"; libloop {fmt(mine)}{ratio}: **{verdict or 'not measured'}**")
    for label, unit, mine, target, verdict, lib in cg_verdicts:
        share = f" ({fmt(lib)} of them in libloop.so)" if lib is not None else ""
        out.append(f"- {label} ({unit}): target <= {target[1]:g}; libloop {fmt(mine)}{share}: "
                   f"**{verdict}**")
    if ctl and "libloop" in ctl and ctl["libloop"] is not None:
        ok = ctl["libloop"] < 0.001
        out.append(f"- W5 no epoll_ctl per event: libloop {ctl['libloop']:.3f} per event: "
                   f"**{'met' if ok else 'MISSED'}**")
    out.append("")
    if failures:
        out += ["## Failures", ""]
        out += [f"- {c} {k}: {msg}" for (k, c), msg in failures.items()]
        out.append("")
    out += ["## What each column does", "",
            "- libloop: `loop_call_soon` (W1, W2), `loop_call_later` (W3, W9), "
            "`loop_cancel` + `loop_call_later` (W4), `loop_reschedule` (W4''), `loop_add_reader` (W5, W7, W8), "
            "`loop_call_soon_threadsafe` (W6).",
            "- libuv: a `uv_idle_t` per next-iteration callback, `uv_timer_t` "
            "(millisecond timeouts, rounded up), `uv_timer_start` on an active timer to reset, "
            "`uv_poll_t` for W5, `uv_tcp_t` streams with `uv_try_write` for the servers, "
            "`uv_async_t` plus a locked queue for W6.",
            "- libev: `ev_idle`, `ev_timer`, `ev_timer_again` to reset, `ev_io`, "
            "`ev_async` plus a locked queue for W6; epoll backend.",
            "- libevent: `event_active` on an fd-less event (runs in the same pass: no poll "
            "between chained callbacks), `evtimer_add` (re-adding reschedules), persistent "
            "`EV_READ` events with read()/write() for the servers, `event_active` from the "
            "producer thread plus a locked queue for W6; default time cache "
            "(CLOCK_MONOTONIC_COARSE).",
            "- raw epoll: the same work by hand: a ring, an intrusive binary heap, epoll.",
            "",
            "Notes on reading the table:",
            "",
            "- The peers have one way to run a chain, so their W1 cell is shared by W1a and "
            "W1b.  libuv and libev run one callback per loop iteration and poll each time; "
            "libevent runs an event activated from a callback in the same pass, with no "
            "poll in between, so its W1 number is a queue-speed number like W1b's.",
            "- W3 and W4 on libloop use `loop_call_later`, which reads the clock at every "
            "call (asyncio's semantics); the peers use their loop's cached time.  The W3' "
            "and W4' rows show libloop with `loop_call_at(loop, loop_now(loop) + d, ...)`, "
            "which does what the peers do.",
            "- W4 is specified as `loop_cancel` + `loop_call_later`; W4'' uses "
            "`loop_reschedule`, which moves the deadline of the same handle.  Both "
            "carry the W4 target.",
            "- W4 resets run 100 per loop iteration, so the loop's time moves between "
            "batches as it does in a server; only the resets are timed.",
            "- W5 registers every fd once, outside the timed part (libevent's bench.c "
            "re-adds every event per round); a round is N writes, A of them started at once.",
            "- W6 is timed from the first post to the last closure run; the producer posts "
            "as fast as it can.",
            "- W7 and W8 run the client (echo_client or wrk) on the same cores as the server; "
            "with 2 cores, rates there mostly measure the kernel and the scheduler.  Server "
            "CPU per operation is the steadier number.",
            "- W9 lateness is measured from the moment of the call that armed the timer; "
            "its p99 and max are set by the scheduler when the machine is busy (see the load "
            "average).  libuv's timeouts are whole milliseconds from its cached time; "
            "libevent's default clock is CLOCK_MONOTONIC_COARSE; both fire early against "
            "the moment of the call.",
            "- Memory rows are the growth of VmRSS over N items (1,000,000 timers or "
            "callbacks, 18,000 fds), including the handles the peers make the caller "
            "allocate, and the slack of structures that grow by doubling.  W3's RSS is the "
            "peak (VmHWM) over the whole run.",
            "- Instruction counts include the benchmark's own callback (a counter and, in "
            "W1, the call that schedules the next one: about 15 Ir) in every column.  "
            "Under valgrind `clock_gettime` is a system call, not the vDSO, so a clock "
            "read shows as about 20 Ir although it costs about 40 ns here.",
            "- Peers are Debian's packaged builds (shared libraries, -O2); libloop is "
            "built Release (-O3) and linked as a shared library too.",
            ""]
    return "\n".join(out)


def smoke(bindir, cols, groups, log):
    failed = 0
    seen = set()
    for g, make in groups:
        for j in make(0.001):
            if j.col not in cols or (j.key, j.col) in seen:
                continue
            seen.add((j.key, j.col))
            try:
                res = run_job(bindir, j, smoke=True)
            except (Failure, subprocess.TimeoutExpired) as e:
                log(f"FAIL {j.col} {j.key}: {e}")
                failed += 1
                continue
            log(f"ok   {j.col:8} {j.key:9} {'(not built)' if res is None else ''}")
    log(f"bench smoke: {len(seen) - failed} of {len(seen)} passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
