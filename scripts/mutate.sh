#!/usr/bin/env bash
# Mutation testing of the core: break one promise at a time, on purpose,
# and check that some test notices.
#
#   scripts/mutate.sh              every mutant of scripts/mutants.txt
#   scripts/mutate.sh --quick      only those marked "quick = yes" (what CI runs)
#   scripts/mutate.sh --only ID    one mutant (repeat --only for more)
#   scripts/mutate.sh --list       list the mutants and whether each still applies
#   scripts/mutate.sh --keep       keep the scratch tree and logs, and say where
#
# The working tree is never modified.  Its files (tracked ones, and new ones
# not ignored) are copied once into a scratch directory, built once there
# (tests and examples on, warnings not fatal: a mutant may leave a variable
# unused), and the unmutated tests must pass there first.  Then for each
# mutant: its snippet is replaced in the copy, the copy is rebuilt
# incrementally, and ctest runs the mutant's tests (default: every test not
# labelled slow) with -j2 and a 120 s limit, until the first failure.  The
# mutant is
#
#   killed          some test failed (or timed out)
#   STALE (build)   the mutated copy does not compile: it tests nothing
#   survived        every test passed: the promise it breaks is untested
#   STALE           its snippet is not found exactly once in the file: the
#                   code moved on and the list must be brought in step
#
# then the file is restored.  The exit status is 1 if any mutant survived or
# is stale, 2 for a usage error or if the unmutated tree fails its tests.
#
# Environment: MUTANTS_FILE (scripts/mutants.txt), MUTATE_TIMEOUT (120,
# seconds for one mutant's ctest run, hung tests included), MUTATE_MEMORY_MB
# (2048, the address space of each test process).
set -euo pipefail
cd "$(dirname "$0")/.."

LIST=${MUTANTS_FILE:-scripts/mutants.txt}
TIMEOUT=${MUTATE_TIMEOUT:-120}
MEMORY_MB=${MUTATE_MEMORY_MB:-2048}
JOBS=2
# Every test not labelled slow, but the coroutine layer's suites: they run
# none of the code mutated here, and their stack tests map more address
# space than each test process is allowed (see run_ctest).
DEFAULT_SELECTION=(-LE slow -E '^test_coro_')

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# The list's parser, its checks and the text replacement.
#   list FILE               one line per mutant, fields separated by \x1f:
#                           id, quick, file, tests, status, promise
#   apply FILE ROOT ID      replace the mutant's snippet in ROOT/<its file>
IFS= read -r -d '' PY <<'EOF' || true
import sys

KEYS = {"file", "promise", "quick", "tests", "original", "replace"}

def unescape(v):
    out, i = [], 0
    while i < len(v):
        c = v[i]
        if c == "\\" and i + 1 < len(v):
            n = v[i + 1]
            out.append({"n": "\n", "t": "\t", "\\": "\\"}.get(n, "\\" + n))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)

def fail(path, line, msg):
    sys.exit(f"{path}:{line}: {msg}")

def parse(path):
    mutants, cur = [], None
    with open(path, encoding="utf-8") as f:
        for no, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            if s.startswith("[") and s.endswith("]"):
                cur = {"id": s[1:-1].strip(), "line": no}
                if not cur["id"] or any(c.isspace() for c in cur["id"]):
                    fail(path, no, "a mutant id is one word")
                if any(m["id"] == cur["id"] for m in mutants):
                    fail(path, no, f"mutant {cur['id']} is listed twice")
                mutants.append(cur)
                continue
            if cur is None or "=" not in s:
                fail(path, no, "expected [id] or key = value")
            key, val = (x.strip() for x in s.split("=", 1))
            if key not in KEYS:
                fail(path, no, f"unknown key {key!r} (keys: {', '.join(sorted(KEYS))})")
            if key in cur:
                fail(path, no, f"{key} given twice for {cur['id']}")
            cur[key] = unescape(val) if key in ("original", "replace") else val
    for m in mutants:
        for key in ("file", "promise", "original", "replace"):
            if key not in m:
                fail(path, m["line"], f"mutant {m['id']} has no {key}")
        if not m["file"].startswith("src/"):
            fail(path, m["line"], f"mutant {m['id']}: the file must be under src/")
        if m.setdefault("quick", "no") not in ("yes", "no"):
            fail(path, m["line"], f"mutant {m['id']}: quick is yes or no")
        if not m["original"] or m["original"] == m["replace"]:
            fail(path, m["line"], f"mutant {m['id']}: original must be non-empty and differ from replace")
        m.setdefault("tests", "")
    return mutants

def status(root, m):
    try:
        with open(f"{root}/{m['file']}", encoding="utf-8") as f:
            n = f.read().count(m["original"])
    except OSError:
        return "STALE: no such file"
    return "ok" if n == 1 else ("STALE: snippet not found" if n == 0 else f"STALE: snippet found {n} times")

cmd = sys.argv[1]
mutants = parse(sys.argv[2])
if cmd == "list":
    for m in mutants:
        print("\x1f".join([m["id"], m["quick"], m["file"], m["tests"], status(".", m), m["promise"]]))
elif cmd == "apply":
    root, mid = sys.argv[3], sys.argv[4]
    m = next(m for m in mutants if m["id"] == mid)
    if status(root, m) != "ok":
        sys.exit(3)
    path = f"{root}/{m['file']}"
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(m["original"], m["replace"], 1))
EOF

py() {
    python3 -c "$PY" "$@"
}

quick=false
keep=false
list_only=false
only=()
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=true ;;
    --keep) keep=true ;;
    --list) list_only=true ;;
    --only)
        [ $# -ge 2 ] || usage
        only+=("$2")
        shift
        ;;
    --only=*) only+=("${1#--only=}") ;;
    -h | --help) usage ;;
    *)
        echo "mutate: unknown argument: $1" >&2
        usage
        ;;
    esac
    shift
done

ids=() quicks=() files=() tests=() states=() promises=()
rows=$(py list "$LIST") || exit 2
while IFS=$'\x1f' read -r id q file t st promise; do
    ids+=("$id") quicks+=("$q") files+=("$file") tests+=("$t") states+=("$st")
    promises+=("$promise")
done <<<"$rows"

if $list_only; then
    nstale=0
    printf '%-30s %-5s %-14s %s\n' ID QUICK FILE PROMISE
    for i in "${!ids[@]}"; do
        printf '%-30s %-5s %-14s %s\n' "${ids[$i]}" "${quicks[$i]}" "${files[$i]#src/}" \
            "${promises[$i]}"
        if [ "${states[$i]}" != ok ]; then
            printf '%-30s %s\n' "" "${states[$i]}"
            nstale=$((nstale + 1))
        fi
    done
    echo "${#ids[@]} mutants, $nstale stale"
    [ "$nstale" -eq 0 ]
    exit
fi

# The mutants to run, as indices into the arrays above.
selected=()
for want in "${only[@]}"; do
    found=false
    for i in "${!ids[@]}"; do
        [ "${ids[$i]}" = "$want" ] && found=true
    done
    $found || {
        echo "mutate: no mutant named $want in $LIST" >&2
        exit 2
    }
done
for i in "${!ids[@]}"; do
    if [ ${#only[@]} -gt 0 ]; then
        case " ${only[*]} " in *" ${ids[$i]} "*) ;; *) continue ;; esac
    elif $quick && [ "${quicks[$i]}" != yes ]; then
        continue
    fi
    selected+=("$i")
done
if [ ${#selected[@]} -eq 0 ]; then
    echo "mutate: no mutant selected" >&2
    exit 2
fi

# ctest's arguments for mutant i: its tests, or every test not labelled slow.
selection() {
    if [ -n "${tests[$1]}" ]; then
        printf '%s\n' -R "${tests[$1]}"
    else
        printf '%s\n' "${DEFAULT_SELECTION[@]}"
    fi
}

# The process group of pid (field 5 of /proc/PID/stat, after "(comm)").
pgrp_of() {
    local stat fields
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    read -r -a fields <<<"${stat##*) }"
    echo "${fields[2]:-}"
}

# run_ctest LOG ARGS...: the selected tests, stopped after TIMEOUT seconds
# (--stop-time also cuts tests that set a longer TIMEOUT of their own).
# One failure is enough to kill a mutant, so the run ends at the first: ctest
# runs in a process group of its own, which is killed as soon as its log
# reports a failed test (ctest itself would wait for the tests still
# running, and a mutant often makes some of them hang).  Each process gets
# MEMORY_MB of address space: a mutant that queues callbacks forever fails
# with -ENOMEM instead of taking the machine's memory.  The tests run in
# the order of the unmutated run's times (longest first), not in the order
# an earlier mutant's failures would give.
run_ctest() {
    local log=$1 pid
    shift
    if [ -e "$scratch/cost" ]; then
        cp "$scratch/cost" "$scratch/build/Testing/Temporary/CTestCostData.txt"
    fi
    : >"$log"
    (
        ulimit -v $((MEMORY_MB * 1024))
        exec setsid ctest --test-dir "$scratch/build" -j"$JOBS" --timeout "$TIMEOUT" \
            --no-tests=error --stop-on-failure \
            --stop-time "$(date -d "+$TIMEOUT seconds" +%H:%M:%S)" "$@"
    ) >"$log" 2>&1 </dev/null &
    pid=$!
    ctest_pid=$pid
    while kill -0 "$pid" 2>/dev/null; do
        # A failure, not a skip (a test whose server or library is missing).
        if grep '^ *[0-9]*/[0-9]* Test *#.*\*\*\*' "$log" | grep -qv '\*\*\*Skipped'; then
            stop_ctest
            break
        fi
        sleep 0.2
    done
    ctest_pid=""
    { wait "$pid"; } 2>/dev/null # bash's own "Killed" line for the group we ended
}

# Kill the running ctest and its tests (its own process group, from setsid).
ctest_pid=""
stop_ctest() {
    if [ -n "$ctest_pid" ] && [ "$(pgrp_of "$ctest_pid")" = "$ctest_pid" ]; then
        kill -KILL -- "-$ctest_pid" 2>/dev/null || true
    fi
}

# The tests a ctest log reports failed: "name" or "name (how)", comma-separated.
failed_tests() {
    awk '/^ *[0-9]+\/[0-9]+ Test +#[0-9]+: / && /\*\*\*/ {
        how = $0
        sub(/^.*Test +#[0-9]+: +[^ ]+ +\.*/, "", how)
        sub(/ +[0-9.]+ sec.*$/, "", how)
        sub(/\*\*\*Exception: */, "", how)
        sub(/^\*\*\*/, "", how)
        printf "%s%s", sep, $4
        if (how != "Failed") printf " (%s)", how
        sep = ", "
    }' "$1"
}

if ! git rev-parse --show-toplevel >/dev/null 2>&1; then
    echo "mutate: needs git and a git checkout (the tree is copied from git ls-files)" >&2
    exit 2
fi
scratch=$(mktemp -d "${TMPDIR:-/tmp}/libloop-mutate.XXXXXX")
cleanup() {
    stop_ctest
    if $keep; then
        echo "mutate: scratch tree and logs kept in $scratch"
    else
        rm -rf "$scratch"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$scratch/tree" "$scratch/logs"

start=$SECONDS
git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf - | tar -xf - -C "$scratch/tree"

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
echo "mutate: building a copy of the tree in $scratch"
if ! { cmake -S "$scratch/tree" -B "$scratch/build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOOP_WERROR=OFF -DLOOP_SANITIZE= \
    -DLOOP_BUILD_TESTS=ON -DLOOP_BUILD_EXAMPLES=ON &&
    cmake --build "$scratch/build" -j"$JOBS"; } >"$scratch/logs/build.log" 2>&1; then
    tail -n 40 "$scratch/logs/build.log"
    echo "mutate: the unmutated tree does not build" >&2
    exit 2
fi

# The unmutated tests must pass, each selection once: else a kill means nothing.
declare -A checked=()
for i in "${selected[@]}"; do
    mapfile -t sel < <(selection "$i")
    key="${sel[*]}"
    [ -n "${checked[$key]:-}" ] && continue
    checked[$key]=1
    if ! ctest --test-dir "$scratch/build" -N "${sel[@]}" | grep '^ *Test *#' >/dev/null; then
        echo "mutate: ctest ${sel[*]} (mutant ${ids[$i]}) selects no test" >&2
        exit 2
    fi
    echo "mutate: the unmutated tree, ctest ${sel[*]}"
    if ! run_ctest "$scratch/logs/baseline.log" "${sel[@]}"; then
        tail -n 30 "$scratch/logs/baseline.log"
        echo "mutate: the unmutated tree fails (ctest ${sel[*]}): fix that first" >&2
        exit 2
    fi
    # The unmutated runs' test times (ctest keeps those of tests not run):
    # every later run is ordered by them.
    cp "$scratch/build/Testing/Temporary/CTestCostData.txt" "$scratch/cost"
done
echo "mutate: built and checked in $((SECONDS - start)) s; ${#selected[@]} mutants"

results=() details=() times=()
nkilled=0 nsurvived=0 nstale=0
n=0
for i in "${selected[@]}"; do
    n=$((n + 1))
    id=${ids[$i]} file=${files[$i]} t0=$SECONDS
    log=$scratch/logs/$id.log
    detail=""
    if [ "${states[$i]}" != ok ]; then
        result=STALE detail="${states[$i]#STALE: } in $file"
        nstale=$((nstale + 1))
    else
        cp "$scratch/tree/$file" "$scratch/saved"
        py apply "$LIST" "$scratch/tree" "$id"
        mapfile -t sel < <(selection "$i")
        if ! cmake --build "$scratch/build" -j"$JOBS" >"$log" 2>&1; then
            # A mutant the compiler refuses tests nothing: re-anchor it.
            result="STALE (build)" detail="the mutated copy does not compile"
            nstale=$((nstale + 1))
        elif ! run_ctest "$log" "${sel[@]}"; then
            result=killed detail=$(failed_tests "$log")
            nkilled=$((nkilled + 1))
        else
            result=SURVIVED detail=${promises[$i]}
            nsurvived=$((nsurvived + 1))
        fi
        # A fresh copy (new mtime): the next build compiles the original again.
        cp "$scratch/saved" "$scratch/tree/$file"
    fi
    results+=("$result") details+=("$detail") times+=($((SECONDS - t0)))
    printf '[%2d/%d] %-30s %-15s %3d s  %s\n' "$n" "${#selected[@]}" "$id" "$result" \
        "${times[-1]}" "$detail"
done

printf '\n%-30s %-15s %5s  %s\n' MUTANT RESULT TIME "KILLED BY / PROMISE LEFT UNTESTED"
for k in "${!selected[@]}"; do
    printf '%-30s %-15s %3d s  %s\n' "${ids[${selected[$k]}]}" "${results[$k]}" "${times[$k]}" \
        "${details[$k]}"
done
printf '\n%d killed, %d survived, %d stale (%d s)\n' "$nkilled" "$nsurvived" "$nstale" \
    "$((SECONDS - start))"
[ "$nsurvived" -eq 0 ] && [ "$nstale" -eq 0 ]
