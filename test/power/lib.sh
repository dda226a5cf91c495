#!/usr/bin/env bash
# Shared by the power-loss tests: run the test in a private mount namespace,
# mount one lossyfs (tools/lossyfs, docs/lossyfs.md) per member under WORK,
# send it commands, and unmount and stop every lossyfs at exit, whatever
# happens. Source it first thing in a test (it re-executes the test under
# `unshare -m`), after setting nothing; it sources ../cli/lib.sh (WORK, PIDS,
# start_node, fail/pass, ...).
#
#   lossy_mount NAME [SEED]   mount WORK/NAME over WORK/.lossy/NAME.back; sets LOSSY_MNT
#                             (extra lossyfs flags in LOSSY_FLAGS, e.g. --single-thread)
#   lossy_ctl NAME CMD [ARG]  crash | crash-torn [SEED] | fail-fsync N | report; output in OUT
#   lossy_power_cut NAME PID  kill -9 PID, then crash NAME's mount (a member's power cut)
#   lossy_umount NAME         unmount and stop its lossyfs (done for all at exit)

# Exit 77 (skip) only where FUSE cannot work at all.
if [ ! -e /dev/fuse ]; then
  echo "SKIP: /dev/fuse is missing" >&2
  exit 77
fi
LOSSYFS=${LOSSYFS_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/lossyfs}
[ -x "$LOSSYFS" ] || { echo "lossyfs binary not found at $LOSSYFS (set LOSSYFS_BIN)" >&2; exit 1; }
command -v fusermount3 >/dev/null || { echo "fusermount3 missing (scripts/deps.sh installs fuse3)" >&2; exit 1; }

# A private mount namespace: our mounts are seen by nobody else, and vanish
# with the namespace even if everything below failed.
if [ "${DDKV_LOSSY_NS:-}" != "$$" ]; then
  command -v unshare >/dev/null || { echo "unshare missing" >&2; exit 1; }
  # exec keeps the PID, so the namespace marker below is this very process.
  DDKV_LOSSY_NS=$$ exec unshare -m --propagation private bash "$0" "$@"
fi

# A signal runs the EXIT trap (cli/lib.sh's cleanup) like any other exit.
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"

# Debian's Python (scripts/deps.sh) when there, not a version manager's shim,
# which costs a shell per call: the tests run Python for each syscall step.
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
LOSSY_NAMES=()
mkdir -p "$WORK/.lossy"

lossy_umount() {
  local name=$1 pidv="LOSSY_PID_$1" mnt="$WORK/$1"
  local pid=${!pidv:-}
  [ -n "$pid" ] || return 0
  if grep -q " $mnt fuse" /proc/self/mounts 2>/dev/null; then
    fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
  fi
  # fuse_main exits after the unmount; a stuck one is stopped by PID.
  local i
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -TERM "$pid" 2>/dev/null || true
  sleep 0.1
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  printf -v "LOSSY_PID_$name" '%s' ""
}

lossy_cleanup_all() {
  local n
  for n in "${LOSSY_NAMES[@]}"; do lossy_umount "$n"; done
}
# At exit: the nodes first (by PID, and a test's cleanup_extra, which
# start_cluster sets), then every mount, then cli/lib.sh's cleanup (logs,
# WORK, the exit code), so nothing is removed through a live mount.
power_exit() {
  local rc=$? p
  set +e       # errexit would stop at the first step that fails, or at (exit $rc)
  trap '' PIPE # a reader of our output that went away must not cut the cleanup short
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if declare -F cleanup_extra >/dev/null; then cleanup_extra || true; fi
  lossy_cleanup_all
  if [ $rc -ne 0 ]; then
    echo "--- lossyfs logs (test failed) ---" >&2
    tail -n 20 "$WORK"/.lossy/*.log >&2 2>/dev/null
  fi
  (exit $rc)
  cleanup
}
trap power_exit EXIT

lossy_mount() {
  local name=$1 seed=${2:-$RANDOM}
  local back="$WORK/.lossy/$name.back" mnt="$WORK/$name" sock="$WORK/.lossy/$name.sock"
  mkdir -p "$back" "$mnt"
  # shellcheck disable=SC2086 # LOSSY_FLAGS: extra flags, e.g. --single-thread
  "$LOSSYFS" mount "$back" "$mnt" --control "$sock" --seed "$seed" --die-with-parent ${LOSSY_FLAGS:-} \
    2>>"$WORK/.lossy/$name.log" &
  local pid=$!
  printf -v "LOSSY_PID_$name" '%s' "$pid"
  LOSSY_NAMES+=("$name")
  local i
  for i in $(seq 100); do
    if "$LOSSYFS" ctl "$sock" ping >/dev/null 2>&1 && grep -q " $mnt fuse" /proc/self/mounts; then
      LOSSY_MNT=$mnt
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || fail "lossyfs for $name exited: $(cat "$WORK/.lossy/$name.log")"
    sleep 0.1
  done
  fail "lossyfs for $name did not mount"
}

lossy_ctl() {
  local name=$1; shift
  OUT=$("$LOSSYFS" ctl "$WORK/.lossy/$name.sock" "$@") || fail "lossyfs $name: $* -> $OUT"
}

lossy_power_cut() {
  local name=$1 pid=$2
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  lossy_ctl "$name" crash
}
