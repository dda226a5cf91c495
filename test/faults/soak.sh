#!/usr/bin/env bash
# Long fault runs: N random schedules (default 60 s each) against real
# clusters, several at once, every history kept under var/faults/ for anyone to
# check again. One line per schedule, then
#   schedules: N, operations: M, violations: V, lost: L, unbootable: U
# (operations count each LIST page as one; unbootable: members that did not
# boot after a power cut), and the faults of each kind over the whole run.
# ddkv-faults mixes power faults (lossyfs mounts) in: it needs FUSE and root.
# Exit 0 only if every schedule passed. Re-running with the same --run resumes
# it: schedules with a result are not run again.
#
#   test/faults/soak.sh N [--jobs J] [--duration-s D] [--seed S] [--run NAME]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:?usage: test/faults/soak.sh N [--jobs J] [--duration-s D] [--seed S] [--run NAME]}
shift
jobs=2 duration=60 seed=$(( $(date +%s) * 1000 )) run=soak-$(date +%Y%m%d-%H%M%S)
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) jobs=$2; shift 2 ;;
    --duration-s) duration=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --run) run=$2; shift 2 ;;
    *) echo "soak.sh: unknown flag $1" >&2; exit 2 ;;
  esac
done
scripts/deps.sh >/dev/null
scripts/build.sh release >/dev/null
out=var/faults/$run
mkdir -p "$out"
# A resumed run keeps its first seed.
if [ -f "$out/seed" ]; then seed=$(cat "$out/seed"); else echo "$seed" >"$out/seed"; fi
export DDKV_BIN=$PWD/build/ddkv
echo "soak $run: $n schedules of $duration s, $jobs at a time, seeds from $seed; histories in $out"
start=$(date +%s)
lane() {
  local j=$1 i
  for ((i = j; i < n; i += jobs)); do
    local s=$((seed + i))
    [ -f "$out/result-$s" ] && continue
    build/test/ddkv-faults --seed "$s" --schedules 1 --duration-s "$duration" --out "$out" \
      >"$out/result-$s.tmp" 2>"$out/stderr-$s" || true
    mv "$out/result-$s.tmp" "$out/result-$s"
    head -n -1 "$out/result-$s" | sed "s/^schedule 1 /schedule $((i + 1)) /"
    [ -s "$out/stderr-$s" ] || rm -f "$out/stderr-$s"
  done
}
pids=()
cleanup() { for p in "${pids[@]}"; do kill -- "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
for ((j = 0; j < jobs; j++)); do lane "$j" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || true; done
pids=()
# The summary over every schedule of the run (resumed ones included).
cat "$out"/result-* 2>/dev/null | awk -v want="$n" -v secs=$(( $(date +%s) - start )) '
  /^schedules:/ { sched++; ops += $4; gsub(",", "", $6); viol += $6; gsub(/[^0-9]/, "", $8); lost += $8
                  if (match($0, /list pages [0-9]+/)) pages += substr($0, RSTART + 11, RLENGTH - 11)
                  if (match($0, /unbootable: [0-9]+/)) unboot += substr($0, RSTART + 12, RLENGTH - 12)
                  if (match($0, /power-cut-all in [0-9]+/)) pca += (substr($0, RSTART + 17, RLENGTH - 17) > 0)
                  if (match($0, /kinds: [^)]*/)) {
                    nk = split(substr($0, RSTART + 7, RLENGTH - 7), kv, " ")
                    for (i = 1; i <= nk; i++) {
                      split(kv[i], p, "="); kinds[p[1]] += p[2]; total += p[2]
                      if (p[1] ~ /power-cut/ || p[1] == "fsync-eio") power += p[2]
                    }
                  } }
  / -> FAIL/ { failed++ }
  END {
    printf "schedules: %d, operations: %d, violations: %d, lost: %d, unbootable: %d\n", sched, ops, viol, lost, unboot
    printf "(failed schedules: %d of %d wanted, %d s this invocation; list pages among the operations: %d)\n", failed, want, secs, pages
    printf "faults: %d, power faults: %d (%.0f%%), schedules with power-cut-all: %d; by kind:", total, power, total ? 100 * power / total : 0, pca
    for (k in kinds) printf " %s=%d", k, kinds[k]
    printf "\n"
    exit (failed || sched < want) ? 1 : 0
  }'
