#!/usr/bin/env bash
# Quick start: installs what is missing, builds, and runs berthd in the foreground with its
# embedded defaults (socket /run/berth/berth.sock, root /var/lib/berth, state /run/berth).
# Arguments are passed to berthd, e.g. `scripts/run.sh --config /etc/berth/config.toml`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec ./build/cmd/berthd/berthd "$@"
