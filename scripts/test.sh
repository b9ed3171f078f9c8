#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: unit, end-to-end (root tests skip
# with a reason when not root or when the host lacks a feature), and a short libFuzzer run
# of every fuzz target when clang is available.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
status=0
(cd build && ctest --output-on-failure --timeout 900 -j2) || status=$?
if [[ "${BERTH_SKIP_FUZZ:-0}" != 1 ]]; then
  scripts/fuzz.sh "${BERTH_FUZZ_SECONDS:-15}" || status=$?
fi
exit $status
