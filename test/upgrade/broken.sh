#!/usr/bin/env bash
# Can the rolling-upgrade test fail? Runs test_rolling.sh three times against
# upgrades that go wrong, each of which it must fail, with the reason named:
#   kill   members replaced with SIGKILL mid-load and a 150 ms client timeout:
#          writes end in doubt or fail ("writes failed during the upgrade");
#   exit1  a "new build" that exits 1 at start ("exited at start");
#   wipe   a "new build" that loses its data dir on start (the real binary,
#          run after rm -rf of --data-dir): acknowledged writes are lost or
#          writes stall while members rebuild, which the history check, the
#          acknowledged keys check or the pause bound reports.
# Uses the build in build-asan/ (or DDKV_BIN's) and the old release cached by
# a previous run of test_rolling.sh (built here otherwise). Exit 0 when every
# case failed as expected.
#
#   test/upgrade/broken.sh [kill] [exit1] [wipe]     (default: all three)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DDKV_BIN=${DDKV_BIN:-$ROOT/build-asan/ddkv}
BUILD=$(cd "$(dirname "$DDKV_BIN")" && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export UPGRADE_LOAD_BIN=${UPGRADE_LOAD_BIN:-$BUILD/test/ddkv-upgrade-load}
export FAULTS_BIN=${FAULTS_BIN:-$BUILD/test/ddkv-faults}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ddkv-upgrade-broken.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The old release, built once (a passing or failing run of the test builds it).
sha=$(grep -Ev '^[[:space:]]*(#|$)' RELEASES | tail -1 | awk '{print $2}')
old=$BUILD/upgrade-cache/$sha/ddkv
if [ ! -x "$old" ]; then
  echo "== building the old release first (one run of test_rolling.sh)"
  DDKV_BIN=$DDKV_BIN bash test/upgrade/test_rolling.sh >"$tmp/first.log" 2>&1 ||
    { tail -20 "$tmp/first.log"; echo "broken.sh: the test fails on the good build: fix that first" >&2; exit 1; }
fi
export UPGRADE_OLD_BIN=$old

mkdir -p "$tmp/exit1" "$tmp/wipe"
printf '#!/bin/sh\necho "a broken build: refusing to start" >&2\nexit 1\n' >"$tmp/exit1/ddkv"
cat >"$tmp/wipe/ddkv" <<EOF
#!/usr/bin/env bash
# a "new build" that loses its data dir when it starts serving
if [ "\${1:-}" = serve ]; then
  args=("\$@")
  for ((i = 0; i < \${#args[@]} - 1; i++)); do
    [ "\${args[i]}" = --data-dir ] && rm -rf "\${args[i + 1]}"
  done
fi
exec "$DDKV_BIN" "\$@"
EOF
chmod +x "$tmp/exit1/ddkv" "$tmp/wipe/ddkv"

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(kill exit1 wipe)
bad=0
for c in "${cases[@]}"; do
  case $c in
    kill) env=(DDKV_BIN="$DDKV_BIN" UPGRADE_KILL=1 UPGRADE_TIMEOUT_MS=150) want="writes failed during the upgrade|reads failed" ;;
    exit1) env=(DDKV_BIN="$tmp/exit1/ddkv") want="exited at start" ;;
    wipe) env=(DDKV_BIN="$tmp/wipe/ddkv") want="NOT LINEARIZABLE|unique keys missing|data differ|not healthy|writes paused" ;;
    *) echo "broken.sh: no case '$c' (kill, exit1, wipe)" >&2; exit 2 ;;
  esac
  t0=$(date +%s)
  if env "${env[@]}" bash test/upgrade/test_rolling.sh >"$tmp/$c.log" 2>&1; then
    echo "NOT CAUGHT: $c: the test passed ($(grep '^figures' "$tmp/$c.log"))"
    bad=1
  elif line=$(grep -E "^FAIL: .*($want)" "$tmp/$c.log" | head -1); then
    echo "caught: $c in $(($(date +%s) - t0)) s: ${line:0:400}"
  else
    echo "NOT CAUGHT: $c: the test failed for another reason: $(grep -m1 '^FAIL' "$tmp/$c.log" || tail -3 "$tmp/$c.log")"
    bad=1
  fi
done
exit $bad
