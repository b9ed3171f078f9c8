#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into ./build-fuzz and runs each for N seconds
# (default 15) on its seed corpus under fuzz/corpus/<target>.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-15}
if ! command -v clang++ >/dev/null; then
  echo "fuzz: SKIPPED: clang++ not installed"
  exit 0
fi
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
if [[ ! -f build-fuzz/CMakeCache.txt ]]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBERTH_FUZZ=ON -DBERTH_TESTS=OFF -DBERTH_BENCH=OFF
fi
cmake --build build-fuzz -j"$(nproc)" --target berth_fuzzers
fail=0
for f in build-fuzz/fuzz/fuzz_*; do
  [[ -x $f ]] || continue
  name=$(basename "$f")
  corpus=fuzz/corpus/${name#fuzz_}
  work=$(mktemp -d)
  [[ -d $corpus ]] && cp -r "$corpus"/. "$work"/
  echo "fuzz: $name for ${SECONDS_EACH}s"
  if ! "$f" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -print_final_stats=0 \
      -artifact_prefix="build-fuzz/$name-" "$work" >"build-fuzz/$name.log" 2>&1; then
    echo "fuzz: $name FAILED, see build-fuzz/$name.log"; tail -40 "build-fuzz/$name.log"; fail=1
  fi
  rm -rf "$work"
done
exit $fail
