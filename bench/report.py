"""The tables of bench/run.py: cells (a column's variants, the fastest
chosen and named), ratios to the best peer variant, verdicts against the
targets of workloads.py, and RESULTS.md's text.
"""

import os
import re
import statistics

from workloads import PEERS, PRIMS, TITLES


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


class Cell:
    """One column of one row: every variant measured, and the chosen one
    (the best median).  vals are in run order, so run i of two cells ran
    side by side."""

    def __init__(self, col, variants, failed, better):
        self.col, self.variants, self.failed = col, variants, failed
        self.key = self.vals = self.median = None
        if variants:
            pick = min if better == "lower" else max
            self.key = pick(variants, key=lambda k: statistics.median(variants[k]))
            self.vals = variants[self.key]
            self.median = statistics.median(self.vals)

    @property
    def prim(self):
        return PRIMS.get((self.key, self.col), "")

    def text(self, digits, name_prim, note=None):
        if self.median is None:
            return "FAIL" if self.failed else "-"
        lo, hi = min(self.vals), max(self.vals)
        s = fmt(self.median, digits)
        if lo != hi:
            s += f" ({fmt(lo, digits)}–{fmt(hi, digits)})"
        extra = note(self.key, self.col) if note else None
        if extra:
            s += f" ({extra})"
        if name_prim and self.prim:
            s += f" `{self.prim}`"
        return s


def row_cells(row, cols, values, failures, others=None):
    """values(key, col) -> the samples of row.metric of that cell; others,
    the CPUs other processes used during each of those runs."""
    cells = {}
    for c in cols:
        variants, failed = {}, []
        for k in row.cells.get(c, []):
            if (k, c) in failures:
                failed.append(k)
                continue
            v = values(k, c)
            if v:
                variants[k] = v
        cells[c] = Cell(c, variants, failed, row.better)
        cells[c].others = others(cells[c].key, c) if others and cells[c].key else None
    return cells


def best_peer(cells, better):
    peers = [cells[c] for c in PEERS if c in cells and cells[c].median is not None]
    if not peers:
        return None
    pick = min if better == "lower" else max
    return pick(peers, key=lambda cell: cell.median)


def ref_cell(row, cells):
    t = row.target
    if t is None or t.ref == "best":
        return best_peer(cells, row.better)
    if t.ref == "abs":
        return None
    cell = cells.get(t.ref)
    return cell if cell is not None and cell.median is not None else None


def paired_ratios(mine, ref):
    return [a / b for a, b in zip(mine.vals, ref.vals) if b]


def stability(pr, bound, mine, ref):
    """Run-by-run ratios: all of them, and whether the middle ones (the
    highest and the lowest dropped, from 5 runs up) lie within bound of
    their median.  The run farthest out is named with the CPU other
    processes used while it ran."""
    mid = statistics.median(pr)
    middle = sorted(pr)[1:-1] if len(pr) >= 5 else pr
    spread = max(abs(x - mid) for x in middle) / mid
    text = (f"run by run {min(pr):.2f}–{max(pr):.2f}x; "
            f"{'the middle ' + str(len(middle)) if middle is not pr else 'all'} within "
            f"±{spread * 100:.0f}% of {mid:.2f}x (bound ±{bound * 100:.0f}%): "
            f"{'stable' if spread <= bound else 'NOT stable'}")
    far = max(range(len(pr)), key=lambda i: abs(pr[i] - mid))
    if abs(pr[far] - mid) / mid > bound and mine.others and ref.others:
        text += (f"; run {far + 1} ({pr[far]:.2f}x) ran while other processes used "
                 f"{ref.others[far]:.2f} CPUs ({TITLES.get(ref.col, ref.col)}) and "
                 f"{mine.others[far]:.2f} (libloop)")
    return text


def verdict(row, cells):
    """(target text, verdict) for a row with a target."""
    t, mine = row.target, cells.get("libloop")
    sign = "<=" if row.better == "lower" else ">="
    if t.ref == "abs":
        text = f"{sign} {t.bound:g}" + (" in every run" if t.every_run else "")
        if mine is None or mine.median is None:
            return text, "not measured"
        v = max(mine.vals) if t.every_run else mine.median
        return text, "met" if v <= t.bound else "MISSED"
    ref = ref_cell(row, cells)
    name = "best peer" if t.ref == "best" else TITLES.get(t.ref, t.ref)
    text = f"{sign} {t.bound:g}x {name}"
    if mine is None or mine.median is None or ref is None:
        return text, "not measured"
    if t.ref == "best" and any(cells[c].failed for c in PEERS if c in cells):
        text += " (a peer variant FAILED: see Failures)"
    ratio = mine.median / ref.median
    ok = ratio <= t.bound if row.better == "lower" else ratio >= t.bound
    out = "met" if ok else "MISSED"
    if t.ref != "best":
        out += f", {ratio:.2f}x"
    if t.stable is not None:
        pr = paired_ratios(mine, ref)
        if pr:
            out += "; " + stability(pr, t.stable, mine, ref)
            if ok and "NOT stable" in out:
                out = "MISSED: " + out
    elif not ok and t.bound == 1.0:
        lo, hi = min(mine.vals), max(mine.vals)
        if lo <= max(ref.vals) and min(ref.vals) <= hi:
            out += ", within the spread"
    return text, out


def render(rows, cols, values, failures, note=None, others=None):
    """The markdown table, the verdicts, and the peer variants measured;
    note(key, col), if given, adds a figure in parentheses to a cell;
    others(key, col) gives the CPU other processes used during each run."""
    head = (["workload", "unit"] + [TITLES.get(c, c) for c in cols]
            + ["best peer", "libloop / best peer", "target"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    verdicts, variants = [], []
    for row in rows:
        cells = row_cells(row, cols, values, failures, others)
        best = best_peer(cells, row.better)
        mine = cells.get("libloop")
        texts = []
        for c in cols:
            multi = len(row.cells.get(c, [])) > 1
            texts.append(cells[c].text(row.digits, multi, note))
            if multi:
                for k, vals in cells[c].variants.items():
                    variants.append((row, c, k, vals, k == cells[c].key))
        ratio = ""
        if mine is not None and mine.median is not None and best is not None and best.median:
            ratio = f"{mine.median / best.median:.2f}x"
        bp = f"{TITLES.get(best.col, best.col)} `{best.prim}`" if best is not None else "-"
        tgt = ""
        if row.target:
            text, out = verdict(row, cells)
            tgt = f"{text} ({out})"
            verdicts.append((row, mine.median if mine else None, best, text, out))
        lines.append("| " + " | ".join([row.label, row.unit] + texts + [bp, ratio, tgt]) + " |")
    return "\n".join(lines), verdicts, variants


def variants_table(variants):
    if not variants:
        return ""
    lines = ["| workload | column | primitive | median (min–max) | |", "|---|---|---|---|---|"]
    seen = set()
    for row, col, key, vals, chosen in variants:
        if (row.unit, row.metric, col, key) in seen:  # rows that share their peer cells
            continue
        seen.add((row.unit, row.metric, col, key))
        lo, hi, med = min(vals), max(vals), statistics.median(vals)
        spread = "" if lo == hi else f" ({fmt(lo, row.digits)}–{fmt(hi, row.digits)})"
        lines.append(f"| {row.label} ({row.unit}) | {TITLES.get(col, col)} | "
                     f"`{PRIMS.get((key, col), key)}` | {fmt(med, row.digits)}{spread} | "
                     f"{'fastest' if chosen else ''} |")
    return "\n".join(lines)


def verdict_lines(verdicts):
    out = []
    for row, mine, best, text, res in verdicts:
        against = ""
        if best is not None and row.target.ref == "best" and mine is not None:
            against = (f", {mine / best.median:.2f}x {TITLES.get(best.col, best.col)} "
                       f"`{best.prim}`")
        out.append(f"- {row.label} ({row.unit}): target {text}; libloop {fmt(mine)}{against}: "
                   f"**{res}**")
    return out


COLUMN_NOTES = [
    "- libloop: `loop_call_soon` (W1, W2; W1a with `strict_poll`), `loop_call_later` (W3, W9), "
    "`loop_reschedule` (W4), `loop_cancel` + `loop_call_later` or `loop_call_at` (the other W4 "
    "rows), `loop_add_reader` (W5, W7, W8), `loop_call_soon_threadsafe` (W6).",
    "- Each peer cell names the primitive it used where that peer has more than one in the "
    "row, and the best-peer column always does; the section above lists every variant.",
    "- raw epoll: the same work by hand: a ring, an intrusive binary heap, epoll.",
]

NOTES = [
    "- W1a counts only primitives that poll between two callbacks (`uv_idle`, `ev_idle`, "
    "a 0 s `evtimer`): that poll is what W1a measures, and its target is raw epoll doing the "
    "same.  W1b and W2b take every variant, including those that run the next callback in "
    "the same pass with no poll in between: libev's `ev_feed_event` (a watcher fed from a "
    "callback joins the pending array `ev_invoke_pending` is draining; not a next-iteration "
    "primitive, but libev's fastest way to run a callback soon), libevent's `event_active`, "
    "and libuv's 0 ms timer (in libuv 1.44 a due timer started from a timer callback runs "
    "in the same `uv__run_timers` pass; libuv's PR #4250 later moved it to the next "
    "iteration).  `uv_check`/`uv_prepare` need an idle handle to keep the poll from blocking, "
    "so they run the same iteration as `uv_idle` with one more callback; a `uv_async_t` sent "
    "to itself costs an eventfd write and read per callback.",
    "- W3 and the cancel + call_later row of W4 use `loop_call_later`, which reads the clock "
    "at every call (asyncio's semantics); the peers use their loop's cached time.  The W3' row "
    "and the call_at row of W4 show libloop counting from `loop_now()`, as the peers do.",
    "- W4: 100,000 timers armed for 30 s; the first 100,000 resets are a warm-up, not timed; "
    "then resets of a pseudo-random timer (one fixed sequence for every column), 100 per loop "
    "iteration.  Each batch of 100 is timed on its own and the figure is the median batch; "
    "the mean of all batches is the row below it.  libloop's `loop_reschedule` to a later "
    "deadline only notes the new deadline; the heap is reordered when the old one comes up, "
    "30 s later, which no W4 run reaches.  libevent's common timeout keeps one list per "
    "duration, so its reset is an unlink and an append.",
    "- W5 registers every fd once, outside the timed part; a round is N writes, A of them "
    "started at once.",
    "- W6 is timed from the first post to the last closure run; every adapter checks that "
    "each of the 1,000,000 closures ran exactly once, or fails.",
    "- W7 and W8 run the client (echo_client or wrk) on the same 2 cores as the server: the "
    "rates mostly measure the kernel and the scheduler; server CPU per operation is steadier.",
    "- W9 lateness is measured from the moment of the call that armed the timer.  libuv's "
    "timeouts are whole milliseconds from its cached time; libev and libevent count from "
    "their cached time too, so they can fire early against the moment of the call.",
    "- Memory rows are the growth of VmRSS over N items, including the handles the peers "
    "make the caller allocate.  W3's RSS is the peak (VmHWM) over the whole run, in bytes "
    "per timer, which is MB per 1M timers.",
    "- Instruction counts include the benchmark's own callback (a counter and, in W1, the "
    "call that schedules the next one) in every column.  Under valgrind `clock_gettime` is "
    "a system call, not the vDSO, so a clock read shows as about 20 Ir although it costs "
    "15-40 ns.",
    "- Peers are Debian's packaged builds (shared libraries, -O2); libloop is built Release "
    "(-O3) and linked as a shared library too.",
]


# The layers' benchmarks: (folder, title, command).  Each runs libloop beside
# its peers in one interleaved run of its own and keeps its report there.
LAYERS = [
    ("future", "Futures beside plain callbacks", "bench/future/run.sh"),
    ("coro", "Coroutine switches beside Boost.Context", "bench/coro/run.sh"),
    ("task", "Tasks, and the seed `tasks` program beside asyncio and uvloop",
     "bench/task/run.sh"),
    ("pool", "Thread pool beside libuv's uv_queue_work", "bench/pool/run.sh"),
    ("process", "Child processes beside uv_spawn, and the seed pools", "bench/process/run.sh"),
    ("stream", "Streams (W7, W8) beside libuv, libev, libevent, asyncio and uvloop",
     "bench/stream/run.sh"),
    ("workers", "HTTP hello on N workers beside nginx", "bench/workers/run.sh"),
]


def tables(lines, most=3):
    """The first few markdown tables of a report, each as its lines."""
    found, table = [], []
    for line in lines + [""]:
        if line.startswith("|"):
            table.append(line)
        elif table:
            found.append(table)
            table = []
    return found[:most]


def layer_sections(bench_dir):
    """Each layer report's first table, copied with where it comes from."""
    out = ["## The layers' benchmarks", "",
           "Each layer's benchmark is a command of its own that runs libloop beside the "
           "peers named in its title, interleaved, in one run, and writes its own "
           "RESULTS.md.  Its first tables (up to three) are copied here as that file holds them; "
           "the file says when, at which commit and under what load it was measured, and "
           "what every row means.", ""]
    for folder, title, command in LAYERS:
        path = os.path.join(bench_dir, folder, "RESULTS.md")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        text = "\n".join(lines)
        date = re.search(r"20\d\d-\d\d-\d\d", text)
        commit = re.search(r"(?:commit|source):?\s*`?([0-9a-f]{7,40})\b", text)
        when = ", ".join(x for x in (date and date.group(0),
                                     commit and f"commit {commit.group(1)}") if x)
        out += [f"### {title}", "",
                f"`{command}`, from [bench/{folder}/RESULTS.md]({folder}/RESULTS.md)"
                + (f" ({when})" if when else "") + ":", ""]
        for t in tables(lines):
            out += t + [""]
    return out


def markdown(a, info, shared, groups_cpu, table, variants, cg_table, cg_variants, ctl, verdicts,
             cg_verdicts, failures, elapsed, cols):
    out = ["# libloop benchmarks", "",
           "Produced by `bench/run.sh` (which calls `bench/run.py`); every number below was "
           "measured on this machine in one run of that command, and says only what that run "
           "showed.", "", "## Machine", ""]
    out += [f"- {k}: {v}" for k, v in info]
    out += [f"- runs per cell: {a.runs_text}, interleaved; sizes scaled by {a.scale:g}; "
            f"total time {str(elapsed).split('.')[0]}", "", shared, ""]
    if groups_cpu:
        out += ["| group | wall time | other processes' CPU use |", "|---|---|---|"]
        unmeasured = "not measured (instruction counts do not depend on it)"
        out += [f"| {g} | {w:.0f} s | {unmeasured if o != o else f'{o:.2f} CPUs'} |"
                for g, w, o in groups_cpu]
        out.append("")
    out += ["## Results", "",
            "Median of the runs, with the min–max spread in parentheses.  The ratio is "
            "libloop's median over the best median of every variant of libuv, libev and "
            "libevent (below 1 is better for times, above 1 for rates); the best-peer column "
            "names that library and primitive.  Raw epoll is a baseline written with no "
            "library.", "", table, ""]
    if ctl:
        out += ["epoll_ctl calls per W5 event (strace, registration excluded): "
                + ", ".join(f"{TITLES.get(c, c)} {v:.3f}" if v is not None else
                            f"{TITLES.get(c, c)} -" for c, v in ctl.items()), ""]
    if variants:
        out += ["### Every peer variant", "",
                "Rows where a peer was measured with more than one primitive; the fastest "
                "is the one in the table above.", "", variants, ""]
    if cg_table:
        out += ["## Instruction counts", "",
                "`valgrind --tool=callgrind --collect-atstart=no`, one run per variant with "
                "smaller N, counting only the measured region (user-space instructions; the "
                "kernel's work is not in these numbers).  Each cell is all the instructions "
                "of the region per operation, and in parentheses those executed in the "
                "library's own shared object; a peer's cell is its variant with the fewest "
                "instructions.  The ratio and the targets use the first number.", "",
                cg_table, ""]
        if cg_variants:
            out += [cg_variants, ""]
    out += ["## Targets", ""] + verdict_lines(verdicts) + verdict_lines(cg_verdicts)
    if ctl and ctl.get("libloop") is not None:
        ok = ctl["libloop"] < 0.001
        out.append(f"- W5 no epoll_ctl per event: libloop {ctl['libloop']:.3f} per event: "
                   f"**{'met' if ok else 'MISSED'}**")
    out.append("")
    if failures:
        out += ["## Failures", ""] + [f"- {c} {k}: {m}" for (k, c), m in failures.items()] + [""]
    out += layer_sections(os.path.dirname(os.path.abspath(__file__)))
    out += ["## What each column does", ""] + COLUMN_NOTES + ["", "Notes on reading the table:",
                                                             ""] + NOTES + [""]
    return "\n".join(out)
