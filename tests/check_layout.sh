#!/usr/bin/env bash
# The tree keeps its shape (DESIGN §1, STYLE "Layout"):
#   - no layer above the core includes the core's internal headers;
#   - the core's files include each other without a cycle (tsort finds one);
#   - the library's sources are listed, not globbed, and the test-only
#     invariant checker (verify.c) is not among them;
#   - no source, header or script is over 800 lines.
#
#   tests/check_layout.sh SOURCE_DIR
set -euo pipefail
cd "$1"
fail=0
complain() {
    echo "layout: $*" >&2
    fail=1
}

core_headers=$(cd src/core && ls ./*.h | sed 's#^\./##')
for dir in src/*/; do
    [ "$dir" = src/core/ ] && continue
    for f in "$dir"*.[ch]; do
        [ -e "$f" ] || continue
        for h in $core_headers; do
            if grep -qE "#include +\"([./a-z]*/)?$h\"" "$f"; then
                complain "$f includes the core's $h: a layer uses public headers only"
            fi
        done
    done
done

# Edges "includer included" between the core's files, header to header and
# source to header (a source and its own header are one node).
edges=$(for f in src/core/*.[ch]; do
    from=$(basename "$f" | sed 's/\.[ch]$//')
    grep -oE '^#include +"[a-z_]+\.h"' "$f" | sed -E 's/.*"([a-z_]+)\.h"/\1/' |
        while read -r to; do # public headers (include/) are not nodes
            [ "$to" != "$from" ] && [ -e "src/core/$to.h" ] && echo "$from $to"
        done
done)
if ! echo "$edges" | tsort >/dev/null 2>/tmp/layout-tsort.$$; then
    complain "the core's includes form a cycle: $(cat /tmp/layout-tsort.$$)"
fi
rm -f /tmp/layout-tsort.$$

if grep -nE 'file\(GLOB[^)]*src/' CMakeLists.txt; then
    complain "CMakeLists.txt globs the library's sources; list them"
fi
if sed -n '/set(LOOP_CORE_SOURCES/,/)/p' CMakeLists.txt | grep -q verify.c; then
    complain "verify.c is test-only and must stay out of the shipped library"
fi

while read -r n f; do
    [ "$f" = total ] && continue
    [ "$n" -gt 800 ] && complain "$f has $n lines (more than 800): split it by concern"
done < <(git ls-files '*.c' '*.h' '*.S' '*.py' '*.sh' 2>/dev/null | xargs -r wc -l)

[ $fail -eq 0 ] && echo "layout: ok"
exit $fail
