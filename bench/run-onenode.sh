#!/usr/bin/env bash
# One-node synced-write benchmark next to the raw RocksDB ceiling on the same
# disk. Usage: bench/run-onenode.sh [SECONDS]   (builds the release first)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
scripts/deps.sh
scripts/build.sh release >/dev/null
work=$(mktemp -d "${PWD}/var/bench-XXXXXX" 2>/dev/null || { mkdir -p var; mktemp -d "${PWD}/var/bench-XXXXXX"; })
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, data under $work"
for t in 1 64; do
  rm -rf "$work/raw"; build/ddkv-bench-rocksdb "$work/raw" "$t" "$secs"
done
build/ddkv serve --data-dir "$work/node" --client-addr 127.0.0.1:0 2>"$work/log" &
pid=$!
for _ in $(seq 100); do
  grep -q "client listening" "$work/log" 2>/dev/null && break
  sleep 0.1
done
port=$(grep -o 'client listening on 127.0.0.1:[0-9]*' "$work/log" | head -1 | cut -d: -f2)
for c in 1 64; do
  echo -n "ddkv one node, synced writes: "
  build/ddkv-bench-loop "127.0.0.1:$port" "$c" "$secs" 256
done
