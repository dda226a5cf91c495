#!/usr/bin/env bash
# Builds ddkv. Usage: scripts/build.sh [release|asan]
#   release  gcc, RelWithDebInfo, into build/       (the binary people run and bench)
#   asan     clang with ASan+UBSan and the libFuzzer targets, into build-asan/ (what tests run)
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
jobs=$(nproc 2>/dev/null || echo 2)
case "$kind" in
  release)
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc >/dev/null
    cmake --build build -j"$jobs" ;;
  asan)
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
          -DDDKV_SANITIZE=ON -DDDKV_FUZZ=ON >/dev/null
    cmake --build build-asan -j"$jobs" ;;
  *) echo "usage: $0 [release|asan]" >&2; exit 2 ;;
esac
