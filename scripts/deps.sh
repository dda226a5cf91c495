#!/usr/bin/env bash
# Installs what ddkv needs to build and test, from Debian's packages.
# Idempotent: prints nothing and touches nothing when everything is there.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config           # toolchain
  clang libclang-rt-14-dev                   # sanitizer build and libFuzzer
  libevent-dev libmsgpack-dev librocksdb-dev # runtime libraries
  libjansson-dev                             # JSON output (CLI, ops HTTP)
  libjs-chart.js                             # the dashboard's charts (served in place by the hub)
  libcriterion-dev                           # unit and process tests
  python3                                    # test helpers
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
"${SUDO[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
  || { echo "deps: apt-get install failed for: ${missing[*]}" >&2; exit 1; }
