#!/usr/bin/env bash
# Installs everything berth needs to build, test and run, from Debian packages.
# Idempotent: packages already present are left alone.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build ccache pkg-config git
  clang clang-format libclang-rt-14-dev
  protobuf-compiler libprotobuf-dev protobuf-compiler-grpc libgrpc++-dev libgrpc-dev
  libtomlplusplus-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libsqlite3-dev libcurl4-openssl-dev libarchive-dev libssl-dev libboost-dev
  libisal-dev isal libzstd-dev zstd zlib1g-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  runc crun busybox-static docker-registry skopeo iproute2 util-linux mount e2fsprogs procps jq file
  containernetworking-plugins iptables
  python3-websocket nodejs
  python3 python3-prometheus-client python3-yaml libcap2-bin systemd containerd zsh
)
# The streaming tests install the npm package spdy-transport with npm (Debian's, unless a
# nodejs that ships its own npm is installed).
command -v npm >/dev/null || PKGS+=(npm)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "all build and test dependencies are installed"
fi
