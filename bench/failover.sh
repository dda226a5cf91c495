#!/usr/bin/env bash
# Failover window: kill -9 the leader of a 3-node cluster under a steady write
# load from 4 clients, ROUNDS times (default 20); prints, per round, the time
# from the kill to the first write acknowledged by another member, then the
# median and max. Every acknowledged write is checked on every member after
# each round (the same test as the CI one, with more rounds, release build).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-20}
scripts/deps.sh
scripts/build.sh release >/dev/null
DDKV_BIN=$PWD/build/ddkv DDKV_FAILOVER_ROUNDS=$rounds \
  build/test/node_test_cluster --jobs 1 --verbose --filter 'cluster/kill_9_the_leader_under_load*' 2>&1 |
  grep -E 'round|window|PASS|FAIL|Assert'
