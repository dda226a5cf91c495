#!/usr/bin/env bash
# lossyfs's own tests (docs/lossyfs.md): after `crash`, each file is as of its
# last fsync/fdatasync and each directory's entries as of its last fsync;
# crash-torn keeps a part of the last write; fail-fsync gives EIO; an fsync
# under way at a crash (fsync-delay, freeze) makes nothing durable; report
# counts unsynced bytes; the mount keeps working after a crash.
source "$(dirname "$0")/../power/lib.sh"

lossy_mount m 7
M=$LOSSY_MNT

# fs OP ARGS...: one syscall-level step, in Python (fsync of files and of
# directories, fdatasync, rename, link, fallocate, truncate, pwrite).
fs() {
  "$PY" - "$@" <<'EOF'
import os, sys
op, a = sys.argv[1], sys.argv[2:]
def fsync(p, data=False):
    fd = os.open(p, os.O_RDONLY)
    try:
        (os.fdatasync if data else os.fsync)(fd)
    finally:
        os.close(fd)
if op == "write":            # write PATH DATA [sync|datasync|nosync]: create or truncate
    fd = os.open(a[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, a[1].encode())
    if a[2:] == ["sync"]: os.fsync(fd)
    if a[2:] == ["datasync"]: os.fdatasync(fd)
    os.close(fd)
elif op == "append":         # append PATH DATA [sync]
    fd = os.open(a[0], os.O_WRONLY | os.O_APPEND)
    os.write(fd, a[1].encode())
    if a[2:] == ["sync"]: os.fsync(fd)
    os.close(fd)
elif op == "pwrite":         # pwrite PATH OFFSET DATA
    fd = os.open(a[0], os.O_WRONLY)
    os.pwrite(fd, a[2].encode(), int(a[1]))
    os.close(fd)
elif op == "random":         # random PATH BYTES: synced
    fd = os.open(a[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, os.urandom(int(a[1])))
    os.fsync(fd)
    os.close(fd)
elif op == "fill":           # fill PATH CHAR BYTES [sync]: append BYTES copies of CHAR
    fd = os.open(a[0], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, a[1].encode() * int(a[2]))
    if a[3:] == ["sync"]: os.fsync(fd)
    os.close(fd)
elif op == "fsync": fsync(a[0])
elif op == "fdatasync": fsync(a[0], True)
elif op == "fsyncdir": fsync(a[0])
elif op == "fsync-eio":      # fsync-eio PATH: the fsync must fail with EIO
    try:
        fsync(a[0])
    except OSError as e:
        sys.exit(0 if e.errno == 5 else 3)
    sys.exit(4)
elif op == "rename": os.rename(a[0], a[1])
elif op == "link": os.link(a[0], a[1])
elif op == "truncate": os.truncate(a[0], int(a[1]))
elif op == "fallocate":      # fallocate PATH OFFSET LEN (mode 0: the size grows)
    fd = os.open(a[0], os.O_RDWR)
    os.posix_fallocate(fd, int(a[1]), int(a[2]))
    os.close(fd)
elif op == "falloc":         # falloc PATH keep|punch OFFSET LEN: fallocate(2) with a mode, no fsync
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    mode = {"keep": 1, "punch": 1 | 2}[a[1]]  # FALLOC_FL_KEEP_SIZE, | FALLOC_FL_PUNCH_HOLE
    fd = os.open(a[0], os.O_RDWR)
    if libc.fallocate(fd, mode, ctypes.c_long(int(a[2])), ctypes.c_long(int(a[3]))) != 0:
        sys.exit("fallocate: " + os.strerror(ctypes.get_errno()))
    os.close(fd)
elif op == "sha":
    import hashlib
    print(hashlib.sha256(open(a[0], "rb").read()).hexdigest())
else:
    sys.exit("bad op " + op)
EOF
}
crash() { lossy_ctl m crash; }
content_is() { [ "$(cat "$1")" = "$2" ] || fail "$1 holds '$(cat "$1" 2>/dev/null)', want '$2' ($3)"; }
absent() { [ ! -e "$1" ] || fail "$1 exists after the crash ($2)"; }
size_is() { local s; s=$(stat -c %s "$1"); [ "$s" = "$2" ] || fail "$1 is $s bytes, want $2 ($3)"; }

# A durable file: written, fsynced, and its directory fsynced.
fs write "$M/a" hello sync
fs fsyncdir "$M"

# 1. unsynced data is gone, synced data kept
fs append "$M/a" " world"
content_is "$M/a" "hello world" "before the crash"
crash
content_is "$M/a" hello "an unsynced append is undone"
fs append "$M/a" " there" sync
crash
content_is "$M/a" "hello there" "a synced append survives"
pass "unsynced data gone after crash, synced data kept"

# 2. fdatasync makes the size durable too
fs append "$M/a" "!"
fs fdatasync "$M/a"
crash
content_is "$M/a" "hello there!" "fdatasync"
pass "fdatasync: data and size survive"

# 3. an overwrite inside a large durable file: one saved page, not a copy
fs random "$M/big" 3000000
fs fsyncdir "$M"
sha=$(fs sha "$M/big")
fs pwrite "$M/big" 1500000 "XXXXXXXXXX"
fs fill "$M/big" B 70000
lossy_ctl m report
echo "$OUT" | grep -q "^file /big .*unsynced_bytes=$((4096 + 70000)) .*saved_pages=1 " \
  || fail "report for /big: $OUT"
echo "$OUT" | grep -q "^ok unsynced_bytes=$((4096 + 70000)) saved_bytes=4096 " || fail "report total: $OUT"
crash
[ "$(fs sha "$M/big")" = "$sha" ] || fail "big file not restored to its synced contents"
pass "report: unsynced bytes per file (one saved 4 KiB page for an overwrite, 70000 appended)"

# 4. truncation and fallocate of durable data undone; preallocation that
#    keeps the size (RocksDB's) holds no saved page
fs truncate "$M/big" 0
fs fallocate "$M/a" 0 1000000
size_is "$M/a" 1000000 "fallocate grew it"
crash
[ "$(fs sha "$M/big")" = "$sha" ] || fail "truncate not undone"
content_is "$M/a" "hello there!" "fallocate undone"
fs falloc "$M/big" keep 0 4000000
lossy_ctl m report
echo "$OUT" | grep -q "^ok unsynced_bytes=0 saved_bytes=0 " || fail "keep-size preallocation holds memory: $OUT"
fs falloc "$M/big" punch 100000 50000
[ "$(fs sha "$M/big")" != "$sha" ] || fail "the hole was not punched"
crash
[ "$(fs sha "$M/big")" = "$sha" ] || fail "a punched hole not undone"
pass "unsynced ftruncate, fallocate and punched hole undone; keep-size preallocation costs nothing"

# 5. renames: unsynced undone, synced kept (RocksDB's CURRENT pattern)
fs write "$M/CURRENT" v1 sync
fs fsyncdir "$M"
fs write "$M/CURRENT.tmp" v2 sync
fs rename "$M/CURRENT.tmp" "$M/CURRENT"
content_is "$M/CURRENT" v2 "before the crash"
crash
content_is "$M/CURRENT" v1 "an unsynced rename over it is undone"
absent "$M/CURRENT.tmp" "the temp file was never in a synced directory"
fs write "$M/CURRENT.tmp" v3 sync
fs rename "$M/CURRENT.tmp" "$M/CURRENT"
fs fsyncdir "$M"
crash
content_is "$M/CURRENT" v3 "a rename whose directory was fsynced survives"
absent "$M/CURRENT.tmp" "synced rename"
fs rename "$M/CURRENT" "$M/moved"
crash
content_is "$M/CURRENT" v3 "an unsynced rename away is undone"
absent "$M/moved" "unsynced rename away"
pass "unsynced rename undone, synced rename kept"

# 6. new files: fsynced but their directory never -> gone; directory synced but
#    the file never -> there, empty
fs write "$M/new" data sync
crash
absent "$M/new" "a new file, fsynced, in a directory never fsynced"
fs write "$M/new2" data
fs fsyncdir "$M"
crash
size_is "$M/new2" 0 "a new file whose directory was fsynced but not itself"
pass "new file without directory fsync vanishes; with it but without its own fsync it is empty"

# 7. unlinks and hard links
rm "$M/a"
crash
content_is "$M/a" "hello there!" "an unsynced unlink comes back"
fs link "$M/a" "$M/a2"
crash
absent "$M/a2" "an unsynced hard link"
rm "$M/a"
fs fsyncdir "$M"
crash
absent "$M/a" "a synced unlink"
pass "unsynced unlink and link undone, synced unlink kept"

# 8. directories: a new one goes with its contents unless its parent was
#    synced; an unsynced rmdir comes back
mkdir "$M/d"
fs write "$M/d/f" inside sync
fs fsyncdir "$M/d"
crash
absent "$M/d" "a new directory whose parent was never fsynced"
mkdir "$M/d"
fs fsyncdir "$M"
fs write "$M/d/f" inside sync
fs fsyncdir "$M/d"
crash
content_is "$M/d/f" inside "a directory and file both synced"
rm "$M/d/f"
rmdir "$M/d"
crash
content_is "$M/d/f" inside "an unsynced rmdir and unlink come back"
pass "new directory vanishes unless its parent was synced; unsynced rmdir undone"

# 9. torn tail: the last unsynced write survives in part, seeded
fs write "$M/wal" "" sync
fs fill "$M/wal" A 4096 sync
fs fsyncdir "$M"
some=0 cut=0
for seed in 1 2 3 4 5 6 7 8; do
  fs fill "$M/wal" B 10000
  lossy_ctl m crash-torn "$seed"
  kept=$("$PY" - "$M/wal" <<'EOF'
import sys
d = open(sys.argv[1], "rb").read()
assert 4096 <= len(d) <= 14096, len(d)
assert d[:4096] == b"A" * 4096
k = 4096
while k < len(d) and d[k:k + 1] == b"B":
    k += 1
# past the kept prefix: only garbage up to the end of the torn page
assert len(d) <= max(k, (k // 4096 + 1) * 4096), (k, len(d))
print(k - 4096)
EOF
  ) || fail "seed $seed: the torn file is not a prefix of the write plus one torn page: $OUT"
  echo "seed $seed: $kept of 10000 bytes kept, file $(stat -c %s "$M/wal") bytes"
  [ "$kept" -gt 0 ] && some=$((some + 1))
  [ "$kept" -lt 10000 ] && cut=$((cut + 1))
  fs truncate "$M/wal" 4096
  fs fsync "$M/wal"
done
[ $some -ge 2 ] && [ $cut -ge 2 ] || fail "crash-torn kept some of the write in $some of 8 seeds, cut it in $cut"
pass "crash-torn keeps a prefix of the last write (garbage only in its page): some kept in $some of 8, cut in $cut"

# 10. fail-fsync: the next N fsyncs fail with EIO and make nothing durable
lossy_ctl m fail-fsync 2
fs append "$M/CURRENT" "+lost"
fs fsync-eio "$M/CURRENT" || fail "first fsync did not fail with EIO"
fs fsync-eio "$M" || fail "second fsync (a directory's) did not fail with EIO"
crash
content_is "$M/CURRENT" v3 "data whose fsync failed is not durable"
fs append "$M/CURRENT" "+kept" sync
crash
content_is "$M/CURRENT" v3+kept "the third fsync works again"
pass "fail-fsync 2: two EIOs, nothing durable, then fsync works"

# 10b. fsync-delay: an fsync takes that long, and a crash during it loses
# what it was making durable (a disk's flush in progress)
lossy_ctl m fsync-delay 400000
t0=$(date +%s%N)
fs append "$M/CURRENT" "+slow" sync
t1=$(date +%s%N)
[ $(( (t1 - t0) / 1000000 )) -ge 400 ] || fail "an fsync under fsync-delay 400000 took $(( (t1 - t0) / 1000000 )) ms"
# wait_for TEXT: until CURRENT holds it (written; its fsync then under way)
wait_for() {
  local i
  for i in $(seq 200); do grep -q -- "$1" "$M/CURRENT" && return 0; sleep 0.05; done
  fail "the append of $1 did not happen"
}
fs append "$M/CURRENT" "+cut" sync 2>/dev/null &
syncer=$!
wait_for +cut
sleep 0.05
crash
wait "$syncer" && fail "an fsync a crash overtook succeeded"
content_is "$M/CURRENT" v3+kept+slow "a crash during a delayed fsync loses what it was syncing"
lossy_ctl m fsync-delay 0
pass "fsync-delay: fsyncs take 400 ms; a crash during one loses its data (EIO)"
# freeze: no fsync completes until the crash, which fails it
lossy_ctl m freeze
fs append "$M/CURRENT" "+frozen" sync 2>/dev/null &
syncer=$!
wait_for +frozen
sleep 0.3
kill -0 "$syncer" 2>/dev/null || fail "an fsync completed after freeze"
crash
wait "$syncer" && fail "an fsync under way at the crash succeeded"
content_is "$M/CURRENT" v3+kept+slow "an fsync frozen until the crash made nothing durable"
fs append "$M/CURRENT" "+after" sync
crash
content_is "$M/CURRENT" v3+kept+slow+after "fsyncs complete again after the crash"
pass "freeze: an fsync under way waits for the crash and fails; then fsyncs work"

# 11. the mount keeps working across crashes; an unknown command is refused
"$LOSSYFS" ctl "$WORK/.lossy/m.sock" bogus >/dev/null && fail "unknown command accepted"
for i in 1 2 3; do fs write "$M/after$i" "$i" sync; done
fs fsyncdir "$M"
crash
[ "$(cat "$M/after1" "$M/after2" "$M/after3")" = 123 ] || fail "files written after crashes lost"
ls -a "$M" | grep -q lossyfs && fail "the state directory is visible in the mount"
pass "the mount keeps working after crashes; state directory hidden"

echo "$PASSED passed, 0 failed"
