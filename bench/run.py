#!/usr/bin/env python3
"""Run libloop's benchmarks beside libuv, libev, libevent and raw epoll.

    bench/run.py [--bindir DIR] [--runs N] [--scale S] [--only w1,w5,...]
                 [--no-callgrind] [--out FILE]
    bench/run.py --smoke --bindir DIR
    bench/run.py --callgrind-only [--bindir DIR]

Every workload runs on every column that was built, and on every variant
of a peer (each primitive that peer offers for the job), the cells
interleaved (A B C D E A B C D E ...), each group's number of runs (see
workloads.GROUPS; --runs overrides them all).  Each run is a fresh process.
The table gives the median of each cell, its min-max spread, and libloop's
ratio to the best variant of libuv, libev and libevent, named (the
raw-epoll column is a baseline, not a peer).  Instruction counts come from
one run of each variant under callgrind, counting only the measured region,
two at a time (instruction counts do not depend on the other core).

Environment: BENCH_RUNS, BENCH_SCALE (multiplies every N; 0.1 for a quick
look), BENCH_ONLY, BENCH_CALLGRIND=0.

--smoke runs every adapter and every variant once with tiny sizes and
checks that each one verified its counts; speed is never pass/fail.
"""

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import report  # noqa: E402
from workloads import (  # noqa: E402
    CG_ROWS,
    COLUMNS,
    GROUPS,
    PEERS,
    ROWS,
    SMOKE_ARGS,
    TITLES,
    UNSUPPORTED,
    W8_SECONDS,
    Job,
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
        r = run_server(bindir, job, wrk_client(W8_SECONDS))
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
    return run_plain(bindir, Job(job.key, job.col, args, job.prim))


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


def cg_args(job, extra):
    return [job.cg[0]] + list(extra) + job.cg[1:]


def run_callgrind(bindir, cols, outdir, log, workers=2):
    """The instruction-count table: every variant of every CG row, run once."""
    registry = {(j.key, j.col): j for _, _, make in GROUPS for j in make(1.0)}
    todo = {}
    for row in CG_ROWS:
        for c in cols:
            for k in row.cells.get(c, []):
                j = registry.get((k, c))
                if j is not None and j.cg:
                    todo[(c, tuple(cg_args(j, row.cg_extra)))] = None

    def one(item):
        c, args = item
        try:
            return item, callgrind_ir(bindir, c, list(args), outdir), None
        except (Failure, subprocess.TimeoutExpired) as e:
            return item, None, str(e)

    failures = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for item, res, err in pool.map(one, list(todo)):
            todo[item] = res
            if err:
                failures[item] = err
                log(f"  callgrind {item[0]} {' '.join(item[1])}: FAILED: {err}")
            else:
                log(f"  callgrind {item[0]:8} {' '.join(item[1]):40} "
                    f"{report.fmt(res[0]) if res else 'not built'}")

    def item_of(row, k, c):
        j = registry.get((k, c))
        return (c, tuple(cg_args(j, row.cg_extra))) if j is not None and j.cg else None

    def table_for(row):
        def values(k, c):
            r = todo.get(item_of(row, k, c))
            return [r[0]] if r else []

        def share(k, c):
            r = todo.get(item_of(row, k, c))
            return report.fmt(r[1]) if r and r[1] is not None else None
        return values, share

    lines, verdicts, variants = [], [], []
    for row in CG_ROWS:
        fails = {}
        for c in cols:
            for k in row.cells.get(c, []):
                if item_of(row, k, c) in failures:
                    fails[(k, c)] = failures[item_of(row, k, c)]
        values, share = table_for(row)
        t, v, var = report.render([row], cols, values, fails, note=share)
        lines += t.splitlines()[0 if not lines else 2:]
        verdicts += v
        variants += var
    return "\n".join(lines), report.variants_table(variants), verdicts, failures


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
        ("clocksource", sh("cat /sys/devices/system/clocksource/clocksource0/"
                           "current_clocksource") or "unknown"),
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
        for top, dirs, files in os.walk(os.path.join(ROOT, d)):
            dirs.sort()
            for name in sorted(files):
                if name.endswith((".c", ".h", ".S")):
                    path = os.path.join(top, name)
                    with open(path, "rb") as f:
                        h.update(os.path.relpath(path, ROOT).encode() + b"\0" + f.read())
    head = sh(f"git -C {ROOT} rev-parse --short HEAD 2>/dev/null") or "no commit"
    dirty = sh(f"git -C {ROOT} status --porcelain -- src include 2>/dev/null")
    return (f"{head}{' + uncommitted changes' if dirty else ''}; "
            f"sha256 of src/ and include/ {h.hexdigest()[:12]}")


class CpuUse:
    """CPU time the rest of the machine used while we ran: all busy time
    (/proc/stat: user, nice, system) minus ours and our children's."""

    HZ = os.sysconf("SC_CLK_TCK")

    def __init__(self):
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        self.busy = (v[0] + v[1] + v[2]) / self.HZ
        self.steal = (v[7] if len(v) > 7 else 0) / self.HZ
        t = os.times()
        self.ours = t.user + t.system + t.children_user + t.children_system
        self.wall = time.monotonic()

    def others_since(self, start):
        """(CPUs' worth used by other processes, stolen by the hypervisor)."""
        wall = max(self.wall - start.wall, 1e-9)
        others = (self.busy - start.busy) - (self.ours - start.ours)
        return max(0.0, others) / wall, (self.steal - start.steal) / wall


# ---- Main ----------------------------------------------------------------------------


def runs_text(groups, override):
    if override:
        return str(override)
    by = {}
    for g, runs, _ in groups:
        by.setdefault(runs, []).append(g)
    common = max(by, key=lambda r: len(by[r]))
    rest = "; ".join(f"{', '.join(dict.fromkeys(gs))}: {r}" for r, gs in sorted(by.items())
                     if r != common)
    return f"{common}" + (f" ({rest})" if rest else "")


def shared_text(others, steal, ncpu):
    if others < 0.05:
        text = (f"The rest of the machine was idle during the run: other processes used "
                f"{others:.2f} of its {ncpu} CPUs on average.")
    else:
        text = (f"**The machine was shared during this run**: other processes (other builds) "
                f"used on average {others:.2f} of its {ncpu} CPUs, per group below; figures "
                f"of the groups where they ran are slower and noisier than on a quiet machine.")
    if steal >= 0.01:
        text += f"  The hypervisor took {steal:.2f} CPUs' worth (steal time)."
    return text


def measure(bindir, cols, groups, runs_override, scale, log):
    samples, failures, per_group = {}, {}, []
    for g, runs, make in groups:
        runs = runs_override or runs
        jobs = [j for j in make(scale) if j.col in cols]
        log(f"== {g}: {len(jobs)} cells x {runs} runs, interleaved")
        before = CpuUse()
        for r in range(runs):
            for j in jobs:
                if (j.key, j.col) in failures:
                    continue
                c0 = CpuUse()
                try:
                    res = run_job(bindir, j)
                except (Failure, subprocess.TimeoutExpired) as e:
                    failures[(j.key, j.col)] = str(e)
                    log(f"  FAIL {j.col} {j.key}: {e}")
                    continue
                if res is None:
                    continue
                res["others_cpu"] = CpuUse().others_since(c0)[0]
                samples.setdefault((j.key, j.col), []).append(res)
                brief = " ".join(f"{k}={report.fmt(v) if isinstance(v, float) else v}"
                                 for k, v in res.items() if k not in ("n", "ops"))
                log(f"  run {r + 1} {j.col:8} {j.key:10} {brief}")
        after = CpuUse()
        others, _ = after.others_since(before)
        per_group.append((g, after.wall - before.wall, others))
        log(f"   {g}: {after.wall - before.wall:.0f} s; other processes used {others:.2f} CPUs")
    return samples, failures, per_group


def merge_groups(per_group):
    out = {}
    for g, wall, others in per_group:
        w, o = out.get(g, (0.0, 0.0))
        out[g] = (w + wall, o + others * wall)
    return [(g, w, o / w if w else 0.0) for g, (w, o) in out.items()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bindir", default=os.path.join(ROOT, "build-bench", "bench"))
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "0")) or None)
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
    groups = [(g, r, f) for g, r, f in GROUPS if not only or g in only]
    if not shutil.which("wrk") and not a.smoke:
        print("run.py: wrk not found: W8 is skipped", file=sys.stderr)
        groups = [(g, r, f) for g, r, f in groups if g != "w8"]

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    if a.smoke:
        return smoke(bindir, cols, groups, log)
    outdir = os.path.join(bindir, "callgrind")
    if a.callgrind_only:
        os.makedirs(outdir, exist_ok=True)
        table, variants, _, _ = run_callgrind(bindir, cols, outdir, log)
        print(f"libloop source: {source_id()}\n\n{table}\n\n{variants}")
        return 0

    info = machine(bindir)
    start, t0 = CpuUse(), datetime.datetime.now()
    samples, failures, per_group = measure(bindir, cols, groups, a.runs, a.scale, log)

    def values(metric):
        def get(k, c):
            return [s[metric] for s in samples.get((k, c), []) if metric in s]
        return get

    rows = [r for r in ROWS if any((k, c) in samples or (k, c) in failures
                                   for c, ks in r.cells.items() for k in ks)]
    lines, verdicts, variants = [], [], []
    for row in rows:
        t, v, var = report.render([row], cols, values(row.metric), failures,
                                  others=values("others_cpu"))
        lines += t.splitlines()[0 if not lines else 2:]
        verdicts += v
        variants += var
    table = "\n".join(lines)

    cg_table = cg_variants = None
    cg_verdicts = []
    if not a.no_callgrind and (not only or only & {"w1", "w2", "w3", "w4", "w5"}):
        if shutil.which("valgrind"):
            os.makedirs(outdir, exist_ok=True)
            log("== callgrind (one run per variant, two at a time; only the measured region)")
            c0 = CpuUse()
            cg_table, cg_variants, cg_verdicts, cg_fail = run_callgrind(
                bindir, cols, outdir, log)
            c1 = CpuUse()
            per_group.append(("callgrind", c1.wall - c0.wall, None))
            for (c, args), msg in cg_fail.items():
                failures[(" ".join(args) + " (callgrind)", c)] = msg
        else:
            log("run.py: valgrind not found: no instruction counts")
    ctl = None
    if not only or "w5" in only:
        ctl = epoll_ctl_per_event(bindir, cols, log)
    elapsed = datetime.datetime.now() - t0
    end = CpuUse()
    others, steal = end.others_since(start)
    info.append(("load average at end", loadavg()))
    with open(os.path.join(bindir, "results.json"), "w") as f:
        json.dump({"samples": [[k, c, v] for (k, c), v in samples.items()],
                   "failures": [[k, c, m] for (k, c), m in failures.items()]}, f, indent=1)

    timed = merge_groups([g for g in per_group if g[2] is not None])
    timed += [(g, w, float("nan")) for g, w, o in per_group if o is None]
    a.runs_text = runs_text(groups, a.runs)
    md = report.markdown(a, info, shared_text(others, steal, os.cpu_count()), timed, table,
                         report.variants_table(variants), cg_table, cg_variants, ctl, verdicts,
                         cg_verdicts, failures, elapsed, cols)
    print(md)
    with open(a.out, "w") as f:
        f.write(md)
    log(f"run.py: wrote {a.out} in {str(elapsed).split('.')[0]}")
    return 1 if failures else 0


def smoke(bindir, cols, groups, log):
    failed = 0
    seen = set()
    for _, _, make in groups:
        for j in make(0.001):
            if j.col not in cols or (j.key, j.col) in seen:
                continue
            seen.add((j.key, j.col))
            if j.col in PEERS and not j.prim:
                log(f"FAIL {j.col} {j.key}: no primitive named in workloads.PRIMS")
                failed += 1
                continue
            try:
                res = run_job(bindir, j, smoke=True)
            except (Failure, subprocess.TimeoutExpired) as e:
                log(f"FAIL {j.col} {j.key}: {e}")
                failed += 1
                continue
            log(f"ok   {j.col:8} {j.key:10} {j.prim or ''}{' (not built)' if res is None else ''}")
    log(f"bench smoke: {len(seen) - failed} of {len(seen)} passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
