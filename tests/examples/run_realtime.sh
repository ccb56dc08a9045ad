#!/bin/sh
# usage: run_realtime.sh EVENT_LOOP GOLDEN
# Run the event_loop example in real time and check when each line comes.
#
# asyncio-event-loop.py prints two lines at once every second, at 0, 1, ...,
# 8 s; at 8 s, time + 1.0 < end (9 s) no longer holds and both chains stop
# the loop.  So the last two lines come at 8 s (Python 3.11: 8.00 s after
# its loop starts) and the program ends right after them.
#
# The check: the output is the golden one (which also says that the ticks
# did not drift by a whole second: each link counts from the previous one).
# Never early, strictly: line pair k (from 0) comes no earlier than k s
# after the start, which precedes the program's own.  Not absurdly late,
# generously, for a loaded machine or a sanitizer's start-up: each line
# comes less than k + 2 s after the start, and the program has exited
# within 12 s.
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
    if [ "$ms" -ge $(( (second + 2) * 1000 )) ]; then
        echo "FAIL: line $(( k + 1 )) came at $ms ms, $(( second + 2 )) s or later" >&2
        status=1
    fi
    k=$(( k + 1 ))
done < "$times"
total=$(( (end - start) / 1000000 ))
echo "exited after $total ms"
if [ "$total" -ge 12000 ]; then
    echo "FAIL: the program ran $total ms, 12 s or more" >&2
    status=1
fi
exit $status
