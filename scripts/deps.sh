#!/usr/bin/env bash
# Installs what ddkv needs to build and test, from Debian's packages.
# Idempotent: prints nothing and touches nothing when everything is there.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config           # toolchain
  clang libclang-rt-14-dev                   # sanitizer build and libFuzzer
  libevent-dev libmsgpack-dev librocksdb-dev # runtime libraries
  libjansson-dev                             # JSON output (CLI, ops HTTP)
  libssl-dev openssl                         # OpenSSL 3: TLS (with libevent_openssl), SHA-256 of backups, PBKDF2 password hashes; deploy/certs.sh
  libjs-chart.js                             # the dashboard's charts (served in place by the hub)
  libcriterion-dev                           # unit and process tests
  libfuse3-dev fuse3                         # lossyfs, the power-loss filesystem of the tests
  python3                                    # test helpers
  git curl                                   # the upgrade test: git archive of a release's commit; /health
  python3-msgpack python3-pytest             # the Python client (clients/python) and its tests,
  python3-pip python3-setuptools             # which also pip-install it
  dpkg-dev lintian prometheus groff man-db   # scripts/package.sh (dpkg-shlibdeps), its lintian check, promtool for /metrics, man pages
  chromium nodejs                            # the dashboard's browser test (with playwright-core)
)
# npm comes with some Node.js builds (NodeSource's); Debian's own is a package.
command -v npm >/dev/null || PKGS+=(npm)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=()
  [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { echo "deps: apt-get install failed for: ${missing[*]}" >&2; exit 1; }
fi

# playwright-core for the browser test, from the npm registry with the
# machine's Node.js (the version pinned in test/browser/package-lock.json).
cd "$(dirname "$0")/.."
if [ ! -d test/browser/node_modules/playwright-core ]; then
  echo "deps: npm ci in test/browser" >&2
  (cd test/browser && npm ci --no-audit --no-fund >/dev/null 2>&1) \
    || { echo "deps: npm ci failed in test/browser" >&2; exit 1; }
fi
