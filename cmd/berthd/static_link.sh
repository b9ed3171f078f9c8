#!/bin/bash
# Link launcher of berthd (see cmd/berthd/CMakeLists.txt, BERTH_STATIC_GRPC): runs the link
# command CMake generated with gRPC, protobuf, abseil, gRPC's helpers (upb, c-ares,
# address_sorting, re2), libcrypto (berth's digests) and libssl (the streaming server's optional
# TLS) taken from their static archives instead of the shared libraries. gRPC is linked without its TLS part (grpc++_unsecure, grpc_unsecure):
# berthd serves on a unix socket. berthd exports none of these symbols, so the libcrypto that
# libcurl brings along when it is loaded for a pull (image/dynload.h) keeps to itself.
# Every occurrence is replaced, so that berthd never holds a static and a shared copy of one of
# them; the archives are grouped so that their order does not matter.
set -euo pipefail
args=()
static() {
  if [[ ! -f "$1" ]]; then
    echo "static_link.sh: $1 not found (install the static archives or configure with -DBERTH_STATIC_GRPC=OFF)" >&2
    exit 1
  fi
  args+=("$1")
}
grouped=0
prev=""
for a in "$@"; do
  dir=${a%/*}
  case "$a" in
    */libgrpc++.so | */libgrpc++.so.*) static "$dir/libgrpc++_unsecure.a" ;;
    */libgrpc.so | */libgrpc.so.*) static "$dir/libgrpc_unsecure.a" ;;
    */libgpr.so* | */libupb.so* | */libaddress_sorting.so* | */libcares.so* | */libprotobuf.so* | */libabsl_*.so* | \
    */libcrypto.so | */libcrypto.so.* | */libssl.so | */libssl.so.*)
      base=${a##*/}
      static "$dir/${base%%.so*}.a"
      ;;
    -lre2) args+=("-l:libre2.a") ;;
    *) args+=("$a") ;;
  esac
  # Libraries follow "-o <output>": group them all.
  if [[ $grouped == 0 && $prev == "-o" ]]; then
    args+=("-Wl,--start-group")
    grouped=1
  fi
  prev=$a
done
if [[ $grouped == 1 ]]; then args+=("-Wl,--end-group"); fi
exec "${args[@]}"
