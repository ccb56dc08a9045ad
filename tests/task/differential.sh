#!/usr/bin/env bash
# The differential test of DESIGN 5.3 at scale: random task programs run on
# Python 3.11's asyncio (tests/task/hops_random.py, under a virtual clock,
# with the deliberate fixes) and on libloop (test_task_random), and every
# trace must be identical.  The suite itself checks the 200 programs kept
# in the tree; this runs thousands more.
#
#   tests/task/differential.sh [BUILD_DIR]     (default: build)
#
# SEEDS (default "1001 1002 1003 1004 1005") and COUNT (default 4000, per
# seed) choose the programs; a failure names its seed and program.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
suite=$build/tests/test_task_random
seeds=${SEEDS:-1001 1002 1003 1004 1005}
count=${COUNT:-4000}
if ! python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "differential: the traces are asyncio 3.11's; python3 is $(python3 --version 2>&1)" >&2
    exit 1
fi
[ -x "$suite" ] || { echo "differential: $suite is not built" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
total=0
for seed in $seeds; do
    python3 tests/task/hops_random.py "$seed" "$count" >"$tmp/programs.txt"
    if ! LOOP_HOPS_FILE="$tmp/programs.txt" "$suite" >"$tmp/out.txt" 2>&1; then
        cat "$tmp/out.txt"
        echo "differential: seed $seed: a trace differs from asyncio's" >&2
        exit 1
    fi
    total=$((total + count))
done
echo "differential: $total random programs gave asyncio's trace"
