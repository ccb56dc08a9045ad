#!/usr/bin/env bash
# Build libloop and run every test suite:
#
#   ./scripts/test.sh
#
# Installs what the tests need (libcmocka-dev, pkg-config) when missing,
# configures build/ with warnings as errors, builds, and runs ctest.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh libcmocka-dev pkg-config

cmake -S . -B build -DLOOP_WERROR=ON -DLOOP_BUILD_TESTS=ON
cmake --build build -j2
ctest --test-dir build --output-on-failure -j2
