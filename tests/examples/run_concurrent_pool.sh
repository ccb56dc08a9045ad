#!/bin/sh
# usage: run_concurrent_pool.sh EXAMPLE GOLDEN
# Run EXAMPLE --count 1000 and check what it prints against GOLDEN, the
# output of the seed's Python program with the same count
# (tests/golden/py/concurrent-pool.py 1000):
#   - the same shape: ten results and a timing line, three times over;
#   - the sequential results in Python's order; the pools' results, which
#     come in the order they finish, the same as Python's once sorted;
#   - each timing line "<Sequential|Thread pool|Process pool> execution in
#     <a float as Python prints one> seconds".
# The times themselves are never compared (bench/process has them).
set -u
exe=$1
golden=$2
out=$(mktemp)
trap 'rm -f "$out" "$out".*' EXIT

"$exe" --count 1000 > "$out"
status=$?
if [ "$status" -ne 0 ]; then
    echo "FAIL: $exe --count 1000 exited with status $status" >&2
    exit 1
fi
fail=0
for file in "$golden" "$out"; do
    [ "$(wc -l < "$file")" -eq 33 ] || { echo "FAIL: $file has not 33 lines" >&2; fail=1; }
done
# Block b (1..3): its ten result lines, sorted unless it is the first.
block() {
    start=$(( ($2 - 1) * 11 + 1 ))
    sed -n "${start},$((start + 9))p" "$1" > "$out.block"
    if [ "$2" -eq 1 ]; then cat "$out.block"; else sort -n "$out.block"; fi
}
names="Sequential|Thread pool|Process pool"
for b in 1 2 3; do
    if ! block "$golden" $b > "$out.want" || ! block "$out" $b > "$out.got" ||
        ! diff -u "$out.want" "$out.got"; then
        echo "FAIL: block $b of results differs from $golden (- Python, + C)" >&2
        fail=1
    fi
    name=$(echo "$names" | cut -d'|' -f$b)
    line=$(sed -n "$((b * 11))p" "$out")
    if ! echo "$line" | grep -Eq "^$name execution in ([0-9]+\.[0-9]+|[0-9.]+e-[0-9]+) seconds\$"; then
        echo "FAIL: line $((b * 11)) is not a timing line of $name: '$line'" >&2
        fail=1
    fi
done
[ $fail -eq 0 ] && echo "ok: 30 results as $golden, 3 timing lines"
exit $fail
