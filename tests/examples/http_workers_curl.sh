#!/bin/sh
# usage: http_workers_curl.sh threads|processes HTTP_WORKERS
# Talk to examples/http_workers (2 workers) with curl: keep-alive (several
# requests on one connection), the response head, Connection: close,
# HTTP/1.0 with and without keep-alive, HEAD; then SIGTERM, by pid, must
# make it exit 0 with none of its worker processes left.
set -u
mode=$1
exe=$2

if ! command -v curl > /dev/null 2>&1; then
    echo "FAIL: curl is not installed; this test needs it (apt-get install -y curl)" >&2
    exit 1
fi

log=$(mktemp)
got=$(mktemp)
pid=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2> /dev/null
    rm -f "$log" "$got"
}
trap cleanup EXIT

"$exe" --workers 2 --mode "$mode" --port 0 > "$log" &
pid=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's|^Serving on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$log")
    [ -n "$port" ] && break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "FAIL: the server printed no port within 10 s" >&2
    exit 1
fi
url=http://127.0.0.1:$port
workers=$(sed -n 's|^worker [0-9]* pid \([0-9]*\) ready$|\1|p' "$log" | tr '\n' ' ')
echo "server pid $pid on port $port ($mode; worker pids: $workers)"
status=0

# check NAME EXPECTED CURL-ARGS...: run curl, compare its output (Date
# headers dropped: they change).
check() {
    name=$1
    expected=$2
    shift 2
    if ! curl -sS --max-time 10 "$@" | grep -av '^Date: ' > "$got"; then
        echo "FAIL: $name: curl failed" >&2
        status=1
        return
    fi
    if printf '%b' "$expected" | cmp -s - "$got"; then
        echo "ok: $name"
    else
        echo "FAIL: $name: expected:" >&2
        printf '%b' "$expected" >&2
        echo "--- got:" >&2
        cat "$got" >&2
        status=1
    fi
}

# %{num_connects} is 1 for a transfer that opened a connection, 0 for one
# that reused it.
w='%{http_code} %{num_connects}\n'
hello='Hello, World!\n'
head='HTTP/1.1 200 OK\r\nServer: libloop\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n'

check "keep-alive: three GETs on one connection" \
    "${hello}200 1\n${hello}200 0\n${hello}200 0\n" \
    --http1.1 -w "$w" "$url/" "$url/a" "$url/b?c=d"
check "response head" \
    "${head}Connection: keep-alive\r\n\r\n${hello}" \
    --http1.1 -i "$url/"
check "Connection: close is answered with close, and ends the connection" \
    "${hello}200 1\n${hello}200 1\n" \
    --http1.1 -w "$w" -H 'Connection: close' "$url/" "$url/"
check "HTTP/1.0 closes unless asked to keep alive" \
    "${head}Connection: close\r\n\r\n${hello}" \
    --http1.0 -i "$url/"
check "HTTP/1.0 with keep-alive" \
    "${hello}200 1\n${hello}200 0\n" \
    --http1.0 -H 'Connection: keep-alive' -w "$w" "$url/" "$url/"
check "HEAD twice on one connection" \
    "200 1\n200 0\n" \
    --http1.1 -I -o /dev/null -o /dev/null -w "$w" "$url/" "$url/"

if ! kill -0 "$pid" 2> /dev/null; then
    echo "FAIL: the server died" >&2
    exit 1
fi
kill -TERM "$pid"
wait "$pid"
code=$?
pid=
if [ "$code" -ne 0 ]; then
    echo "FAIL: the server exited with status $code on SIGTERM" >&2
    status=1
else
    echo "ok: the server exited 0 on SIGTERM"
fi
if [ "$mode" = processes ]; then
    for p in $workers; do
        if kill -0 "$p" 2> /dev/null; then
            echo "FAIL: worker process $p outlived the server" >&2
            status=1
        fi
    done
    [ $status -eq 0 ] && echo "ok: no worker process left"
fi
exit $status
