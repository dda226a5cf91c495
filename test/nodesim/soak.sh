#!/usr/bin/env bash
# Soak the whole-node simulator: N seeds (default 100000) from FIRST (default
# 1), split over JOBS processes; prints seeds per second and the total time.
#
#   test/nodesim/soak.sh [N] [FIRST]
#   env: BUILD=<cmake build dir> (default: build/, built here as the release
#        build: gcc, optimised, assertions on), JOBS=<n> (default nproc),
#        NODES=3|5 (default 3)
#
# A failure prints its seed; replay it with
#   DDKV_SEED=<seed> DDKV_NODESIM_TRACE=1 $BUILD/test/nodesim/nodesim --nodes N
set -euo pipefail
N=${1:-100000}
FIRST=${2:-1}
NODES=${NODES:-3}
here=$(cd "$(dirname "$0")" && pwd)
if [[ -z ${BUILD:-} ]]; then
  "$here/../../scripts/build.sh" release >/dev/null
  BUILD=$here/../../build
fi
SIM=$BUILD/test/nodesim/nodesim
JOBS=${JOBS:-$(nproc)}
if [[ ! -x $SIM ]]; then
  echo "soak: $SIM not built (cmake --build $BUILD --target nodesim)" >&2
  exit 2
fi
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
per=$(( (N + JOBS - 1) / JOBS ))
start=$(date +%s.%N)
for ((j = 0; j < JOBS; j++)); do
  off=$(( j * per ))
  (( off < N )) || break
  count=$(( N - off < per ? N - off : per ))
  "$SIM" --first $(( FIRST + off )) --count "$count" --nodes "$NODES" --quiet 2> "$tmp/$j.log" &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do
  wait "$p" || status=1
done
pids=()
cat "$tmp"/*.log
secs=$(echo "$(date +%s.%N) - $start" | bc)
rate=$(echo "scale=1; $N / $secs" | bc)
if (( status == 0 )); then
  printf 'soak: %d seeds from %d passed in %.1f s, %s seeds/s (%d members, %d processes)\n' \
    "$N" "$FIRST" "$secs" "$rate" "$NODES" "$JOBS"
else
  echo "soak: FAILED (seeds $FIRST..$(( FIRST + N - 1 ))); the failing seed and its replay command are above" >&2
fi
exit $status
