#!/usr/bin/env bash
# System calls per iteration for the command-timeout pattern (hiredis,
# curl): 10,000 request/reply rounds over a socketpair, each pushing a 30 s
# timeout back with loop_reschedule.  Counted by strace -c, so the numbers
# do not depend on the library's own counters (loop_stats().syscalls).
#
#   bench/syscalls/run.sh [LIBLOOP_A]      (default: build/libloop.a)
set -euo pipefail
cd "$(dirname "$0")/../.."
lib=${1:-build/libloop.a}
command -v strace >/dev/null || { echo "syscalls: strace is not installed" >&2; exit 1; }
[ -e "$lib" ] || { echo "syscalls: no $lib; build first (cmake --build build)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -Iinclude bench/syscalls/reschedule_ping.c "$lib" -lpthread -o "$work/ping"
strace -f -c -o "$work/counts" "$work/ping" >/dev/null
echo "10,000 iterations (one read and one write each are the program's own):"
grep -E 'epoll|timerfd|eventfd' "$work/counts" | awk '{printf "  %-16s %8s calls\n", $NF, $(NF-1) == "" ? $4 : $4}'
