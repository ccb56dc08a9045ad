#!/usr/bin/env bash
# Check the symbols libloop exports.
#
#   check_exports.sh path/to/libloop.so path/to/libloop.a [include-dir]
#
# libloop.so: every dynamic symbol it defines must start with loop_, and none
#             with loop__ (internals shared between files stay hidden).
#             Given the include directory, the exports must also be exactly
#             the functions its headers declare LOOP_API.
# libloop.a:  every global symbol it defines must start with loop_ (public)
#             or loop__ (internal).
# Prints the offending names and fails if there are any.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: $0 libloop.so libloop.a [include-dir or header]" >&2
    exit 2
fi
shared=$1
static=$2
include_dir=${3:-}
status=0

# Symbols the linker itself defines in every shared object; not ours.
linker_symbols='^(_init|_fini|_edata|_end|__bss_start|__end__|__data_start|_etext|__etext)$'

# nm prints "address type name" for defined symbols (and "file.o:" headers
# and blank lines for archives).
shared_syms=$(nm -D --defined-only "$shared" | awk 'NF >= 3 { print $3 }' | sort -u)
static_syms=$(nm --defined-only -g "$static" | awk 'NF >= 3 { print $3 }' | sort -u)

if [ -z "$shared_syms" ]; then
    echo "exports: $shared defines no dynamic symbols" >&2
    status=1
fi

bad=$(printf '%s\n' "$shared_syms" | grep -Ev "$linker_symbols" |
      grep -Ev '^loop_' || true)
internal=$(printf '%s\n' "$shared_syms" | grep -E '^loop__' || true)
if [ -n "$bad" ]; then
    echo "exports: $shared exports symbols without the loop_ prefix:" >&2
    printf '%s\n' "$bad" | sed 's/^/    /' >&2
    status=1
fi
if [ -n "$internal" ]; then
    echo "exports: $shared exports internal loop__ symbols (missing -fvisibility=hidden?):" >&2
    printf '%s\n' "$internal" | sed 's/^/    /' >&2
    status=1
fi

if [ -n "$include_dir" ]; then
    # Declarations start a line with LOOP_API and name the function on it.
    if [ -f "$include_dir" ]; then
        headers=("$include_dir") # one library's own header
    else
        headers=("$include_dir"/*.h)
    fi
    declared=$(cat "${headers[@]}" | grep -E '^LOOP_API ' |
               sed -nE 's/^[^(]*[ *]([A-Za-z_][A-Za-z_0-9]*)\(.*/\1/p' | sort -u)
    exported=$(printf '%s\n' "$shared_syms" | grep -E '^loop_' || true)
    missing=$(comm -23 <(printf '%s\n' "$declared") <(printf '%s\n' "$exported") | grep . || true)
    extra=$(comm -13 <(printf '%s\n' "$declared") <(printf '%s\n' "$exported") | grep . || true)
    if [ -n "$missing" ]; then
        echo "exports: declared LOOP_API in $include_dir but not exported by $shared:" >&2
        printf '%s\n' "$missing" | sed 's/^/    /' >&2
        status=1
    fi
    if [ -n "$extra" ]; then
        echo "exports: exported by $shared but not declared LOOP_API in $include_dir:" >&2
        printf '%s\n' "$extra" | sed 's/^/    /' >&2
        status=1
    fi
fi

bad=$(printf '%s\n' "$static_syms" | grep -Ev '^(loop_|$)' || true)
if [ -n "$bad" ]; then
    echo "exports: $static has global symbols without the loop_ or loop__ prefix:" >&2
    echo "         (make them static, or name them loop__...)" >&2
    printf '%s\n' "$bad" | sed 's/^/    /' >&2
    status=1
fi

if [ $status -eq 0 ]; then
    echo "exports: ok ($(printf '%s\n' "$shared_syms" | grep -c '^loop_') symbols exported," \
         "$(printf '%s\n' "$static_syms" | grep -c '^loop__' || true) internal loop__ symbols)"
fi
exit $status
