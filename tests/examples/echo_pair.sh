#!/bin/sh
# usage: echo_pair.sh SERVER CLIENT
# Start an echo example's server on a free port, run an echo example's
# client against it (either form against either form), check the lines
# come back in order, then SIGTERM must make the server exit 0.
set -u
server=$1
client=$2
log=$(mktemp)
got=$(mktemp)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2> /dev/null
    rm -f "$log" "$got"
}
trap cleanup EXIT

"$server" server 0 > "$log" &
pid=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's|^Serving on 127\.0\.0\.1:\([0-9]*\)$|\1|p' "$log")
    [ -n "$port" ] && break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "FAIL: the server printed no port within 10 s" >&2
    exit 1
fi
long=$(printf '%04000d' 7)
if ! "$client" client "$port" "hello" "two words" "" "$long" > "$got"; then
    echo "FAIL: the client failed" >&2
    exit 1
fi
if printf 'hello\ntwo words\n\n%s\n' "$long" | cmp -s - "$got"; then
    echo "ok: four lines echoed in order"
else
    echo "FAIL: the echoed lines differ:" >&2
    cat "$got" >&2
    exit 1
fi
kill -TERM "$pid"
wait "$pid"
code=$?
pid=
if [ "$code" -ne 0 ]; then
    echo "FAIL: the server exited with status $code on SIGTERM" >&2
    exit 1
fi
echo "ok: the server exited 0 on SIGTERM"
