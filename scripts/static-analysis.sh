#!/usr/bin/env bash
# Static analysis of libloop: every tool must be clean.
#
#   scripts/static-analysis.sh
#
#   1. cppcheck on src/ (warning, style, performance, portability),
#      --error-exitcode=1, with the compile flags of the real build
#   2. clang-tidy on src/*/*.c with .clang-tidy (bugprone-*, clang-analyzer-*,
#      performance-*), through build-static/compile_commands.json
#   3. clang-format --dry-run --Werror with .clang-format, on src/,
#      include/ and the test and fuzz sources this kind of check owns
#
# Runs every step even when one fails, then exits 1 if any did.  Needs
# cmake, cppcheck, clang-tidy and clang-format (on Debian: apt-get install
# cppcheck clang-tidy clang-format).
set -uo pipefail
cd "$(dirname "$0")/.."

JOBS=${JOBS:-2}
build=build-static
failed=()

step() {
    printf '\n== static analysis: %s\n' "$*"
}

for tool in cmake cppcheck clang-tidy clang-format; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "static-analysis: $tool is missing" >&2
        exit 1
    fi
done

# The compile commands of the library alone: the flags, defines and include
# paths the sources are really built with.
step "compile_commands.json ($build)"
if ! cmake -S . -B "$build" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DLOOP_BUILD_TESTS=OFF \
    -DLOOP_BUILD_EXAMPLES=OFF -DLOOP_BUILD_BENCH=OFF -DLOOP_SANITIZE= >"$build.log" 2>&1; then
    cat "$build.log" >&2
    echo "static-analysis: cmake failed" >&2
    exit 1
fi
rm -f "$build.log"

step "cppcheck $(cppcheck --version | awk '{print $2}')"
mkdir -p "$build/cppcheck"
# The project holds the library's sources only (tests, examples and
# benchmarks are off in this tree).
if cppcheck --project="$build/compile_commands.json" \
    --enable=warning,style,performance,portability --std=c11 \
    --inline-suppr --suppress=missingIncludeSystem \
    --cppcheck-build-dir="$build/cppcheck" -j "$JOBS" \
    --error-exitcode=1 --quiet; then
    echo "cppcheck: clean"
else
    failed+=(cppcheck)
fi

step "clang-tidy $(clang-tidy --version | awk '/version/ {print $NF}')"
tidy_failed=0
sources=(src/*/*.c)
# One process per source, $JOBS at a time.
printf '%s\n' "${sources[@]}" |
    xargs -P "$JOBS" -n 1 clang-tidy -p "$build" --quiet >"$build/clang-tidy.log" 2>&1 ||
    tidy_failed=1
grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter|^Use -system-headers' \
    "$build/clang-tidy.log" || true
if [ "$tidy_failed" -eq 0 ]; then
    echo "clang-tidy: clean (${#sources[@]} files)"
else
    failed+=(clang-tidy)
fi

step "clang-format $(clang-format --version | awk '/version/ {print $NF}')"
format_files=(src/*/*.c src/*/*.h include/*.h)
for f in tests/core/test_model.c tests/core/test_load.c tests/core/test_time.c tests/core/test_resources.c \
    fuzz/*.c; do
    [ -e "$f" ] && format_files+=("$f")
done
if clang-format --dry-run --Werror "${format_files[@]}"; then
    echo "clang-format: clean (${#format_files[@]} files)"
else
    echo "clang-format: run 'clang-format -i FILE' on the files above" >&2
    failed+=(clang-format)
fi

echo
if [ ${#failed[@]} -ne 0 ]; then
    echo "static-analysis: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "static-analysis: all clean"
