#!/usr/bin/env bash
# The thread pool beside libuv's uv_queue_work (bench/pool/bench_pool.c and
# bench_pool_uv.c), in one interleaved run: for each of RUNS rounds, the
# latency of each library, then the throughput of each.  libuv's pool size
# is set with UV_THREADPOOL_SIZE to the same THREADS.  Prints a markdown
# report on stdout (bench/pool/RESULTS.md is one, kept).
#
#   bench/pool/run.sh [BUILD_DIR]     (default: build-bench; configured
#                                      with -DLOOP_BUILD_BENCH=ON)
#   RUNS=7 SAMPLES=2000 JOBS=1000000 WINDOW=4096 THREADS=4   the defaults
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-bench}
runs=${RUNS:-7}
samples=${SAMPLES:-2000}
jobs=${JOBS:-1000000}
window=${WINDOW:-4096}
threads=${THREADS:-4}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DLOOP_BUILD_BENCH=ON \
    -DLOOP_BUILD_TESTS=OFF -DLOOP_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j2 --target bench_pool bench_pool_uv >/dev/null
ours=$build/bench/bench_pool
uv=$build/bench/bench_pool_uv
export UV_THREADPOOL_SIZE=$threads

field() { sed -nE "s/.* $1=([0-9.]+).*/\1/p"; }
declare -A got
for ((r = 0; r < runs; r++)); do
    for lib in libloop libuv; do
        if [ $lib = libloop ]; then
            out=$("$ours" latency "$samples" "$threads")
        else
            out=$("$uv" latency "$samples")
        fi
        for k in ns_median ns_min ns_p99 ns_max cpu_s; do
            got[$lib.lat.$k]+="$(field $k <<<"$out") "
        done
    done
    for lib in libloop libuv; do
        if [ $lib = libloop ]; then
            out=$("$ours" throughput "$jobs" "$threads" "$window")
        else
            out=$("$uv" throughput "$jobs" "$window")
        fi
        for k in jobs_per_s cpu_s; do
            got[$lib.tp.$k]+="$(field $k <<<"$out") "
        done
    done
done

sorted() { tr ' ' '\n' <<<"$1" | grep . | sort -g | tr '\n' ' '; }
med() { local xs; read -r -a xs <<<"$(sorted "$1")"; echo "${xs[$((${#xs[@]} / 2))]}"; }
lo() { local xs; read -r -a xs <<<"$(sorted "$1")"; echo "${xs[0]}"; }
hi() { local xs; read -r -a xs <<<"$(sorted "$1")"; echo "${xs[-1]}"; }
us() { awk -v x="$1" 'BEGIN {printf "%.1f", x / 1000}'; }
mrange() { echo "$(us "$(med "$1")") ($(us "$(lo "$1")")-$(us "$(hi "$1")"))"; }

echo "$(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD), $(nproc) cores," \
    "$(sed -nE 's/^model name\s*: (.*)/\1/p' /proc/cpuinfo | head -n 1)," \
    "Linux $(uname -r), libuv $(pkg-config --modversion libuv 2>/dev/null || echo '?');" \
    "$runs interleaved runs, $threads threads each."
echo
echo "Latency, submit to completion callback on an idle pool (each sample"
echo "after a 1 ms pause, $samples samples a run); us, median of the runs'"
echo "values (min-max over the runs):"
echo
echo "| library | median | fastest sample | p99 | slowest sample | CPU s per run |"
echo "|---|---:|---:|---:|---:|---:|"
for lib in libloop libuv; do
    echo "| $lib | $(mrange "${got[$lib.lat.ns_median]}") | $(us "$(lo "${got[$lib.lat.ns_min]}")")" \
        "| $(mrange "${got[$lib.lat.ns_p99]}") | $(us "$(hi "${got[$lib.lat.ns_max]}")")" \
        "| $(med "${got[$lib.lat.cpu_s]}") |"
done
echo
echo "Throughput, $jobs no-op jobs, $window outstanding (each completion"
echo "submits the next); jobs per second, median (min-max over the runs):"
echo
echo "| library | jobs/s | CPU s per run |"
echo "|---|---:|---:|"
for lib in libloop libuv; do
    echo "| $lib | $(med "${got[$lib.tp.jobs_per_s]}") ($(lo "${got[$lib.tp.jobs_per_s]}")-$(hi "${got[$lib.tp.jobs_per_s]}"))" \
        "| $(med "${got[$lib.tp.cpu_s]}") |"
done
echo
awk -v a="$(med "${got[libloop.tp.jobs_per_s]}")" -v b="$(med "${got[libuv.tp.jobs_per_s]}")" \
    'BEGIN {printf "libloop / libuv, throughput medians: %.2fx\n", a / b}'
