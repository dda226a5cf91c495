#!/usr/bin/env bash
# Soak the Raft core in the deterministic simulator: run N seeds (default
# 100000) starting at FIRST (default 1), split over JOBS processes.
#
#   test/consensus/soak.sh [N] [FIRST]
#   env: BUILD=<cmake build dir> (default: build/, built here as the release
#        build: gcc, optimised, assertions on), JOBS=<n> (default nproc)
#
# A failure prints its seed; replay it with
#   DDKV_SEED=<seed> DDKV_SIM_TRACE=1 $BUILD/test/consensus/consensus_sim
set -euo pipefail
N=${1:-100000}
FIRST=${2:-1}
here=$(cd "$(dirname "$0")" && pwd)
if [[ -z ${BUILD:-} ]]; then
  "$here/../../scripts/deps.sh"
  "$here/../../scripts/build.sh" release >/dev/null
  BUILD=$here/../../build
fi
SIM=$BUILD/test/consensus/consensus_sim
JOBS=${JOBS:-$(nproc)}
if [[ ! -x $SIM ]]; then
  echo "soak: $SIM not built (cmake --build $BUILD --target consensus_sim)" >&2
  exit 2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
per=$(( (N + JOBS - 1) / JOBS ))
start=$(date +%s)
pids=()
for ((j = 0; j < JOBS; j++)); do
  off=$(( j * per ))
  (( off < N )) || break
  count=$(( N - off < per ? N - off : per ))
  "$SIM" --first $(( FIRST + off )) --count "$count" --quiet 2> "$tmp/$j.log" &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do
  wait "$p" || status=1
done
cat "$tmp"/*.log
secs=$(( $(date +%s) - start ))
if (( status == 0 )); then
  echo "soak: $N seeds from $FIRST passed in ${secs}s ($JOBS processes)"
else
  echo "soak: FAILED (seeds $FIRST..$(( FIRST + N - 1 )), ${secs}s); see the SIM FAILURE lines above" >&2
fi
exit $status
