#!/usr/bin/env bash
# Installs the npm package spdy-transport (an independent SPDY/3.1 implementation the SPDY tests
# drive berth with) into $1/node_modules, once. Needs nodejs and npm (scripts/install-deps.sh).
set -euo pipefail
dir=$1
[[ -f "$dir/node_modules/spdy-transport/package.json" ]] && exit 0
mkdir -p "$dir"
cd "$dir"
for i in 1 2 3; do
  npm install --no-audit --no-fund --loglevel=error spdy-transport@3.0.0 >/dev/null && exit 0
  sleep 5
done
exit 1
