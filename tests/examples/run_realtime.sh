#!/bin/sh
# usage: run_realtime.sh EVENT_LOOP GOLDEN
# Run the event_loop example in real time and check when each line comes.
#
# asyncio-event-loop.py prints two lines at once every second, at 0, 1, ...,
# 8 s; at 8 s, time + 1.0 < end (9 s) no longer holds and both chains stop
# the loop.  So the last two lines come at 8 s (Python 3.11: 8.00 s after
# its loop starts) and the program ends right after them.  The check: the
# output is the golden one; line pair k (from 0) comes no earlier than k s
# after the start (a timer never runs early) and less than k + 1 s after it;
# the last line is at 8 s or later, before 9 s; the program has exited
# before 10 s.
set -u
exe=$1
golden=$2
out=$(mktemp)
times=$(mktemp)
trap 'rm -f "$out" "$times"' EXIT

start=$(date +%s%N)
"$exe" | while IFS= read -r line; do
    now=$(date +%s%N)
    printf '%s\n' "$line" >> "$out"
    echo $(( (now - start) / 1000000 )) >> "$times"
done
end=$(date +%s%N)

if ! diff -u "$golden" "$out"; then
    echo "FAIL: the output of $exe differs from $golden (- Python, + C)" >&2
    exit 1
fi
status=0
k=0
while read -r ms; do
    second=$(( k / 2 ))
    echo "line $(( k + 1 )) at ${ms} ms"
    if [ "$ms" -lt $(( second * 1000 )) ]; then
        echo "FAIL: line $(( k + 1 )) came at $ms ms, before $second s" >&2
        status=1
    fi
    if [ "$ms" -ge $(( (second + 1) * 1000 )) ]; then
        echo "FAIL: line $(( k + 1 )) came at $ms ms, $(( second + 1 )) s or later" >&2
        status=1
    fi
    k=$(( k + 1 ))
done < "$times"
last=$(tail -n 1 "$times")
if [ "$last" -lt 8000 ] || [ "$last" -ge 9000 ]; then
    echo "FAIL: the last line came at $last ms, not between 8 and 9 s" >&2
    status=1
fi
total=$(( (end - start) / 1000000 ))
echo "exited after $total ms"
if [ "$total" -ge 10000 ]; then
    echo "FAIL: the program ran $total ms, 10 s or more" >&2
    status=1
fi
exit $status
