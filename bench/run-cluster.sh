#!/usr/bin/env bash
# Three-node cluster benchmark on loopback: synced writes with 1 and 64
# clients, then reads at each consistency with 64 clients.
# Usage: bench/run-cluster.sh [SECONDS] [MEMBERS]   (builds the release first)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
members=${2:-3}
scripts/deps.sh
scripts/build.sh release >/dev/null
export DDKV_CLUSTER_DIR
DDKV_CLUSTER_DIR=$(mkdir -p var && mktemp -d "${PWD}/var/bench-cluster-XXXXXX")
export DDKV_PORT_BASE=${DDKV_PORT_BASE:-27000}
cleanup() { deploy/cluster.sh stop >/dev/null 2>&1 || true; rm -rf "$DDKV_CLUSTER_DIR"; }
trap cleanup EXIT
deploy/cluster.sh start "$members" >/dev/null
eps=$(deploy/cluster.sh endpoints)
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $members members on 127.0.0.1, data under $DDKV_CLUSTER_DIR"
for c in 1 64; do
  build/ddkv-bench-loop "$eps" "$c" "$secs" 256 write
done
for mode in linearizable causal stale; do
  for c in 1 64; do
    build/ddkv-bench-loop "$eps" "$c" "$secs" 256 "$mode"
  done
done
