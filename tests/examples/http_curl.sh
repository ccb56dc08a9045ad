#!/bin/sh
# usage: http_curl.sh HTTP_HELLO [ARG...]
# Talk to the http_hello example with curl: keep-alive (several requests on
# one connection), request bodies, HEAD, Connection: close, HTTP/1.0; then
# SIGTERM must make the server exit 0.  The ARGs go before its port
# operand (--workers 2 --mode processes, say).
set -u
exe=$1
shift

if ! command -v curl > /dev/null 2>&1; then
    echo "FAIL: curl is not installed; this test needs it (apt-get install -y curl)" >&2
    exit 1
fi

log=$(mktemp)
got=$(mktemp)
pid=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2> /dev/null
    rm -f "$log" "$got"
}
trap cleanup EXIT

"$exe" "$@" 0 > "$log" &
pid=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's|^Serving on http://127\.0\.0\.1:\([0-9]*\)/\( with .*\)\{0,1\}$|\1|p' "$log")
    [ -n "$port" ] && break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "FAIL: the server printed no port within 10 s" >&2
    exit 1
fi
url=http://127.0.0.1:$port
echo "server pid $pid on port $port"
status=0

# check NAME EXPECTED CURL-ARGS...: run curl, compare its output.
check() {
    name=$1
    expected=$2
    shift 2
    if ! curl -sS --max-time 10 "$@" > "$got"; then
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

# %{num_connects} is 1 for a transfer that opened a connection and 0 for
# one that reused it: three requests, one connection.
w='\n%{http_code} %{num_connects}\n'
hello='Hello, world!'

check "keep-alive: three GETs on one connection" \
    "$hello\n200 1\n$hello\n200 0\n$hello\n200 0\n" \
    --http1.1 -w "$w" "$url/" "$url/a" "$url/b?c=d"

check "two POSTs with bodies, then a GET, on one connection" \
    "$hello\n200 1\n$hello\n200 0\n$hello\n200 0\n" \
    --http1.1 -w "$w" -d 'name=value&x=1' "$url/form" \
    --next --http1.1 -w "$w" -d "$(printf '%01000d' 0)" "$url/big" \
    --next --http1.1 -w "$w" "$url/after"

check "HEAD twice on one connection" \
    "\n200 1\n\n200 0\n" \
    --http1.1 -I -o /dev/null -o /dev/null -w "$w" "$url/" "$url/"

check "response head" \
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n$hello" \
    --http1.1 -i "$url/"

check "Connection: close" \
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\n$hello" \
    --http1.1 -i -H 'Connection: close' "$url/"

check "Connection: close ends the connection" \
    "$hello\n200 1\n$hello\n200 1\n" \
    --http1.1 -w "$w" -H 'Connection: close' "$url/" "$url/"

check "HTTP/1.0 closes unless asked to keep alive" \
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\n$hello" \
    --http1.0 -i "$url/"

check "HTTP/1.0 with keep-alive" \
    "$hello\n200 1\n$hello\n200 0\n" \
    --http1.0 -H 'Connection: keep-alive' -w "$w" "$url/" "$url/"

check "chunked upload is refused" \
    "501\n" \
    --http1.1 -o /dev/null -w '%{http_code}\n' -H 'Transfer-Encoding: chunked' -d x "$url/"

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
exit $status
