#!/usr/bin/env bash
# The stream layers' benchmarks: W7 and W8 on streams (callbacks and tasks)
# beside libloop's raw callbacks, libuv, libev, libevent, raw epoll and
# Python asyncio/uvloop running the seed's server; a 1 GiB loopback
# transfer beside a blocking read/write loop; 10,000 idle connections.
# Writes bench/stream/RESULTS.md.
#
#   bench/stream/run.sh                          # the full run (about 10 minutes)
#   BENCH_RUNS=3 bench/stream/run.sh --mib 256   # a quicker look
#
# Builds build-bench/ (Release, -DLOOP_BUILD_BENCH=ON) as bench/run.sh does,
# installing wrk and the peers first when run as root on Debian.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BENCH_BUILD_DIR:-build-bench}

packages=()
command -v wrk >/dev/null 2>&1 || packages+=(wrk)
pkg-config --exists libuv 2>/dev/null || packages+=(libuv1-dev)
[ -e /usr/include/ev.h ] || packages+=(libev-dev)
pkg-config --exists libevent_core 2>/dev/null || packages+=(libevent-dev)
if [ ${#packages[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bench/stream: installing ${packages[*]}" >&2
    apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null ||
        echo "bench/stream: apt-get failed; continuing" >&2
fi
# uvloop is a reference row only; it is tried, never required.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 &&
    ! /usr/bin/python3 -c 'import uvloop' 2>/dev/null; then
    apt-get install -y --no-install-recommends python3-uvloop >/dev/null 2>&1 || true
fi

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLOOP_BUILD_BENCH=ON \
    -DLOOP_BUILD_TESTS=OFF -DLOOP_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target bench_libloop bench_libuv bench_libev \
    bench_libevent bench_epoll echo_client bench_stream >/dev/null
exec python3 bench/stream/run.py --bindir "$BUILD/bench" "$@"
