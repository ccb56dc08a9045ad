#!/usr/bin/env bash
# Every global symbol of the static libraries (the core and every layer)
# is defined once: a program that links several layers must never meet two
# definitions of one name, internal (hidden) ones included.
#
#   tests/check_symbols.sh LIB.a...
set -euo pipefail
dups=$(for lib in "$@"; do
    nm -g --defined-only "$lib" 2>/dev/null | awk 'NF == 3 && $2 != "U" { print $3 }' | sort -u
done | sort | uniq -d)
if [ -n "$dups" ]; then
    echo "defined by more than one library:"
    for sym in $dups; do
        printf '  %s:' "$sym"
        for lib in "$@"; do
            nm -g --defined-only "$lib" 2>/dev/null | awk -v s="$sym" 'NF == 3 && $3 == s { found = 1 } END { exit !found }' &&
                printf ' %s' "$(basename "$lib")"
        done
        echo
    done
    exit 1
fi
echo "check_symbols: $# libraries, no symbol defined twice"
