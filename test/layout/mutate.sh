#!/usr/bin/env bash
# Does scripts/check-tiers.sh catch what it is for? Each case breaks one rule
# in a copy of src/ (the tree itself is never touched) and expects the check
# to fail naming it; the clean copy, and the cases just inside each bound,
# must pass. Run by ctest (layout.tiers_mutants); VERBOSE=1 prints every
# check's output.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
check=$root/scripts/check-tiers.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ddkv-tiers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failed=0

fresh() {
  rm -rf "$tmp/src" "$tmp/allow.txt"
  cp -r "$root/src" "$tmp/src"
  cp "$root/scripts/long-functions.txt" "$tmp/allow.txt"
}

# expect NAME pass|fail [PATTERN]: run the check on the copy as it is now.
expect() {
  local name=$1 want=$2 pattern=${3:-} out rc=0
  out=$(bash "$check" "$tmp/src" "$tmp/allow.txt" 2>&1) || rc=$?
  if [ -n "${VERBOSE:-}" ]; then
    printf '%s\n' "--- $name (exit $rc)" "$out"
  fi
  if [ "$want" = pass ] && [ "$rc" -eq 0 ]; then
    echo "ok    $name: passes"
  elif [ "$want" = fail ] && [ "$rc" -eq 1 ] && { [ -z "$pattern" ] || grep -qE "$pattern" <<<"$out"; }; then
    echo "ok    $name: fails: $(grep -E "${pattern:-.}" <<<"$out" | head -1)"
  else
    echo "FAIL  $name: wanted $want${pattern:+ matching /$pattern/}, got exit $rc:"
    printf '%s\n' "$out" | sed 's/^/      /'
    failed=1
  fi
}

# add_include FILE HEADER: FILE (under src/) includes HEADER after its first include.
add_include() {
  python3 - "$tmp/src/$1" "$2" <<'EOF'
import re, sys
path, header = sys.argv[1], sys.argv[2]
s = open(path).read()
m = re.search(r'^#include [<"].*$', s, re.M)
open(path, 'w').write(s[:m.end()] + '\n#include "%s"' % header + s[m.end():])
EOF
}

# a function of exactly N lines (its name's line to its closing brace)
function_of() {
  local name=$1 n=$2
  echo "int $name(int x);"
  echo "int $name(int x)"
  echo "{"
  for ((i = 0; i < n - 4; i++)); do echo "    x += $i;"; done
  echo "    return x;"
  echo "}"
}

fresh
expect "the clean tree" pass

# a. includes point down
fresh; add_include core/util/buf.c node/node.h
expect "core/util includes core/node" fail 'core/util/buf\.c:.*"node/node\.h".*a tier above'
fresh; add_include core/consensus/raft.c kv/store.h
expect "core/consensus includes core/kv" fail 'core/consensus/raft\.c:.*"kv/store\.h".*a tier above'
fresh; add_include core/kv/sm.c client/core.h
expect "core includes lib" fail 'core/kv/sm\.c:.*"client/core\.h".*a tier above'
fresh; add_include core/node/conn.c ddkv/ddkv.h
expect "core includes libddkv's public header" fail 'core/node/conn\.c:.*"ddkv/ddkv\.h".*a tier above'
fresh; add_include core/node/mod/jobs.c jobs/submit.h
expect "core includes apps" fail 'core/node/mod/jobs\.c:.*"jobs/submit\.h".*a tier above'
fresh; add_include lib/client/core.c hub/hub.h
expect "lib includes apps" fail 'lib/client/core\.c:.*"hub/hub\.h".*a tier above'
fresh; add_include apps/jobs/algo.c agent/agent.h
expect "apps/jobs includes apps/agent" fail 'apps/jobs/algo\.c:.*"agent/agent\.h".*a tier above'
fresh; add_include core/util/log.c ../../apps/hub/hub.h
expect "an include around the roots" fail 'core/util/log\.c:.*names no component'
fresh; add_include core/util/log.c hub.h
expect "another folder's header by its bare name" fail 'core/util/log\.c:.*bare name'
fresh; mkdir -p "$tmp/src/core/misc"; echo 'int misc;' >"$tmp/src/core/misc/misc.c"
expect "a folder in no tier" fail 'core/misc/misc\.c: in no tier'
fresh; add_include apps/cli/main.c util/buf.h; add_include apps/hub/hub.c kv/store.h
expect "apps include core (down)" pass

# b. files of at most 2,000 lines
fresh; for ((i = 0; i < 2001; i++)); do echo "/* line $i */"; done >"$tmp/src/core/util/long.c"
expect "a 2,001-line file" fail 'core/util/long\.c: 2001 lines'
fresh; for ((i = 0; i < 2000; i++)); do echo "/* line $i */"; done >"$tmp/src/core/util/long.c"
expect "a 2,000-line file" pass

# c. functions of at most 150 lines
fresh; function_of long_one 151 >>"$tmp/src/core/util/buf.c"
expect "a 151-line function" fail 'core/util/buf\.c:[0-9]+: long_one is 151 lines'
fresh; function_of long_one 150 >>"$tmp/src/core/util/buf.c"
expect "a 150-line function" pass
fresh; function_of long_one 151 >>"$tmp/src/core/util/buf.c"
echo "core/util/buf.c:long_one a test of the allowlist" >>"$tmp/allow.txt"
expect "a 151-line function allowlisted with a reason" pass
fresh; function_of long_one 151 >>"$tmp/src/core/util/buf.c"
echo "core/util/buf.c:long_one" >>"$tmp/allow.txt"
expect "a 151-line function allowlisted without a reason" fail 'want PATH:FUNCTION and the reason'
fresh; echo "core/util/buf.c:buf_free no longer long" >>"$tmp/allow.txt"
expect "an allowlist line for a short function" fail 'buf_free is not over 150 lines'

# d. one file per name
fresh; echo 'int x;' >"$tmp/src/apps/cli/store.c"
expect "two files named store.c" fail 'store\.c: 2 files of that name'

# e. a part's private state stays in it
fresh; add_include core/node/mod/kv.c node/conn_int.h
expect "a module includes the connection server's private header" fail 'core/node/mod/kv\.c:.*conn_int\.h, private to'
fresh; printf 'struct replica {\n    int x;\n};\n' >>"$tmp/src/core/node/node_int.h"
expect "struct replica defined outside replica.c" fail 'core/node/node_int\.h:[0-9]+: defines struct replica'
fresh; add_include core/node/addrtab.c node/conn_int.h
expect "a part's own file includes its private header" pass

# f. no include cycles
fresh; add_include core/node/replica.h node/node_int.h
expect "replica.h includes node_int.h (which includes it)" fail 'include each other: .*replica\.h -> core/node/node_int\.h'

exit $failed
