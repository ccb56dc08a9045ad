#!/usr/bin/env bash
# Futures beside plain callbacks (bench/future/bench_future.c): the three
# modes interleaved, RUNS times each, medians with min-max, and callgrind's
# instructions per step.  Prints a markdown table.
#
#   bench/future/run.sh [BUILD_DIR]      (default: build-bench; configured
#                                         with -DLOOP_BUILD_BENCH=ON)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-bench}
runs=${RUNS:-7}
n=${N:-1000000}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DLOOP_BUILD_BENCH=ON \
    -DLOOP_BUILD_TESTS=OFF -DLOOP_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j2 --target bench_future >/dev/null
bin=$build/bench/bench_future
modes=(soon complete hot cycle)
declare -A samples
for ((r = 0; r < runs; r++)); do
    for m in "${modes[@]}"; do
        v=$("$bin" "$m" "$n" | sed -nE 's/.*ns_per_step=([0-9.]+).*/\1/p')
        samples[$m]+="$v "
    done
done
ir() { # callgrind's instructions per step of mode $1, measured region only
    local out
    out=$(mktemp)
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "$bin" "$1" 100000 \
        >/dev/null 2>&1
    callgrind_annotate "$out" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); printf "%.1f", $1 / 100000}'
    rm -f "$out"
}
echo "| mode | what one step is | ns/step median (min-max) | Ir/step | / call_soon |"
echo "|---|---|---:|---:|---:|"
base_ir=$(ir soon)
for m in "${modes[@]}"; do
    read -r -a xs <<<"$(tr ' ' '\n' <<<"${samples[$m]}" | grep . | sort -g | tr '\n' ' ')"
    med=${xs[$((${#xs[@]} / 2))]}
    i=$(ir "$m")
    case $m in
    soon) what="call_soon of the next step (the baseline)" ;;
    complete) what="set_result on a ready-made future, its one done callback runs" ;;
    hot) what="as complete, the futures made just before, in rounds of 4,096" ;;
    cycle) what="new + add_done + set_result + callback + unref" ;;
    esac
    ratio=$(awk -v a="$i" -v b="$base_ir" 'BEGIN {printf "%.2f", a / b}')
    echo "| $m | $what | $med (${xs[0]}-${xs[-1]}) | $i | $ratio |"
done
