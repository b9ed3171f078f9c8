#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: unit tests, end-to-end tests (root
# tests skip with a reason when not root or when the host lacks a feature), and the replay of
# every fuzz target's seed corpus. Tests run one at a time: the end-to-end tests start real
# daemons, registries and containers.
#
# BERTH_FUZZ_SECONDS=N additionally builds the libFuzzer targets with clang and fuzzes each for
# N seconds (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
status=0
(cd build && ctest --output-on-failure --timeout 900) || status=$?
if [[ "${BERTH_FUZZ_SECONDS:-0}" != 0 ]]; then
  scripts/fuzz.sh "$BERTH_FUZZ_SECONDS" || status=$?
fi
exit $status
