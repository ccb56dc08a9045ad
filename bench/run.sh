#!/usr/bin/env bash
# Build and run every benchmark on libloop, libuv, libev, libevent and raw
# epoll, and write the table to bench/RESULTS.md.
#
#   bench/run.sh                     # the full run (about 6 minutes on 2 cores)
#   BENCH_SCALE=0.1 BENCH_RUNS=3 bench/run.sh      # a quick look
#   BENCH_ONLY=w1,w4 bench/run.sh                  # some workloads only
#   BENCH_CALLGRIND=0 bench/run.sh                 # no instruction counts
#
# Missing peers and tools are installed with apt-get when run as root on
# Debian or Ubuntu; elsewhere the columns that cannot be built are left out.
# Extra arguments go to bench/run.py.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BENCH_BUILD_DIR:-build-bench}

packages=()
have_pc() { pkg-config --exists "$1" 2>/dev/null; }
command -v pkg-config >/dev/null 2>&1 || packages+=(pkg-config)
have_pc libuv || packages+=(libuv1-dev)
[ -e /usr/include/ev.h ] || have_pc libev || packages+=(libev-dev)
have_pc libevent_core || packages+=(libevent-dev)
command -v wrk >/dev/null 2>&1 || packages+=(wrk)
command -v valgrind >/dev/null 2>&1 || packages+=(valgrind)
command -v strace >/dev/null 2>&1 || packages+=(strace)
if [ ${#packages[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "bench: installing ${packages[*]}" >&2
        for attempt in 1 2 3 4 5 6; do
            if apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null; then
                break
            fi
            [ "$attempt" = 6 ] && { echo "bench: apt-get failed; continuing" >&2; break; }
            sleep 10 # another apt-get may hold the lock
        done
    else
        echo "bench: not installed: ${packages[*]} (their columns or rows are skipped)" >&2
    fi
fi

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLOOP_BUILD_BENCH=ON \
    -DLOOP_BUILD_TESTS=OFF -DLOOP_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
exec python3 bench/run.py --bindir "$BUILD/bench" "$@"
