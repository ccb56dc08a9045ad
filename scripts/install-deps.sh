#!/usr/bin/env bash
# Install the Debian packages named on the command line that are missing.
#
#   scripts/install-deps.sh libcmocka-dev pkg-config
#
# Uses apt-get, through sudo when not root.  Waits for a dpkg lock held by
# another apt run instead of failing.
set -euo pipefail

if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: not a Debian-like system; install these yourself: $*" >&2
    exit 0
fi

missing=()
for pkg in "$@"; do
    if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
        missing+=("$pkg")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
fi

# Retry a command while another apt or dpkg holds its locks.
retry() {
    local i
    for i in 1 2 3 4 5 6 7 8 9 10; do
        if "$@"; then
            return 0
        fi
        echo "install-deps: '$*' failed (attempt $i); retrying in 15 s" >&2
        sleep 15
    done
    return 1
}

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
retry "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 update -q
retry "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends \
    "${missing[@]}"
