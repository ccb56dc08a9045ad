#!/bin/sh
# usage: run_golden.sh EXAMPLE GOLDEN
# Run EXAMPLE on the virtual clock and compare what it prints, line by line,
# with GOLDEN (the output of the Python program it was written from).
set -u
exe=$1
golden=$2
out=$(mktemp)
trap 'rm -f "$out"' EXIT

"$exe" --virtual-time > "$out"
status=$?
if [ "$status" -ne 0 ]; then
    echo "FAIL: $exe --virtual-time exited with status $status" >&2
    exit 1
fi
if ! diff -u "$golden" "$out"; then
    echo "FAIL: the output of $exe differs from $golden (- Python, + C)" >&2
    exit 1
fi
echo "ok: $(wc -l < "$out") lines, as $golden"
