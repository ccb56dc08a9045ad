#!/usr/bin/env bash
# Build the coroutine layer and tests/coro/aarch64_check.c for AArch64 with
# the cross compiler (Debian: gcc-aarch64-linux-gnu, libc6-dev-arm64-cross)
# and run the result under qemu-user (Debian: qemu-user or
# qemu-user-static).  No CMake: one static binary, one compiler call.
#
#   tests/coro/run_aarch64.sh [OUTPUT_DIR]     (default: build-aarch64)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-build-aarch64}
cc=${AARCH64_CC:-aarch64-linux-gnu-gcc}

qemu=
for q in qemu-aarch64 qemu-aarch64-static; do
    if command -v "$q" >/dev/null 2>&1; then
        qemu=$q
        break
    fi
done
if ! command -v "$cc" >/dev/null 2>&1 || [ -z "$qemu" ]; then
    echo "run_aarch64: needs $cc and qemu-aarch64; install them with" >&2
    echo "    apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user" >&2
    exit 1
fi

mkdir -p "$out"
"$cc" -std=c11 -O2 -g -static -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
    -Wmissing-prototypes -Wvla -Werror -D_GNU_SOURCE -DLOOP_BUILDING -Iinclude \
    src/coro/coro.c src/coro/stack.c src/coro/switch_aarch64.S tests/coro/aarch64_check.c \
    -o "$out/aarch64_check" -lm
echo "run_aarch64: $("$cc" --version | head -n 1); $("$qemu" --version | head -n 1)"
"$qemu" "$out/aarch64_check"
