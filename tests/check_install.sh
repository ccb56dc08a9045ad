#!/usr/bin/env bash
# Install the current build into a temporary prefix, then build and run a
# small program against the installed copy:
#   1. through pkg-config, linked statically (libloop.a),
#   2. through pkg-config, linked dynamically (libloop.so, found by rpath),
#   3. through a CMake project using find_package(libloop CONFIG REQUIRED),
#      once with libloop::loop (static) and once with libloop::loop_shared.
#
#   check_install.sh BUILD_DIR CMAKE GENERATOR CC [SANITIZERS [CONFIG]]
set -euo pipefail

if [ $# -lt 4 ]; then
    echo "usage: $0 build-dir cmake generator cc [sanitizers [config]]" >&2
    exit 2
fi
build_dir=$1
cmake=$2
generator=$3
cc=$4
sanitize=${5:-}
config=${6:-}

# A library built with sanitizers needs their runtime in the program too.
flags=""
if [ -n "$sanitize" ]; then
    flags="-fsanitize=$sanitize -fno-sanitize-recover=all -fno-omit-frame-pointer"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/libloop-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

step() { echo "== install: $*"; }
fail() { echo "install: FAILED: $*" >&2; exit 1; }

step "cmake --install into $prefix"
config_args=()
if [ -n "$config" ]; then
    config_args=(--config "$config")
fi
"$cmake" --install "$build_dir" --prefix "$prefix" "${config_args[@]}" >"$work/install.log" ||
    { cat "$work/install.log" >&2; fail "cmake --install"; }

[ -f "$prefix/include/loop.h" ] || fail "include/loop.h was not installed"
pc=$(find "$prefix" -name libloop.pc -print -quit)
[ -n "$pc" ] || fail "libloop.pc was not installed"
static_lib=$(find "$prefix" -name libloop.a -print -quit)
[ -n "$static_lib" ] || fail "libloop.a was not installed"
soname_lib=$(find "$prefix" -name libloop.so.0 -print -quit)
[ -n "$soname_lib" ] || fail "libloop.so.0 was not installed"
[ -n "$(find "$prefix" -name libloopConfig.cmake -print -quit)" ] ||
    fail "libloopConfig.cmake was not installed"

mkdir -p "$work/src"
cat >"$work/src/main.c" <<'CEOF'
#include <loop.h>

#include <stdio.h>
#include <string.h>

static void count(loop_t *loop, void *arg)
{
    (void)loop;
    ++*(int *)arg;
}

int main(void)
{
    char version[32];
    loop_t *loop = NULL;
    int calls = 0;
    int err;

    snprintf(version, sizeof version, "%d.%d.%d", LOOP_VERSION_MAJOR, LOOP_VERSION_MINOR,
             LOOP_VERSION_PATCH);
    if (strcmp(loop_version(), version) != 0) {
        fprintf(stderr, "loop_version() is %s, the header says %s\n", loop_version(), version);
        return 1;
    }
    err = loop_new(&loop);
    if (err != 0) {
        fprintf(stderr, "loop_new: %s\n", loop_strerror(err));
        return 1;
    }
    err = loop_call_soon(loop, count, &calls, NULL);
    if (err != 0) {
        fprintf(stderr, "loop_call_soon: %s\n", loop_strerror(err));
        return 1;
    }
    err = loop_run(loop);
    if (err != 0) {
        fprintf(stderr, "loop_run: %s\n", loop_strerror(err));
        return 1;
    }
    if (calls != 1) {
        fprintf(stderr, "the callback ran %d times, not once\n", calls);
        return 1;
    }
    err = loop_free(loop);
    if (err != 0) {
        fprintf(stderr, "loop_free: %s\n", loop_strerror(err));
        return 1;
    }
    printf("libloop %s: ok\n", loop_version());
    return 0;
}
CEOF

# needs_libloop PROGRAM: does it load libloop.so at run time?
needs_libloop() {
    readelf -d "$1" | grep -q 'NEEDED.*libloop\.so'
}

export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
pc_prefix=$(pkg-config --variable=prefix libloop)
[ "$pc_prefix" = "$prefix" ] || fail "libloop.pc says prefix=$pc_prefix, not $prefix"
pc_cflags=$(pkg-config --cflags libloop)
pc_libs=$(pkg-config --libs libloop)
pc_libdir=$(pkg-config --variable=libdir libloop)

step "pkg-config, static: $cc main.c $pc_cflags -Wl,-Bstatic $pc_libs -Wl,-Bdynamic"
# shellcheck disable=SC2086
"$cc" $flags -o "$work/pc_static" "$work/src/main.c" $pc_cflags \
    -Wl,-Bstatic $pc_libs -Wl,-Bdynamic -pthread || fail "pkg-config static build"
! needs_libloop "$work/pc_static" || fail "the static program needs libloop.so"
"$work/pc_static" || fail "the pkg-config static program exited with $?"

step "pkg-config, shared: $cc main.c $pc_cflags $pc_libs -Wl,-rpath,$pc_libdir"
# shellcheck disable=SC2086
"$cc" $flags -o "$work/pc_shared" "$work/src/main.c" $pc_cflags $pc_libs \
    "-Wl,-rpath,$pc_libdir" || fail "pkg-config shared build"
needs_libloop "$work/pc_shared" || fail "the shared program does not load libloop.so"
"$work/pc_shared" || fail "the pkg-config shared program exited with $?"

step "find_package(libloop CONFIG REQUIRED)"
mkdir -p "$work/consumer"
cp "$work/src/main.c" "$work/consumer/main.c"
cat >"$work/consumer/CMakeLists.txt" <<'CEOF'
cmake_minimum_required(VERSION 3.25)
project(libloop_consumer LANGUAGES C)
find_package(libloop 0.1 CONFIG REQUIRED)
add_executable(consumer_static main.c)
target_link_libraries(consumer_static PRIVATE libloop::loop)
add_executable(consumer_shared main.c)
target_link_libraries(consumer_shared PRIVATE libloop::loop_shared)
CEOF
"$cmake" -S "$work/consumer" -B "$work/consumer/build" -G "$generator" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" \
    >"$work/consumer.log" 2>&1 || { cat "$work/consumer.log" >&2; fail "consumer configure"; }
"$cmake" --build "$work/consumer/build" >>"$work/consumer.log" 2>&1 ||
    { cat "$work/consumer.log" >&2; fail "consumer build"; }
! needs_libloop "$work/consumer/build/consumer_static" ||
    fail "libloop::loop is not the static library"
needs_libloop "$work/consumer/build/consumer_shared" ||
    fail "libloop::loop_shared is not the shared library"
"$work/consumer/build/consumer_static" || fail "the CMake static program exited with $?"
"$work/consumer/build/consumer_shared" || fail "the CMake shared program exited with $?"

# Each layer: its pkg-config module and its find_package component, with a
# program that uses it (a future run to completion).
cat >"$work/src/layer_future.c" <<'CEOF'
#include <loop_future.h>

#include <stdio.h>

static void complete(loop_t *loop, void *arg)
{
    (void)loop;
    loop_future_set_result(arg, (void *)7);
}

int main(void)
{
    loop_t *loop;
    loop_future *f;
    void *v = NULL;
    if (loop_new(&loop) || loop_future_new(loop, &f) || loop_call_soon(loop, complete, f, NULL) ||
        loop_run_until_complete(loop, f, &v) || v != (void *)7) {
        fprintf(stderr, "the future did not complete with 7\n");
        return 1;
    }
    loop_future_unref(f);
    loop_free(loop);
    printf("libloop-future: ok\n");
    return 0;
}
CEOF
cat >"$work/src/layer_task.c" <<'CEOF'
#include <loop_task.h>

#include <stdio.h>

static int seven(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)arg;
    if (loop_task_sleep(0))
        return -1;
    *result = (void *)7;
    return 0;
}

int main(void)
{
    loop_t *loop;
    loop_task *t;
    void *v = NULL;
    if (loop_new(&loop) || loop_task_spawn(loop, seven, NULL, &t) ||
        loop_run_until_complete(loop, loop_task_future(t), &v) || v != (void *)7) {
        fprintf(stderr, "the task did not return 7\n");
        return 1;
    }
    loop_task_unref(t);
    loop_free(loop);
    printf("libloop-task: ok\n");
    return 0;
}
CEOF
cat >"$work/src/layer_stream.c" <<'CEOF'
#include <loop_stream.h>

#include <stdio.h>

static int connected;

static void on_conn(loop_server *srv, loop_stream *s, void *arg)
{
    (void)srv;
    (void)arg;
    loop_stream_close(s);
    connected = 1;
}

int main(void)
{
    loop_t *loop;
    loop_server *srv;
    loop_stream *c;
    if (loop_new(&loop) ||
        loop_server_listen(loop, "127.0.0.1", 0, NULL, on_conn, NULL, &srv) ||
        loop_stream_connect(loop, "127.0.0.1", loop_server_port(srv), NULL, NULL, NULL, &c)) {
        fprintf(stderr, "cannot listen and connect\n");
        return 1;
    }
    while (!connected)
        loop_run_once(loop, -1);
    loop_stream_close(c);
    loop_server_free(srv);
    loop_free(loop);
    printf("libloop-stream: ok\n");
    return 0;
}
CEOF
cat >"$work/src/layer_stream_task.c" <<'CEOF'
#include <loop_stream_task.h>

#include <stdio.h>
#include <string.h>

static int handler(loop_stream *s, void *arg)
{
    (void)arg;
    const char *d;
    size_t n;
    int err = loop_stream_task_read_until(s, "\n", 1, &d, &n);
    if (!err)
        err = loop_stream_write(s, d, n);
    return err ? err : loop_stream_task_drain(s);
}

static int client(loop_t *loop, void *arg, void **result)
{
    loop_stream *s;
    const char *d;
    size_t n;
    int err = loop_stream_task_open_connection(loop, "127.0.0.1", *(uint16_t *)arg, NULL, &s);
    if (err)
        return err;
    loop_stream_write(s, "echo\n", 5);
    err = loop_stream_task_read_until(s, "\n", 1, &d, &n);
    if (!err && (n != 5 || memcmp(d, "echo\n", 5)))
        err = -1;
    loop_stream_close(s);
    *result = (void *)7;
    return err;
}

int main(void)
{
    loop_t *loop;
    loop_server *srv;
    loop_task *t;
    void *v = NULL;
    uint16_t port;
    if (loop_new(&loop) ||
        loop_stream_task_start_server(loop, "127.0.0.1", 0, NULL, handler, NULL, &srv) ||
        !(port = loop_server_port(srv)) || loop_task_spawn(loop, client, &port, &t) ||
        loop_run_until_complete(loop, loop_task_future(t), &v) || v != (void *)7) {
        fprintf(stderr, "the echo did not come back\n");
        return 1;
    }
    loop_task_unref(t);
    loop_server_free(srv);
    loop_free(loop);
    printf("libloop-stream_task: ok\n");
    return 0;
}
CEOF
cat >"$work/src/layer_coro.c" <<'CEOF'
#include <loop_coro.h>

#include <stdio.h>
#include <string.h>

static void *echo(void *arg, void *first)
{
    (void)arg;
    void *in = NULL;
    loop_coro_yield(first, &in);
    return in;
}

int main(void)
{
    loop_coro *c;
    void *out = NULL;
    if (loop_coro_new(&c, echo, NULL, 0) || loop_coro_resume(c, "a", &out) != 1 ||
        strcmp(out, "a") != 0 || loop_coro_resume(c, "b", &out) != 0 || strcmp(out, "b") != 0) {
        fprintf(stderr, "the coroutine did not echo a and b\n");
        return 1;
    }
    loop_coro_free(c);
    printf("libloop-coro: ok\n");
    return 0;
}
CEOF
cat >"$work/src/layer_workers.c" <<'CEOF'
#include <loop_workers.h>

#include <stdio.h>
#include <unistd.h>

static int posted;

static void note(loop_t *loop, void *arg)
{
    (void)arg;
    posted = loop_workers_index(loop) + 1;
    loop_workers_stop(loop_workers_of(loop));
}

static int setup(loop_t *loop, unsigned index, void *arg)
{
    (void)loop;
    (void)index;
    (void)arg;
    return 0;
}

int main(void)
{
    loop_workers_options o = {.mode = LOOP_WORKERS_THREADS, .count = 2, .setup = setup};
    loop_workers *w;
    int fd = loop_workers_listen_reuseport("127.0.0.1", 0, 0);
    if (fd < 0 || loop_workers_start(&w, &o) || loop_workers_post(w, 1, note, NULL) ||
        loop_workers_wait(w) || loop_workers_free(w) || posted != 2) {
        fprintf(stderr, "the workers did not run a post on worker 1\n");
        return 1;
    }
    close(fd);
    printf("libloop-workers: ok\n");
    return 0;
}
CEOF
cat >"$work/src/layer_process.c" <<'CEOF'
#include <loop_process.h>

#include <stdio.h>

int main(void)
{
    loop_t *loop;
    loop_process *p;
    char *argv[] = {"sh", "-c", "exit 7", NULL};
    loop_process_options o = {.argv = argv};
    void *v = NULL;
    if (loop_new(&loop) || loop_process_spawn(loop, &o, &p) ||
        loop_run_until_complete(loop, loop_process_exit(p), &v) ||
        loop_process_returncode(v) != 7) {
        fprintf(stderr, "the child did not exit with 7\n");
        return 1;
    }
    loop_process_free(p);
    loop_free(loop);
    printf("libloop-process: ok\n");
    return 0;
}
CEOF
cat >"$work/src/layer_pool.c" <<'CEOF'
#include <loop_pool.h>

#include <netdb.h>
#include <stdio.h>

static int seven(void *arg, void **result)
{
    (void)arg;
    *result = (void *)7;
    return 0;
}

int main(void)
{
    loop_t *loop;
    loop_pool *pool;
    loop_future *f;
    void *v = NULL;
    if (loop_new(&loop) || loop_pool_default(loop, &pool) ||
        loop_pool_submit(pool, seven, NULL, &f) || loop_run_until_complete(loop, f, &v) ||
        v != (void *)7) {
        fprintf(stderr, "the pool job did not return 7\n");
        return 1;
    }
    loop_future_unref(f);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
    if (loop_pool_getaddrinfo(pool, "127.0.0.1", "80", &hints, &f) ||
        loop_run_until_complete(loop, f, &v) || ((struct addrinfo *)v)->ai_family != AF_INET) {
        fprintf(stderr, "loop_pool_getaddrinfo did not resolve 127.0.0.1\n");
        return 1;
    }
    loop_pool_freeaddrinfo(loop, v);
    loop_future_unref(f);
    loop_free(loop);
    printf("libloop-pool: ok\n");
    return 0;
}
CEOF
for layer in future coro task workers process stream stream_task pool; do
    [ -e "$(dirname "$pc")/libloop-$layer.pc" ] || fail "libloop-$layer.pc was not installed"
    step "pkg-config libloop-$layer, static and shared"
    # shellcheck disable=SC2046
    "$cc" $flags -o "$work/$layer-static" "$work/src/layer_$layer.c" \
        $(pkg-config --cflags libloop-$layer) -Wl,-Bstatic $(pkg-config --libs libloop-$layer) \
        -Wl,-Bdynamic -pthread || fail "pkg-config libloop-$layer static build"
    "$work/$layer-static" || fail "the libloop-$layer static program exited with $?"
    # A layer's library needs those below it from the same directory, which
    # a RUNPATH (searched for the program's own needs only) does not cover
    # when the linker dropped them as not needed by the program: an RPATH.
    # shellcheck disable=SC2046
    "$cc" $flags -o "$work/$layer-shared" "$work/src/layer_$layer.c" \
        $(pkg-config --cflags --libs libloop-$layer) "-Wl,-rpath,$pc_libdir" \
        -Wl,--disable-new-dtags ||
        fail "pkg-config libloop-$layer shared build"
    "$work/$layer-shared" || fail "the libloop-$layer shared program exited with $?"

    step "find_package(libloop COMPONENTS $layer)"
    mkdir -p "$work/consumer-$layer"
    cp "$work/src/layer_$layer.c" "$work/consumer-$layer/main.c"
    cat >"$work/consumer-$layer/CMakeLists.txt" <<CEOF
cmake_minimum_required(VERSION 3.25)
project(libloop_consumer_$layer LANGUAGES C)
find_package(libloop 0.1 CONFIG REQUIRED COMPONENTS $layer)
add_executable(consumer main.c)
target_link_libraries(consumer PRIVATE libloop::$layer)
CEOF
    "$cmake" -S "$work/consumer-$layer" -B "$work/consumer-$layer/build" -G "$generator" \
        -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
        -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" \
        >"$work/consumer-$layer.log" 2>&1 &&
        "$cmake" --build "$work/consumer-$layer/build" >>"$work/consumer-$layer.log" 2>&1 ||
        { cat "$work/consumer-$layer.log" >&2; fail "find_package COMPONENTS $layer"; }
    "$work/consumer-$layer/build/consumer" || fail "the CMake $layer program exited with $?"
done

# A component that does not exist is an error of find_package.
mkdir -p "$work/consumer-none"
cat >"$work/consumer-none/CMakeLists.txt" <<'CEOF'
cmake_minimum_required(VERSION 3.25)
project(libloop_consumer_none LANGUAGES C)
find_package(libloop CONFIG REQUIRED COMPONENTS no_such_layer)
CEOF
if "$cmake" -S "$work/consumer-none" -B "$work/consumer-none/build" -G "$generator" \
    -DCMAKE_PREFIX_PATH="$prefix" >"$work/consumer-none.log" 2>&1; then
    fail "find_package accepted a component that does not exist"
fi

echo "install: ok"
