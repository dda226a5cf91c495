#!/usr/bin/env bash
# Do the power faults catch a build that breaks durability? Build a *copy* of
# the tree with one mutation, run power-fault schedules (ddkv-faults
# --power-only: every fault a power cut, torn cut, fsync EIO or timed cut, on
# lossyfs mounts) one at a time, and expect the checker to report lost
# acknowledged writes, a member that does not boot after a power cut, or a
# linearizability violation. The source tree is never modified. Exit 0 when
# the mutation is caught, with the number of schedules and seconds it took.
#
#   a  the log syncer reports a sync done without syncing (logsync.c)
#   b  the log syncer reports each sync done as soon as it is asked for and
#      syncs behind: clients are answered (and appends acknowledged) before
#      their entries' sync has completed (logsync.c)
#   c  a snapshot image (written, or received from the leader) is renamed
#      into place without being fsynced (kv/snapshot.c)
#
#   test/faults/broken-durability.sh a|b|c [SCHEDULES (default 10)] [DURATION_S (default 20)]
#
# FAULTS_FLAGS replaces --power-only, e.g. FAULTS_FLAGS="--only power-cut-install".
set -euo pipefail
cd "$(dirname "$0")/../.."
what=${1:?usage: test/faults/broken-durability.sh a|b|c [SCHEDULES] [DURATION_S]}
n=${2:-10} secs=${3:-20}
copy=$(mktemp -d "${TMPDIR:-/tmp}/ddkv-broken-durability.XXXXXX")
trap 'rm -rf "$copy"' EXIT
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$copy"
python3 - "$copy" "$what" <<'PY'
import sys
root, what = sys.argv[1], sys.argv[2]
def mutate(path, old, new):
    p = root + "/" + path
    s = open(p).read()
    if old not in s:
        sys.exit("broken-durability.sh: %s changed; update mutation %s" % (path, what))
    open(p, "w").write(s.replace(old, new, 1))
if what == "a":
    mutate("src/core/node/logsync.c", "int rc = store_sync_wal(ls->st, &eb);",
           "int rc = ERR_OK; /* MUTATION a: no sync */")
elif what == "b":
    mutate("src/core/node/logsync.c",
           "    ls->in_flight = true;\n    ls->finished = false;\n    ls->requested = true;\n",
           "    ls->in_flight = true;\n"
           "    /* MUTATION b: reported done at once; the thread syncs behind */\n"
           "    ls->finished = true;\n    ls->rc = ERR_OK;\n    ls->ns = 0;\n"
           "    uint64_t one = 1;\n    ssize_t w = write(ls->efd, &one, sizeof one);\n    (void)w;\n"
           "    ls->requested = true;\n")
elif what == "c":
    mutate("src/core/kv/snapshot.c", "if (!rc && fsync(w.fd) != 0)", "if (!rc && 0) /* MUTATION c: no fsync */")
    mutate("src/core/kv/snapshot.c", "    if (fsync(r->fd) != 0) {", "    if (0) { /* MUTATION c: no fsync */")
else:
    sys.exit("broken-durability.sh: a, b or c")
PY
echo "== building the broken copy (mutation $what)"
cmake -S "$copy" -B "$copy/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc >/dev/null
cmake --build "$copy/build" -j"$(nproc)" --target ddkv ddkv-faults lossyfs >/dev/null
mkdir -p var/faults
out=var/faults/broken-durability-$what-$(date +%Y%m%d-%H%M%S)
seed=$(date +%s)
echo "== up to $n power-fault schedules of $secs s against it, seeds from $seed; histories in $out"
start=$(date +%s)
: >"$out.txt"
for ((i = 0; i < n; i++)); do
  set +e
  # shellcheck disable=SC2086 # FAULTS_FLAGS: several flags
  DDKV_BIN=$copy/build/ddkv LOSSYFS_BIN=$copy/build/lossyfs "$copy/build/test/ddkv-faults" ${FAULTS_FLAGS:---power-only} \
    --seed $((seed + i)) --schedules 1 --duration-s "$secs" --out "$out" |
    grep -v "^schedules:" | sed "s/^schedule 1 /schedule $((i + 1)) /" | tee -a "$out.txt"
  set -e
  line=$(grep "^schedule $((i + 1)) " "$out.txt" || true)
  how=()
  [[ $line == *"NOT LINEARIZABLE"* ]] && how+=("a linearizability violation")
  [[ $line =~ lost\ ([1-9][0-9]*) ]] && how+=("${BASH_REMATCH[1]} acknowledged writes lost")
  [[ $line =~ unbootable\ ([1-9][0-9]*) ]] && how+=("${BASH_REMATCH[1]} member(s) unbootable after a power cut")
  if [ ${#how[@]} -gt 0 ]; then
    echo "== caught in schedule $((i + 1)) of $n, after $(( $(date +%s) - start )) s: $(IFS=';'; echo "${how[*]}" | sed 's/;/; /g')"
    exit 0
  fi
done
echo "== NOT caught in $n schedules: the power faults missed a broken build" >&2
exit 1
