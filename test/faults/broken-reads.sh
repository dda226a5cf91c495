#!/usr/bin/env bash
# Does the fault suite catch a broken build? Build a *copy* of the tree in
# which every member answers linearizable reads from its own state (skipping
# ReadIndex: a partitioned old leader or a lagging follower then serves stale
# data), run fault schedules against it, and expect the checker to report a
# linearizability violation naming the operation. The source tree is never
# modified. Exit 0 when the violation is caught.
#
#   test/faults/broken-reads.sh [SCHEDULES (default 4)] [DURATION_S (default 30)]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-4} secs=${2:-30}
copy=$(mktemp -d "${TMPDIR:-/tmp}/ddkv-broken.XXXXXX")
trap 'rm -rf "$copy"' EXIT
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$copy"
python3 - "$copy/src/node/replica.c" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
old = "    if (consistency == DDKV_CONSISTENCY_STALE ||\n        (consistency == DDKV_CONSISTENCY_CAUSAL"
new = ("    if (consistency == DDKV_CONSISTENCY_STALE || consistency == DDKV_CONSISTENCY_LINEARIZABLE ||\n"
       "        (consistency == DDKV_CONSISTENCY_CAUSAL")
if old not in s:
    sys.exit("broken-reads.sh: the read path changed; update the mutation")
open(p, "w").write(s.replace(old, new, 1))
PY
echo "== building the broken copy (linearizable reads served from local state)"
cmake -S "$copy" -B "$copy/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc >/dev/null
cmake --build "$copy/build" -j"$(nproc)" --target ddkv ddkv-faults >/dev/null
mkdir -p var/faults
out=var/faults/broken-reads-$(date +%Y%m%d-%H%M%S)
echo "== $n schedules of $secs s against it; histories in $out"
set +e
DDKV_BIN=$copy/build/ddkv "$copy/build/test/ddkv-faults" --schedules "$n" --duration-s "$secs" --out "$out" | tee "$out.txt"
set -e
if grep -q "NOT LINEARIZABLE" "$out.txt"; then
  echo "== caught: the checker found the broken reads"
  exit 0
fi
echo "== NOT caught in $n schedules: the fault suite missed a broken build" >&2
exit 1
