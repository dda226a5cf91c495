#!/usr/bin/env bash
# Builds the man pages ddkv.1 and ddkv.conf.5 into OUTDIR from docs/man/*.in and
# the sections the binary generates from its own command and flag tables.
# Usage: scripts/man.sh DDKV_BINARY OUTDIR
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: scripts/man.sh DDKV_BINARY OUTDIR}
out=${2:?usage: scripts/man.sh DDKV_BINARY OUTDIR}
mkdir -p "$out"
version=$("$bin" __doc version)
# The date of the commit built (reproducible), or of the newest template outside git.
date=$(git log -1 --format=%cs 2>/dev/null || date -u -r docs/man/ddkv.1.in +%Y-%m-%d)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" __doc man-commands >"$tmp/commands"
"$bin" __doc man-global >"$tmp/global"
"$bin" __doc man-config >"$tmp/keys"
fill() { # template output
  awk -v dir="$tmp" -v ver="$version" -v date="$date" '
    /^\.\\" / { next }   # comments of the templates
    $0 == "@COMMANDS@" { while ((getline l < (dir "/commands")) > 0) print l; next }
    $0 == "@GLOBAL@"   { while ((getline l < (dir "/global")) > 0) print l; next }
    $0 == "@KEYS@"     { while ((getline l < (dir "/keys")) > 0) print l; next }
    { gsub(/@VERSION@/, ver); gsub(/@DATE@/, date); print }' "$1" >"$2"
}
fill docs/man/ddkv.1.in "$out/ddkv.1"
fill docs/man/ddkv.conf.5.in "$out/ddkv.conf.5"
