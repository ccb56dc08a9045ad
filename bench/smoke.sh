#!/usr/bin/env bash
# The benchmarks' smoke pass: every adapter, every workload, the task
# benchmarks and the workers' HTTP server, at tiny sizes.  Each checks its
# own counts; speed is never pass/fail.
#
#   bench/smoke.sh [BUILD_DIR]      # default build-bench-smoke; configured and built here
#
# Peers that are not installed are left out, not failed.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${1:-build-bench-smoke}
cmake -S . -B "$BUILD" -DLOOP_BUILD_BENCH=ON -DLOOP_WERROR=ON -DLOOP_BUILD_TESTS=OFF \
    -DLOOP_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
# The task layer's benchmarks: each mode, and the seed program in C and in
# Python (asyncio, uvloop when installed), whose outputs must match.
bench/task/run.sh --smoke "$BUILD"
# The workers' HTTP server and nginx under wrk, 1 s each (bench/workers).
bench/workers/run.sh --smoke "$BUILD-workers"
# The thread pool's programs (bench/pool), tiny: each checks its own count.
for how in future call; do
    "$BUILD/bench/bench_pool" throughput 20000 2 64 "$how" >/dev/null
    "$BUILD/bench/bench_pool" latency 5 2 "$how" >/dev/null
done
if [ -x "$BUILD/bench/bench_pool_uv" ]; then
    UV_THREADPOOL_SIZE=2 "$BUILD/bench/bench_pool_uv" throughput 20000 64 >/dev/null
    UV_THREADPOOL_SIZE=2 "$BUILD/bench/bench_pool_uv" latency 5 >/dev/null
fi
echo "bench/pool smoke: ok"
exec python3 bench/run.py --smoke --bindir "$BUILD/bench"
