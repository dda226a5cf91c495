#!/usr/bin/env bash
# Does the fault suite catch a broken build? Build a *copy* of the tree in
# which every member answers linearizable reads from its own state (skipping
# ReadIndex: a partitioned old leader or a lagging follower then serves stale
# data), run fault schedules against it, and expect the checker to report a
# linearizability violation naming the operation. The source tree is never
# modified. Exit 0 when the violation is caught.
#
# --lists breaks LIST only, as it was before 583ac62: every LIST page is
# answered from the receiving member's state whatever the consistency asked
# (READ stays correct), and the violation must name a list page.
#
# Schedules run one at a time and stop at the first violation, which is
# reported with the number of schedules and seconds it took.
#
#   test/faults/broken-reads.sh [--lists] [SCHEDULES (default 4)] [DURATION_S (default 30)]
set -euo pipefail
cd "$(dirname "$0")/../.."
what=reads
if [ "${1:-}" = --lists ]; then what=lists; shift; fi
n=${1:-4} secs=${2:-30}
copy=$(mktemp -d "${TMPDIR:-/tmp}/ddkv-broken.XXXXXX")
trap 'rm -rf "$copy"' EXIT
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$copy"
python3 - "$copy/src/core/node/replica.c" "$what" <<'PY'
import sys
p, what = sys.argv[1], sys.argv[2]
s = open(p).read()
old = "    if (consistency == DDKV_CONSISTENCY_STALE ||\n        (consistency == DDKV_CONSISTENCY_CAUSAL"
broken = {"reads": "consistency == DDKV_CONSISTENCY_LINEARIZABLE", "lists": "t->list"}[what]
new = ("    if (consistency == DDKV_CONSISTENCY_STALE || " + broken + " ||\n"
       "        (consistency == DDKV_CONSISTENCY_CAUSAL")
if old not in s:
    sys.exit("broken-reads.sh: the read path changed; update the mutation")
open(p, "w").write(s.replace(old, new, 1))
PY
if [ "$what" = lists ]; then
  echo "== building the broken copy (LIST pages served from local state, as before 583ac62)"
  want="NOT LINEARIZABLE.*list page"
else
  echo "== building the broken copy (linearizable reads served from local state)"
  want="NOT LINEARIZABLE"
fi
cmake -S "$copy" -B "$copy/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc >/dev/null
cmake --build "$copy/build" -j"$(nproc)" --target ddkv ddkv-faults >/dev/null
mkdir -p var/faults
out=var/faults/broken-$what-$(date +%Y%m%d-%H%M%S)
seed=$(date +%s)
echo "== up to $n schedules of $secs s against it, seeds from $seed; histories in $out"
start=$(date +%s)
: >"$out.txt"
for ((i = 0; i < n; i++)); do
  set +e
  DDKV_BIN=$copy/build/ddkv "$copy/build/test/ddkv-faults" --seed $((seed + i)) --schedules 1 \
    --duration-s "$secs" --out "$out" | grep -v "^schedules:" | sed "s/^schedule 1 /schedule $((i + 1)) /" | tee -a "$out.txt"
  set -e
  if grep -q "NOT LINEARIZABLE" "$out.txt"; then
    if grep -q "$want" "$out.txt"; then
      echo "== caught in schedule $((i + 1)) of $n, after $(( $(date +%s) - start )) s: the checker found the broken $what"
      exit 0
    fi
    echo "== a violation was found, but it does not name a list page" >&2
    exit 1
  fi
done
echo "== NOT caught in $n schedules: the fault suite missed a broken build" >&2
exit 1
