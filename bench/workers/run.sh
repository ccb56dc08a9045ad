#!/usr/bin/env bash
# HTTP hello on N workers under wrk (DESIGN 5.6): examples/http_workers (raw
# fd callbacks) and examples/http_hello --workers (tasks on streams), each
# in processes and in threads mode, beside nginx with the same worker
# count.  nginx sends http_workers' response (200, "Hello, World!\n",
# Server, Date, Content-Type text/plain, Content-Length, Connection:
# keep-alive); http_hello's is shorter (no Server, Date or Connection
# header, "Hello, world!").  Builds both (Release) in BUILD_DIR, runs every
# column for every worker count in one interleaved run, and prints a
# markdown report on stdout (RESULTS.md here is one, kept): requests/s
# median with min-max, wrk's p99 latency, and the load average before and
# after (the machine may be shared).
#
#   bench/workers/run.sh [BUILD_DIR]          (default: build-bench-workers)
#   bench/workers/run.sh --smoke [BUILD_DIR]  every column once, 1 s: it runs
#
#   RUNS=5 SECONDS_PER_RUN=10 CONNS=100 WRK_THREADS=2 WORKERS="1 2"
#
# Needs wrk and nginx (apt-get install -y wrk nginx-light): without wrk
# nothing runs; without nginx its column is left out.  Speed is never
# pass/fail; the smoke pass fails only if a server does not answer.
set -euo pipefail
cd "$(dirname "$0")/../.."

smoke=0
if [ "${1:-}" = --smoke ]; then
    smoke=1
    shift
fi
out=${1:-build-bench-workers}
runs=${RUNS:-5}
seconds=${SECONDS_PER_RUN:-10}
conns=${CONNS:-100}
wrk_threads=${WRK_THREADS:-2}
counts=${WORKERS:-1 2}
warm=1
if [ $smoke = 1 ]; then
    runs=1 seconds=1 conns=8 wrk_threads=1 warm=0
fi

if ! command -v wrk >/dev/null 2>&1; then
    echo "bench/workers: wrk is not installed (apt-get install -y wrk): skipped" >&2
    exit 0
fi
columns="http_workers-processes http_workers-threads http_hello-processes http_hello-threads"
if command -v nginx >/dev/null 2>&1; then
    columns="$columns nginx"
else
    echo "bench/workers: nginx is not installed (apt-get install -y nginx-light): left out" >&2
fi

cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=Release -DLOOP_BUILD_TESTS=OFF \
    -DLOOP_BUILD_EXAMPLES=ON -DLOOP_BUILD_BENCH=OFF >/dev/null
cmake --build "$out" --target http_workers http_hello -j2 >/dev/null

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-workers.XXXXXX")
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http PORT: until the server answers (10 s at most).
wait_http() {
    local _
    for _ in $(seq 100); do
        if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/"; then
            return 0
        fi
        sleep 0.1
    done
    echo "bench/workers: the server on port $1 did not answer" >&2
    return 1
}

# start COLUMN N: start a server; sets server_pid and port.
start() {
    local column=$1 n=$2
    port=$(free_port)
    case $column in
    http_workers-*)
        "$out/examples/http_workers" --workers "$n" --mode "${column#*-}" --port "$port" \
            >"$tmp/server.log" 2>&1 &
        server_pid=$!
        ;;
    http_hello-*)
        "$out/examples/http_hello" --workers "$n" --mode "${column#*-}" "$port" \
            >"$tmp/server.log" 2>&1 &
        server_pid=$!
        ;;
    nginx)
        mkdir -p "$tmp/nginx"
        cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $n;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events {}
http {
    access_log off;
    server_tokens off;
    default_type text/plain;
    keepalive_requests 100000000;
    client_body_temp_path $tmp/nginx/body;
    server {
        listen 127.0.0.1:$port reuseport;
        location / { return 200 "Hello, World!\n"; }
    }
}
EOF
        nginx -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" \
            >"$tmp/server.log" 2>&1 &
        server_pid=$!
        ;;
    esac
    wait_http "$port"
}

stop() {
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    server_pid=
}

# measure COLUMN N RUN: one wrk run; appends "column n run req/s p99_ms" to results.
measure() {
    local column=$1 n=$2 run=$3 url
    start "$column" "$n"
    url=http://127.0.0.1:$port/
    if [ $warm = 1 ]; then
        wrk -t"$wrk_threads" -c"$conns" -d1s "$url" >/dev/null
    fi
    wrk -t"$wrk_threads" -c"$conns" -d"${seconds}s" --latency "$url" >"$tmp/wrk.txt"
    stop
    if grep -qE 'Non-2xx|Socket errors' "$tmp/wrk.txt"; then
        echo "bench/workers: $column with $n workers had errors:" >&2
        cat "$tmp/wrk.txt" >&2
        [ $smoke = 1 ] && exit 1
    fi
    awk -v c="$column" -v n="$n" -v r="$run" '
        /^Requests\/sec:/ { rps = $2 }
        $1 == "99%" {
            v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
            p99 = unit == "us" ? v / 1000 : unit == "s" ? v * 1000 : v
        }
        END {
            if (rps == "" || rps + 0 <= 0) { print "no requests/s in wrk output" > "/dev/stderr"; exit 1 }
            printf "%s %s %s %.0f %.3f\n", c, n, r, rps, p99
        }' "$tmp/wrk.txt" >>"$tmp/results"
    tail -n 1 "$tmp/results" >&2
}

: >"$tmp/results"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for run in $(seq "$runs"); do
    for n in $counts; do
        # Rotate the order each run, so that no column always goes first.
        # shellcheck disable=SC2086 # a list of words, split on purpose
        set -- $columns
        for _ in $(seq $(((run - 1) % $#))); do
            set -- "${@:2}" "$1"
        done
        for column in "$@"; do
            measure "$column" "$n" "$run"
        done
    done
done

load1=$(cut -d' ' -f1-3 /proc/loadavg)

if [ $smoke = 1 ]; then
    echo "bench/workers: smoke ok ($(wc -l <"$tmp/results") runs)"
    exit 0
fi

echo "# Workers: HTTP hello under wrk"
echo
echo "- date: $(date -u +%Y-%m-%d)"
echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "- machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')," \
    "Linux $(uname -r)"
echo "- $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2), $(nginx -v 2>&1 | sed 's/.*: //')"
echo "- \`wrk -t$wrk_threads -c$conns -d${seconds}s --latency\`, after a 1 s warm-up, on the same" \
    "machine as the server; $runs interleaved runs of every row"
echo "- load average (1, 5, 15 min) before and after the runs: $load0 / $load1 (the machine's" \
    "$(nproc) cores may be shared with other work: compare columns within a run)"
echo
python3 - "$tmp/results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    column, n, run, rps, p99 = line.split()
    rows.setdefault((int(n), column), []).append((float(rps), float(p99)))
print("| workers | server | requests/s, median | min – max | p99 latency, median | vs nginx |")
print("|---|---|---|---|---|---|")
for (n, column) in sorted(rows):
    rps = [r for r, _ in rows[(n, column)]]
    p99 = [p for _, p in rows[(n, column)]]
    nginx = rows.get((n, "nginx"))
    ratio = ""
    if nginx:
        ratio = "%.2f×" % (statistics.median(rps) / statistics.median([r for r, _ in nginx]))
    print("| %d | %s | %.0f | %.0f – %.0f | %.2f ms | %s |" % (
        n, column, statistics.median(rps), min(rps), max(rps), statistics.median(p99), ratio))
EOF
