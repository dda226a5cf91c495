#!/usr/bin/env bash
# Each mutation breaks one promise of the simulated disk (src/core/kv/store_mem.c);
# the store contract and memdisk suites must catch every one. Not part of the
# test command (it builds once per mutation, ~20 s each):
#
#   test/store/mutate.sh            # all mutations; exit 1 if any survives
#
# Works in a scratch copy of the tree; the tree itself is never touched.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
scratch=$(mktemp -d /tmp/ddkv-store-mutate.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
tar -C "$ROOT" --exclude='./build*' --exclude=./var --exclude=node_modules --exclude=./.git -cf - . | tar -C "$scratch" -xf -
orig="$scratch/store_mem.c.orig"
cp "$scratch/src/core/kv/store_mem.c" "$orig"
cmake -S "$scratch" -B "$scratch/build" -DCMAKE_BUILD_TYPE=Release >/dev/null

# name | python expression applied to the source text s
mutations=(
  "sync does not make writes durable|s.replace('        ops_apply(d->durable, r->ops, r->n, false);\n    disk_drop_pending(d);\n}', '    disk_drop_pending(d);\n}', 1)"
  "a power cut keeps every unsynced write|s.replace('r && i < keep;', 'r;', 1)"
  "a batch read through ignores its deletes|s.replace('            if (o->kind == OP_DEL)\n                return ERR_NOT_FOUND;\n', '', 1)"
  "an iterator sees later writes (no copy on write)|s.replace('__ATOMIC_ACQUIRE) > 1) {', '__ATOMIC_ACQUIRE) > 1000000) {', 1)"
  "the upper bound is inclusive|s.replace('it->upper, it->upper_n) < 0;', 'it->upper, it->upper_n) <= 0;', 1)"
  "a failed sync loses nothing even when told to|s.replace('        if (d->fail_lose)\n            disk_drop_pending(d);\n', '', 1)"
  "a full disk still applies writes|s.replace('    else if (d->full)\n        rc = errf(eb, ERR_NOSPACE', '    else if (0)\n        rc = errf(eb, ERR_NOSPACE', 1)"
  "bit rot goes unnoticed on read|s.replace('    if (disk_rotten(s->d, b)) {', '    if (0) {', 1)"
  "a torn middle record is taken as a torn tail|s.replace('        d->torn_middle = true;', '        d->torn_middle = false;', 1)"
  "a wipe leaves the keys|s.replace('    case OP_WIPE: map_wipe(m); break;', '    case OP_WIPE: (void)map_wipe; break;', 1)"
)
survived=0
for m in "${mutations[@]}"; do
    name=${m%%|*} expr=${m#*|}
    python3 - "$orig" "$scratch/src/core/kv/store_mem.c" "$expr" <<'EOF'
import sys
s = open(sys.argv[1]).read()
t = eval(sys.argv[3])
if t == s:
    sys.exit("mutation did not apply: " + sys.argv[3])
open(sys.argv[2], "w").write(t)
EOF
    cmake --build "$scratch/build" --target kv_store_contract_mem kv_memdisk -j2 >/dev/null
    failed=""
    for t in kv_store_contract_mem kv_memdisk; do
        if ! "$scratch/build/test/$t" --jobs 1 >"$scratch/out" 2>&1; then
            failed+="$t($(grep -m1 -o 'Test(.*\|\[----\] [^:]*:[0-9]*: [^\n]*' "$scratch/out" | head -1 | sed 's|.*test\/store\/||' | cut -c1-60)) "
        fi
    done
    if [[ -n $failed ]]; then
        echo "caught: $name -- $failed"
    else
        echo "SURVIVED: $name"
        survived=$((survived + 1))
    fi
done
cp "$orig" "$scratch/src/core/kv/store_mem.c"
((survived == 0)) || { echo "$survived mutation(s) survived"; exit 1; }
echo "all ${#mutations[@]} mutations caught"
