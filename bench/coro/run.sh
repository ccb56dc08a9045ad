#!/usr/bin/env bash
# The coroutine benchmarks (bench/coro/bench_coro.c): builds the driver with
# the layer's sources at -O2, runs every measurement and prints a markdown
# report on stdout (bench/coro/RESULTS.md is one, kept).  Needs
# libboost-context-dev (fcontext) and valgrind (instruction counts).
#
#   bench/coro/run.sh [OUTPUT_DIR]        (default: build-bench-coro)
#   CORO_BENCH_MILLION=0 bench/coro/run.sh    skip 1,000,000 alive
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-build-bench-coro}
cc=${CC:-cc}
mkdir -p "$out"

case $(uname -m) in
x86_64) switch=src/coro/switch_x86_64.S ;;
aarch64) switch=src/coro/switch_aarch64.S ;;
*) echo "run.sh: no context switch for $(uname -m)" >&2; exit 1 ;;
esac
"$cc" -std=c11 -O2 -g -D_GNU_SOURCE -DLOOP_BUILDING -Iinclude -Wall -Wextra -Werror \
    src/coro/coro.c src/coro/stack.c "$switch" bench/coro/bench_coro.c \
    -o "$out/bench_coro" -l:libboost_context.a -lstdc++
bin=$out/bench_coro

# Instructions per operation: callgrind's total for 2N minus for N, over N.
ir_per() { # ir_per COLUMN N DIVISOR
    local a b
    a=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" only "$1" "$2" 2>&1 |
        sed -nE 's/.*Collected : ([0-9]+).*/\1/p')
    b=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" only "$1" $(($2 * 2)) 2>&1 |
        sed -nE 's/.*Collected : ([0-9]+).*/\1/p')
    awk -v a="$a" -v b="$b" -v n="$2" -v d="$3" 'BEGIN { printf "%.1f", (b - a) / (n * d) }'
}

echo "# Coroutine benchmarks"
echo
echo "- date: $(date -u +%Y-%m-%d)"
echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "- machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')," \
    "Linux $(uname -r), $("$cc" --version | head -n 1)"
echo "- Boost.Context $(dpkg-query -W -f '${Version}' libboost-context-dev 2>/dev/null || echo '?')," \
    "static libboost_context.a (no PLT call)"
echo
echo "## Switch (a resume + yield round trip / 2), 2,000,000 round trips per run, interleaved"
echo
echo '```'
"$bin" switch 2000000 15
echo '```'
echo
echo "Instructions per switch (callgrind):" \
    "loop_coro $(ir_per loop_coro 100000 2)," \
    "ucontext $(ir_per ucontext 100000 2)," \
    "fcontext $(ir_per fcontext 100000 2)"
echo
echo "## A round trip with both sides 0, 2 or 4 calls deep, 1,000,000 per run"
echo
echo "After a switch, each return into a frame entered before it is mispredicted:"
echo "the return-address predictor holds the calls of the side switched away from."
echo
echo '```'
"$bin" depth 1000000 7
echo '```'
echo
echo "## Create + run to the end + free, with a pooled stack"
echo
echo '```'
"$bin" create 2000000 15
echo '```'
echo
echo "Instructions per create + run + free (callgrind): $(ir_per create 100000 1)"
echo
echo "## Memory: 100,000 suspended coroutines with a small frame (default 256 KiB stacks)"
echo
echo '```'
"$bin" rss 100000
echo '```'
if [ "${CORO_BENCH_MILLION:-1}" != 0 ]; then
    echo
    echo "## 1,000,000 suspended coroutines at once"
    echo
    echo '```'
    "$bin" rss 1000000 || true
    echo '```'
fi
