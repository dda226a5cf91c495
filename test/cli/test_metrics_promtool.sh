#!/usr/bin/env bash
# Every member's /metrics in a 3-node cluster (the leader's has the per-member
# series, followers' the peer ones) passes `promtool check metrics` and the
# naming rules promtool leaves to us: counters (and only counters) end in
# _total, times are _seconds and sizes _bytes (no _ms, _kb, _mb), each family
# has one HELP and one TYPE before its samples and none repeats. Then broken
# copies of a scrape prove each check bites.
source "$(dirname "$0")/lib.sh"
command -v promtool >/dev/null || { echo "SKIP: promtool (Debian package prometheus) needed"; exit 77; }

# check FILE: promtool's lint, then ours; prints the problems, fails if any.
check() {
  local out rc=0
  out=$(promtool check metrics <"$1" 2>&1) || rc=$?
  [ $rc -eq 0 ] && [ -z "$out" ] || { echo "promtool: $out"; return 1; }
  python3 - "$1" <<'PY'
import re, sys
seen_help, seen_type, types, bad = set(), set(), {}, []
for ln in open(sys.argv[1]).read().splitlines():
    m = re.match(r'^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$', ln)
    if m:
        kind, name, rest = m.groups()
        seen = seen_help if kind == "HELP" else seen_type
        if name in seen:
            bad.append(f"{kind} of {name} repeated")
        seen.add(name)
        if kind == "TYPE":
            types[name] = rest
            if (rest == "counter") != name.endswith("_total"):
                bad.append(f"{name}: a {rest} " + ("must end in _total" if rest == "counter" else "must not end in _total"))
            if re.search(r'_(ms|us|ns|milliseconds|microseconds|kb|mb|gb|kbytes|mbytes|secs?)(_total)?$', name):
                bad.append(f"{name}: not in base units (_seconds, _bytes)")
        continue
    if not ln or ln.startswith("#"):
        continue
    name = re.match(r'^[a-zA-Z_:][a-zA-Z0-9_:]*', ln).group(0)
    fam = re.sub(r'_(bucket|sum|count)$', '', name) if name not in types else name
    if fam not in types or fam not in seen_help:
        bad.append(f"sample {name} without HELP and TYPE before it")
if bad:
    print("\n".join(bad))
    sys.exit(1)
PY
}

start_cluster 3
"$DDKV" --endpoints "$EP" write k1 v1 >/dev/null
"$DDKV" --endpoints "$EP" read k1 >/dev/null
"$DDKV" --endpoints "$EP" list >/dev/null
"$DDKV" --endpoints "$EP" delete k1 >/dev/null

leader=
for n in n1 n2 n3; do
  curl -sf "http://$(member_http $n)/metrics" >"$WORK/$n.prom" || fail "no /metrics from $n"
  grep -q '^ddkv_raft_is_leader 1$' "$WORK/$n.prom" && leader=$n
done
[ -n "$leader" ] || fail "no member says it leads"
grep -q '^ddkv_member_lag_seconds{member=' "$WORK/$leader.prom" || fail "the leader has no per-member series"

for n in n1 n2 n3; do
  problems=$(check "$WORK/$n.prom") || fail "$n's /metrics: $problems"
done
pass "every member's /metrics passes promtool check metrics and the naming rules"

# The checks catch what they are for (a check that cannot fail proves nothing).
for broken in 's/^ddkv_writes_total/ddkv_writes/; s/ ddkv_writes_total / ddkv_writes /' \
              's/ddkv_lag_seconds/ddkv_lag_ms/g' \
              's/ddkv_connections gauge/ddkv_connections_total gauge/; s/^ddkv_connections /ddkv_connections_total /; s/HELP ddkv_connections /HELP ddkv_connections_total /' \
              '0,/^# HELP ddkv_reads_total/{/^# HELP ddkv_reads_total/p}'; do
  sed "$broken" "$WORK/$leader.prom" >"$WORK/broken.prom"
  cmp -s "$WORK/broken.prom" "$WORK/$leader.prom" && fail "the breakage '$broken' changed nothing"
  check "$WORK/broken.prom" >/dev/null && fail "a /metrics broken by '$broken' passes the checks"
done
pass "the checks refuse a counter without _total, milliseconds, a _total gauge, a repeated HELP"

echo "all $PASSED metrics checks passed"
