#!/usr/bin/env bash
# Processes (bench/process/bench_spawn.c and examples/concurrent_pool):
#
#  1. spawn latency of /bin/true, spawn to exit known, with the parent at
#     10 MiB and at 1 GiB of touched memory, libloop beside libuv's
#     uv_spawn, interleaved, RUNS runs of SPAWNS spawns each: the median of
#     the runs' medians, with the lowest and highest run median;
#  2. the seed program's three times (sequential, thread pool of 5, process
#     pool of 5), the C example beside Python running the seed itself,
#     interleaved, SEED_RUNS runs each: median (min-max).
# Prints markdown tables.
#
#   bench/process/run.sh [BUILD_DIR]     (default: build-bench; configured
#                                         with -DLOOP_BUILD_BENCH=ON)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-bench}
runs=${RUNS:-7}
spawns=${SPAWNS:-200}
seed_runs=${SEED_RUNS:-3}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DLOOP_BUILD_BENCH=ON \
    -DLOOP_BUILD_TESTS=OFF -DLOOP_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$build" -j2 --target bench_spawn concurrent_pool >/dev/null
bin=$build/bench/bench_spawn
libs=(libloop)
if "$bin" libuv 1 1 >/dev/null 2>&1; then
    libs+=(libuv)
fi

# stats "v1 v2 ..." [FORMAT]: "median (min-max)", each printed with FORMAT
stats() {
    read -r -a xs <<<"$(tr ' ' '\n' <<<"$1" | grep . | sort -g | tr '\n' ' ')"
    local f=${2:-%s}
    # shellcheck disable=SC2059
    printf "$f ($f-$f)\n" "${xs[$((${#xs[@]} / 2))]}" "${xs[0]}" "${xs[-1]}"
}

declare -A med
for ((r = 0; r < runs; r++)); do
    for rss in 10 1024; do
        for lib in "${libs[@]}"; do
            v=$("$bin" "$lib" "$rss" "$spawns" | sed -nE 's/.*median_us=([0-9.]+).*/\1/p')
            med[$lib.$rss]+="$v "
        done
    done
done
echo "Spawn of /bin/true until its exit is known, µs: median of $runs runs' medians" \
    "($spawns spawns a run), lowest-highest run median"
echo
echo "| parent RSS | ${libs[*]/%/ |}"
echo "|---|$(printf -- '---:|%.0s' "${libs[@]}")"
for rss in 10 1024; do
    row="| $rss MiB |"
    for lib in "${libs[@]}"; do
        row+=" $(stats "${med[$lib.$rss]}") |"
    done
    echo "$row"
done
if [ ${#libs[@]} -gt 1 ]; then
    for rss in 10 1024; do
        a=$(stats "${med[libloop.$rss]}" | cut -d' ' -f1)
        b=$(stats "${med[libuv.$rss]}" | cut -d' ' -f1)
        echo
        echo "At $rss MiB: uv_spawn / libloop = $(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b / a}')x"
    done
fi

# The seed program: three times from each run.
times() { # the three times a run printed, space-separated
    sed -nE 's/.*execution in ([0-9.e-]+) seconds.*/\1/p' | tr '\n' ' '
}
declare -A seed
have_python=0
command -v python3 >/dev/null 2>&1 && have_python=1
for ((r = 0; r < seed_runs; r++)); do
    read -r -a t <<<"$("$build/examples/concurrent_pool" | times)"
    for i in 0 1 2; do seed[c.$i]+="${t[$i]} "; done
    if [ $have_python -eq 1 ]; then
        read -r -a t <<<"$(python3 tests/golden/py/concurrent-pool.py | times)"
        for i in 0 1 2; do seed[py.$i]+="${t[$i]} "; done
    fi
done
echo
echo "The seed program (10 items x 10,000,000 steps), seconds: median (min-max) of $seed_runs runs"
echo
echo "| run | C (examples/concurrent_pool) | Python $(python3 --version 2>/dev/null | cut -d' ' -f2) (the seed) |"
echo "|---|---:|---:|"
names=("sequential" "thread pool of 5" "process pool of 5")
for i in 0 1 2; do
    py="-"
    [ $have_python -eq 1 ] && py=$(stats "${seed[py.$i]}" %.3f)
    echo "| ${names[$i]} | $(stats "${seed[c.$i]}" %.3f) | $py |"
done
