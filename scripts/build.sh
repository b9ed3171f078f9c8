#!/usr/bin/env bash
# Configures and builds berth into ./build (or $BERTH_BUILD_DIR). Extra args go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BERTH_BUILD_DIR:-build}
# Let ccache share results between checkouts in different folders.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
  cmake -S . -B "$BUILD_DIR" "${GEN[@]}" -DCMAKE_BUILD_TYPE=${BERTH_BUILD_TYPE:-Release} "$@"
fi
cmake --build "$BUILD_DIR" -j"$(nproc)"
