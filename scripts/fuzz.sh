#!/usr/bin/env bash
# Fuzz libloop with libFuzzer for a bounded time.
#
#   scripts/fuzz.sh [SECONDS]            fuzz for SECONDS (default $FUZZ_SECONDS, or 120)
#   scripts/fuzz.sh --merge [SECONDS]    the same, then fold what it found into fuzz/corpus
#   scripts/fuzz.sh --replay FILE...     run given inputs once, with a trace (FUZZ_TRACE=1)
#
# Builds build-fuzz/fuzz_loop with clang (-fsanitize=fuzzer,address,undefined)
# from src/core/*.c and fuzz/fuzz_*.c (its oracle, the reference model, is in
# tests/support/), and runs it on a scratch copy of
# fuzz/corpus: the corpus in the tree only changes with --merge.  A crash or
# a failed check saves the input in build-fuzz/artifacts/ and exits 1; to
# keep it as a regression test once fixed, copy it into fuzz/regressions/
# (ctest's fuzz_replay runs every file there).
#
# Environment: FUZZ_SECONDS (120), FUZZ_JOBS (1: one process; 2 uses fork
# mode with two workers), CC (clang).
set -euo pipefail
cd "$(dirname "$0")/.."

merge=false
replay=false
case ${1:-} in
--merge)
    merge=true
    shift
    ;;
--replay)
    replay=true
    shift
    ;;
esac
seconds=${1:-${FUZZ_SECONDS:-120}}
jobs=${FUZZ_JOBS:-1}
cc=${CC:-clang}
out=build-fuzz
bin=$out/fuzz_loop

mkdir -p "$out/artifacts" "$out/corpus"

build() {
    # The library is compiled in, with the same instrumentation as the target,
    # so that coverage guides the fuzzer through src/ too.
    "$cc" -g -O1 -std=c11 -D_GNU_SOURCE \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        -fno-omit-frame-pointer \
        -Wall -Wextra -Werror \
        -Iinclude -Isrc/core -Itests/support src/core/*.c fuzz/fuzz_*.c -o "$bin" -lpthread
}

if ! build 2>"$out/build.log"; then
    if grep -q 'libclang_rt.fuzzer\|fsanitize=fuzzer' "$out/build.log" && [ "${CI:-}" = true ]; then
        echo "fuzz: libFuzzer runtime missing; installing libclang-rt-14-dev" >&2
        ./scripts/install-deps.sh libclang-rt-14-dev
        build
    else
        cat "$out/build.log" >&2
        echo "fuzz: could not build with $cc -fsanitize=fuzzer" \
            "(on Debian: apt-get install clang libclang-rt-14-dev)" >&2
        exit 1
    fi
fi

if $replay; then
    FUZZ_TRACE=1 "$bin" "$@"
    exit
fi

# Scratch corpus first: libFuzzer writes what it finds into the first
# directory only.  Artifacts of an earlier run go too.
rm -f "$out"/artifacts/*
rm -rf "$out/corpus"
mkdir -p "$out/corpus"
opts=(
    -max_total_time="$seconds"
    -timeout=10
    -rss_limit_mb=2048
    -max_len=4096
    -print_final_stats=1
    -artifact_prefix="$out/artifacts/"
)
if [ "$jobs" -gt 1 ]; then
    opts+=(-fork="$jobs" -ignore_crashes=0)
fi

echo "fuzz: $seconds s, $jobs process(es), $(ls fuzz/corpus | wc -l) corpus inputs"
rc=0
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
UBSAN_OPTIONS=print_stacktrace=1 \
    "$bin" "${opts[@]}" "$out/corpus" fuzz/corpus fuzz/regressions \
    >"$out/fuzz.log" 2>&1 || rc=$?

grep -E '^(stat::|Done|INFO: (Seed|Loaded))' "$out/fuzz.log" || true
if [ "$rc" -ne 0 ]; then
    echo
    echo "fuzz: FAILED (exit $rc); the end of $out/fuzz.log:" >&2
    tail -n 60 "$out/fuzz.log" >&2
    for crash in "$out"/artifacts/*; do
        [ -e "$crash" ] || continue
        echo "fuzz: failing input: $crash" >&2
        known=""
        for kept in fuzz/regressions/* fuzz/corpus/*; do
            if [ -f "$kept" ] && cmp -s "$crash" "$kept"; then
                known=$kept
                break
            fi
        done
        if [ -n "$known" ]; then
            echo "      it is $known: a known failure, not fixed yet" >&2
        fi
        echo "      replay it:  scripts/fuzz.sh --replay $crash" >&2
        [ -n "$known" ] || echo "      keep it:    cp $crash fuzz/regressions/<what-it-found>" >&2
    done
    exit 1
fi

if $merge; then
    # Keep fuzz/corpus small: only inputs that add coverage, minimised.
    mkdir -p "$out/merged"
    rm -rf "${out:?}/merged"/*
    "$bin" -merge=1 "$out/merged" fuzz/corpus "$out/corpus" >"$out/merge.log" 2>&1
    rm -f fuzz/corpus/*
    cp "$out/merged"/* fuzz/corpus/
    echo "fuzz: fuzz/corpus now holds $(ls fuzz/corpus | wc -l) inputs"
fi
echo "fuzz: passed"
