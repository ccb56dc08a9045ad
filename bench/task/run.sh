#!/usr/bin/env bash
# The task layer's benchmarks (bench/task/bench_task.c, seed_tasks.c,
# seed_tasks.py): every row interleaved, RUNS times each, medians with
# min-max, callgrind's instructions per operation (measured part only),
# the memory rows once, and a markdown report on stdout against the
# issue's targets (bench/task/RESULTS.md is one, kept).
#
#   bench/task/run.sh [BUILD_DIR]          (default build-bench-task; a
#                                           Release build is configured there)
#   bench/task/run.sh --smoke BUILD_DIR    tiny sizes, counts and outputs
#                                          checked, no report (bench/smoke.sh)
#
#   RUNS=7 N=1000000 TASKS=100000 STEPS=10   the sizes (defaults shown)
#   MILLION=0                                skip the 1,000,000 sleeping tasks
#   PYTHON=python3                           the interpreter for seed_tasks.py
#                                            (default: the first that has uvloop)
#
# Needs valgrind (callgrind) for the instruction counts, python3 and
# python3-uvloop for the seed's Python columns (left out if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."

smoke=0
if [ "${1:-}" = --smoke ]; then
    smoke=1
    shift
fi
build=${1:-build-bench-task}
runs=${RUNS:-7}
n=${N:-1000000}
tasks=${TASKS:-100000}
small=${SMALL_TASKS:-1000}
steps=${STEPS:-10}
seed_py=bench/task/seed_tasks.py

die() {
    echo "bench/task/run.sh: $*" >&2
    exit 1
}

# The interpreter: PYTHON, else the first python3 that imports uvloop, else
# the first that runs at all (then without the uvloop column).
py=
uvloop=0
for p in ${PYTHON:-} /usr/bin/python3 python3; do
    if "$p" -c 'import uvloop' 2>/dev/null; then
        py=$p
        uvloop=1
        break
    fi
    [ -z "$py" ] && "$p" -c 'import asyncio' 2>/dev/null && py=$p
    [ -n "${PYTHON:-}" ] && break
done

if [ $smoke = 0 ]; then
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DLOOP_BUILD_BENCH=ON \
        -DLOOP_BUILD_TESTS=OFF -DLOOP_BUILD_EXAMPLES=OFF >/dev/null
    cmake --build "$build" -j2 --target bench_task seed_tasks >/dev/null
fi
bin=$build/bench/bench_task
seed=$build/bench/seed_tasks
if [ ! -x "$bin" ] || [ ! -x "$seed" ]; then
    die "no $bin or $seed: build with -DLOOP_BUILD_BENCH=ON"
fi

# The seed's OUTPUT line must be the same from every program at one size:
# the first one printed at each size is kept in a file (the columns run in
# subshells).
expected_dir=$(mktemp -d)
trap 'rm -rf "$expected_dir"' EXIT
check_output() { # check_output WHAT OUTPUT
    local line file
    line=$(grep '^OUTPUT ' <<<"$2") || die "$1 printed no OUTPUT line"
    file=$expected_dir/$(cut -d' ' -f2,3 <<<"$line" | tr ' =' '_-')
    if [ ! -e "$file" ]; then
        echo "$line" >"$file"
    elif [ "$line" != "$(cat "$file")" ]; then
        die "$1 did other work: '$line', expected '$(cat "$file")'"
    fi
}

# one COLUMN: run a column once, print its figure (ns per operation).
one() {
    local out
    case $1 in
    await | soon | hop) out=$("$bin" "$1" "$n") ;;
    spawn) out=$("$bin" spawn "$n" 32) ;;
    spawn1) out=$("$bin" spawn "$n" 1) ;;
    seed-libloop) out=$("$seed" "$tasks" "$steps") ;;
    seed-libloop-pooled) out=$("$seed" "$tasks" "$steps" --pool) ;;
    seed-asyncio) out=$("$py" "$seed_py" "$tasks" "$steps") ;;
    seed-uvloop) out=$("$py" "$seed_py" "$tasks" "$steps" --uvloop) ;;
    small-libloop) out=$("$seed" "$small" "$steps") ;;
    small-libloop-pooled) out=$("$seed" "$small" "$steps" --pool) ;;
    small-asyncio) out=$("$py" "$seed_py" "$small" "$steps") ;;
    small-uvloop) out=$("$py" "$seed_py" "$small" "$steps" --uvloop) ;;
    esac
    case $1 in seed-* | small-*) check_output "$1" "$out" ;; esac
    sed -nE 's/^RESULT .*ns_per_(op|step)=([0-9.]+).*/\2/p' <<<"$out"
}

if [ $smoke = 1 ]; then
    n=2000 tasks=300 small=30 steps=3
    for c in await spawn spawn1 soon hop seed-libloop seed-libloop-pooled small-libloop; do
        [ -n "$(one $c)" ] || die "$c printed no figure"
    done
    if [ -n "$py" ]; then
        one seed-asyncio >/dev/null
        if [ $uvloop = 1 ]; then one seed-uvloop >/dev/null; fi
    fi
    "$bin" rss 2000 1 >/dev/null
    echo "bench/task: smoke pass ok (python: ${py:-none}, uvloop: $uvloop)"
    exit 0
fi

cols=(await spawn spawn1 soon hop seed-libloop seed-libloop-pooled small-libloop
    small-libloop-pooled)
if [ -n "$py" ]; then
    cols+=(seed-asyncio small-asyncio)
    if [ $uvloop = 1 ]; then cols+=(seed-uvloop small-uvloop); fi
fi
load0=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A samples
# run_ratio KEY A B: add this run's A / B to the samples of KEY.
run_ratio() {
    local a b
    read -r -a a <<<"${samples[$2]}"
    read -r -a b <<<"${samples[$3]}"
    samples[$1]+="$(awk -v x="${a[-1]}" -v y="${b[-1]}" 'BEGIN {printf "%.2f", x / y}') "
}
for ((r = 0; r < runs; r++)); do
    for c in "${cols[@]}"; do
        samples[$c]+="$(one "$c") "
    done
    # Ratios within one run, so that the machine's drift cancels.
    run_ratio hop/soon hop soon
    if [ $uvloop = 1 ]; then
        run_ratio uvloop/c seed-uvloop seed-libloop
        run_ratio small-uvloop/c small-uvloop small-libloop
    fi
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

med() { # med KEY: "median (min-max)"
    local xs
    read -r -a xs <<<"$(tr ' ' '\n' <<<"${samples[$1]}" | grep . | sort -g | tr '\n' ' ')"
    printf '%s (%s-%s)' "${xs[$((${#xs[@]} / 2))]}" "${xs[0]}" "${xs[-1]}"
}
median() { med "$1" | cut -d' ' -f1; }

ir() { # ir DIVISOR COMMAND...: callgrind's instructions of the measured part / DIVISOR
    local div=$1 out
    shift
    out=$(mktemp)
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "$@" >/dev/null 2>&1
    callgrind_annotate "$out" | awk -v d="$div" '/PROGRAM TOTALS/ {gsub(",", "", $1); printf "%.1f", $1 / d}'
    rm -f "$out"
}
ir_n=100000
ir_await=$(ir $ir_n "$bin" await $ir_n)
ir_spawn=$(ir $ir_n "$bin" spawn $ir_n 32)
ir_spawn1=$(ir $ir_n "$bin" spawn $ir_n 1)
ir_soon=$(ir $ir_n "$bin" soon $ir_n)
ir_hop=$(ir $ir_n "$bin" hop $ir_n)
ir_seed=$(ir $((tasks * steps)) "$seed" "$tasks" "$steps")

rss100k=$("$bin" rss 100000 1000)
million=
if [ "${MILLION:-1}" != 0 ]; then
    million=$("$bin" rss 1000000 1000)
fi
field() { sed -nE "s/.*[ ]$1=([0-9.]+).*/\1/p" <<<"$2" | head -n 1; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
verdict() { # verdict VALUE OP LIMIT
    awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN {
        ok = (op == "<=") ? a <= b : a >= b; print ok ? "yes" : "**no**" }'
}

echo "# Task benchmarks"
echo
echo "- date: $(date -u +%Y-%m-%d)"
echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "- machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo |
    cut -d: -f2 | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)," \
    "Linux $(uname -r), $(cc --version | head -n 1)"
echo "- python: $([ -n "$py" ] && "$py" -c 'import sys; print(sys.version.split()[0])' || echo none)," \
    "uvloop $([ $uvloop = 1 ] && "$py" -c 'import uvloop; print(uvloop.__version__)' || echo none)"
echo "- load average before and after the timed runs: $load0 / $load1" \
    "(the machine's 2 cores are shared with other builds: compare times within a run)"
echo "- $runs interleaved runs of every row; N=$n for the per-operation rows;" \
    "seed: $tasks tasks x $steps steps; instructions from callgrind, measured part only" \
    "($ir_n operations; the seed at full size)"
echo
echo "## Rows"
echo
echo "| row | what one operation is | ns/op median (min-max) | Ir/op |"
echo "|---|---|---:|---:|"
echo "| await | loop_task_await of a done future, inside a task (no suspension) | $(med await) | $ir_await |"
echo "| spawn | spawn + run + finish + release of an empty task, rounds of 32, stack from the pool | $(med spawn) | $ir_spawn |"
echo "| spawn1 | the same, one task per loop_run | $(med spawn1) | $ir_spawn1 |"
echo "| soon | a call_soon chain, one callback | $(med soon) | $ir_soon |"
echo "| hop | one task doing loop_task_sleep(0), one step | $(med hop) | $ir_hop |"
echo "| seed-libloop | seed_tasks.c, per step (total / tasks x steps) | $(med seed-libloop) | $ir_seed |"
echo "| seed-libloop-pooled | the same, the stack pool filled before the clock starts | $(med seed-libloop-pooled) | |"
if [ -n "$py" ]; then
    echo "| seed-asyncio | seed_tasks.py on asyncio, per step | $(med seed-asyncio) | |"
fi
if [ $uvloop = 1 ]; then
    echo "| seed-uvloop | seed_tasks.py on uvloop, per step | $(med seed-uvloop) | |"
fi
echo "| small-libloop | seed_tasks.c with $small tasks (their stacks fit the caches better) | $(med small-libloop) | |"
echo "| small-libloop-pooled | the same, the stack pool filled first | $(med small-libloop-pooled) | |"
if [ -n "$py" ]; then
    echo "| small-asyncio | seed_tasks.py with $small tasks, asyncio | $(med small-asyncio) | |"
fi
if [ $uvloop = 1 ]; then
    echo "| small-uvloop | seed_tasks.py with $small tasks, uvloop | $(med small-uvloop) | |"
fi
echo
echo "Seed output, the same from every program at each size:"
echo
for f in "$expected_dir"/*; do
    echo "- \`$(cut -d' ' -f2- "$f")\`"
done
echo
echo "One more run of each C seed, with its CPU time split into user and kernel:"
echo
echo '```'
"$seed" "$tasks" "$steps" | grep '^RESULT'
"$seed" "$tasks" "$steps" --pool | grep '^RESULT'
echo '```'
echo
echo "## Memory"
echo
echo '```'
echo "$rss100k"
if [ -n "$million" ]; then echo "$million"; fi
echo '```'
echo
echo "## Against the targets of the issue"
echo
echo "| # | target | measured | ratio to target | met? |"
echo "|---|---|---|---:|---|"
v=$(median await)
echo "| 1 | await of a done future ≤ 60 ns | $(med await) ns, $ir_await Ir | $(ratio "$v" 60) | $(verdict "$v" "<=" 60) |"
v=$(median spawn)
echo "| 2 | spawn + finish, pooled stack ≤ 100 ns | $(med spawn) ns, $ir_spawn Ir (one at a time: $(med spawn1) ns, $ir_spawn1 Ir) | $(ratio "$v" 100) | $(verdict "$v" "<=" 100) |"
v=$(median hop/soon)
iv=$(ratio "$ir_hop" "$ir_soon")
echo "| 3 | sleep(0) chain ≤ 2× call_soon chain, time | $(med hop/soon)× (per-run ratios) | $(ratio "$v" 2) | $(verdict "$v" "<=" 2) |"
echo "| 3 | the same, instructions | $iv× ($ir_hop / $ir_soon Ir) | $(ratio "$iv" 2) | $(verdict "$iv" "<=" 2) |"
v=$(field kib_per_task "$rss100k")
echo "| 4 | RSS per sleeping task (100,000) ≤ 5 KiB | $v KiB (page tables, not in RSS: $(field pte_kib_per_task "$rss100k") KiB) | $(ratio "$v" 5) | $(verdict "$v" "<=" 5) |"
if [ -n "$million" ]; then
    fin=$(field finished "$million")
    echo "| 4 | 1,000,000 sleeping tasks at once, all finish | $fin finished;" \
        "$(field total_s "$million") s in all ($(field spawn_and_suspend_s "$million") s to spawn and suspend);" \
        "peak RSS $(awk -v k="$(field peak_rss_kib "$million")" 'BEGIN {printf "%.2f GiB", k / 1048576}');" \
        "vm.max_map_count $(cat /proc/sys/vm/max_map_count) | — | $([ "$fin" = 1000000 ] && echo yes || echo '**no**') |"
fi
v=$(median seed-libloop)
echo "| 5 | seed, C ≤ 0.1 µs per step | $(med seed-libloop) ns | $(ratio "$v" 100) | $(verdict "$v" "<=" 100) |"
if [ $uvloop = 1 ]; then
    v=$(median uvloop/c)
    echo "| 5 | seed, C ≥ 20× uvloop | $(med uvloop/c)× (per-run ratios; asyncio/C:" \
        "$(ratio "$(median seed-asyncio)" "$(median seed-libloop)")×) | $(ratio "$v" 20) | $(verdict "$v" ">=" 20) |"
    v=$(median small-uvloop/c)
    echo "| 5 | (not the target's size) $small tasks: C ≥ 20× uvloop | $(med small-uvloop/c)× | $(ratio "$v" 20) | $(verdict "$v" ">=" 20) |"
fi
