#!/usr/bin/env bash
# Build libloop and run its demo program:
#
#   ./scripts/demo.sh [arguments for the demo]
#
# Runs build/examples/hello (with --virtual-time unless other arguments are
# given); without the examples, builds and runs a few lines against
# build/libloop.a instead.
set -euo pipefail
cd "$(dirname "$0")/.."

cmake -S . -B build
cmake --build build -j2

if [ -x build/examples/hello ]; then
    if [ $# -eq 0 ]; then
        set -- --virtual-time
    fi
    exec ./build/examples/hello "$@"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/libloop-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
cat >"$work/demo.c" <<'CEOF'
#include <loop.h>

#include <stdio.h>

static void hello(loop_t *loop, void *arg)
{
    printf("%-5s at %3llu ms\n", (const char *)arg,
           (unsigned long long)(loop_now(loop) / LOOP_MS(1)));
}

int main(void)
{
    loop_options opts = {.clock = LOOP_CLOCK_VIRTUAL};
    loop_t *loop;
    int err = loop_new_with(&loop, &opts);

    if (err != 0) {
        fprintf(stderr, "loop_new_with: %s\n", loop_strerror(err));
        return 1;
    }
    loop_call_later(loop, LOOP_MS(200), hello, "world", NULL);
    loop_call_later(loop, LOOP_MS(100), hello, "hello", NULL);
    loop_call_soon(loop, hello, "soon", NULL);
    err = loop_run(loop);
    loop_free(loop);
    return err == 0 ? 0 : 1;
}
CEOF
cc -std=c11 -Iinclude -o "$work/demo" "$work/demo.c" build/libloop.a -pthread
"$work/demo"
