#!/usr/bin/env bash
# Claim latency with N queued jobs on a one-node cluster (release build).
# Usage: bench/job_claims.sh [N (100000)] [MAX_CLAIM_S (120)]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
secs=${2:-120}
scripts/build.sh release >/dev/null
mkdir -p var
work=$(mktemp -d "${PWD}/var/bench-XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(git rev-parse --short HEAD)"
build/ddkv serve --data-dir "$work/node" --client-addr 127.0.0.1:0 2>"$work/log" &
pid=$!
for _ in $(seq 100); do
  grep -q "client listening" "$work/log" 2>/dev/null && break
  sleep 0.1
done
port=$(grep -o 'client listening on 127.0.0.1:[0-9]*' "$work/log" | head -1 | cut -d: -f2)
build/ddkv-bench-job-claims "127.0.0.1:$port" "$n" 16 "$secs"
