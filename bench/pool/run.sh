#!/usr/bin/env bash
# The thread pool beside libuv's uv_queue_work (bench/pool/bench_pool.c and
# bench_pool_uv.c), in one interleaved run: for each of RUNS rounds, the
# latency of each column, then the throughput of each.  Columns: libloop
# with a future per job (loop_pool_submit + a done callback), libloop with
# a completion callback (loop_pool_call), libuv.  libuv's pool size is set
# with UV_THREADPOOL_SIZE to the same THREADS.  Then callgrind's
# instructions per job of each throughput column (all threads; no timing
# noise).  Prints a markdown report on stdout (bench/pool/RESULTS.md is
# one, kept).
#
#   bench/pool/run.sh [BUILD_DIR]     (default: build-bench; configured
#                                      with -DLOOP_BUILD_BENCH=ON)
#   RUNS=7 SAMPLES=2000 JOBS=1000000 WINDOW=4096 THREADS=4   the defaults
#   IR_JOBS=200000 (0: no callgrind)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-bench}
runs=${RUNS:-7}
samples=${SAMPLES:-2000}
jobs=${JOBS:-1000000}
window=${WINDOW:-4096}
threads=${THREADS:-4}
ir_jobs=${IR_JOBS:-200000}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DLOOP_BUILD_BENCH=ON \
    -DLOOP_BUILD_TESTS=OFF -DLOOP_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j2 --target bench_pool bench_pool_uv >/dev/null
ours=$build/bench/bench_pool
uv=$build/bench/bench_pool_uv
export UV_THREADPOOL_SIZE=$threads
cols=(future call libuv)

# run COLUMN latency|throughput
run() {
    case $1.$2 in
    libuv.latency) "$uv" latency "$samples" ;;
    libuv.throughput) "$uv" throughput "$jobs" "$window" ;;
    *.latency) "$ours" latency "$samples" "$threads" "$1" ;;
    *.throughput) "$ours" throughput "$jobs" "$threads" "$window" "$1" ;;
    esac
}
field() { sed -nE "s/.* $1=([0-9.]+).*/\1/p"; }
declare -A got
loadavg() { cut -d' ' -f1 /proc/loadavg; }
load_before=$(loadavg)
for ((r = 0; r < runs; r++)); do
    for c in "${cols[@]}"; do
        out=$(run "$c" latency)
        for k in ns_median ns_min ns_p99 ns_max cpu_s; do
            got[$c.lat.$k]+="$(field $k <<<"$out") "
        done
    done
    for c in "${cols[@]}"; do
        out=$(run "$c" throughput)
        for k in jobs_per_s cpu_s; do
            got[$c.tp.$k]+="$(field $k <<<"$out") "
        done
    done
done
load_after=$(loadavg)

sorted() { tr ' ' '\n' <<<"$1" | grep . | sort -g | tr '\n' ' '; }
med() { local xs; read -r -a xs <<<"$(sorted "$1")"; echo "${xs[$((${#xs[@]} / 2))]}"; }
lo() { local xs; read -r -a xs <<<"$(sorted "$1")"; echo "${xs[0]}"; }
hi() { local xs; read -r -a xs <<<"$(sorted "$1")"; echo "${xs[-1]}"; }
us() { awk -v x="$1" 'BEGIN {printf "%.1f", x / 1000}'; }
mrange() { echo "$(us "$(med "$1")") ($(us "$(lo "$1")")-$(us "$(hi "$1")"))"; }
m() { awk -v x="$1" 'BEGIN {printf "%.2f", x / 1e6}'; }
name() {
    case $1 in
    future) echo "libloop, future (loop_pool_submit)" ;;
    call) echo "libloop, callback (loop_pool_call)" ;;
    libuv) echo "libuv $(pkg-config --modversion libuv 2>/dev/null || true), uv_queue_work" ;;
    esac
}

echo "$(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD), $(nproc) cores," \
    "$(sed -nE 's/^model name\s*: (.*)/\1/p' /proc/cpuinfo | head -n 1)," \
    "Linux $(uname -r); $runs interleaved runs, $threads threads each;" \
    "load average $load_before before, $load_after after."
echo
echo "Latency, submit to completion callback on an idle pool (each sample"
echo "after a 1 ms pause, so the threads are asleep; $samples samples a run);"
echo "us, the median of the runs' values (min-max over the runs):"
echo
echo "| column | median | fastest sample | p99 | slowest sample | CPU s per run |"
echo "|---|---:|---:|---:|---:|---:|"
for c in "${cols[@]}"; do
    echo "| $(name "$c") | $(mrange "${got[$c.lat.ns_median]}") |" \
        "$(us "$(lo "${got[$c.lat.ns_min]}")") | $(mrange "${got[$c.lat.ns_p99]}") |" \
        "$(us "$(hi "${got[$c.lat.ns_max]}")") | $(med "${got[$c.lat.cpu_s]}") |"
done
echo
echo "Throughput, $jobs no-op jobs, $window outstanding (each completion"
echo "submits the next); millions of jobs per second, median (min-max over"
echo "the runs), and the ratio of medians to libuv's:"
echo
echo "| column | M jobs/s | / libuv | CPU s per run |"
echo "|---|---:|---:|---:|"
base=$(med "${got[libuv.tp.jobs_per_s]}")
for c in "${cols[@]}"; do
    xs=${got[$c.tp.jobs_per_s]}
    ratio=$(awk -v a="$(med "$xs")" -v b="$base" 'BEGIN {printf "%.2f", a / b}')
    echo "| $(name "$c") | $(m "$(med "$xs")") ($(m "$(lo "$xs")")-$(m "$(hi "$xs")")) |" \
        "$ratio | $(med "${got[$c.tp.cpu_s]}") |"
done

if [ "$ir_jobs" -gt 0 ] && command -v valgrind >/dev/null; then
    echo
    echo "Instructions per job (callgrind, every thread, $ir_jobs jobs):"
    echo
    echo "| column | instructions/job |"
    echo "|---|---:|"
    for c in "${cols[@]}"; do
        if [ "$c" = libuv ]; then
            cmd=("$uv" throughput "$ir_jobs" "$window")
        else
            cmd=("$ours" throughput "$ir_jobs" "$threads" "$window" "$c")
        fi
        ir=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "${cmd[@]}" 2>&1 |
            sed -nE 's/.*Collected : ([0-9]+).*/\1/p')
        echo "| $(name "$c") | $(awk -v i="$ir" -v n="$ir_jobs" 'BEGIN {printf "%.0f", i / n}') |"
    done
fi
