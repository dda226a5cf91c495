#!/usr/bin/env bash
# Issue 18: two members that name each other as leader (a confused or hostile
# pair) must not spin a client. libddkv waited a backoff after 3 redirects in
# a row; `ddkv bench` had its own copy of the rules and followed every
# NOT_LEADER at once, reconnecting as fast as the loop allowed, and counted
# the write as of unknown outcome at its deadline although NOT_LEADER means it
# was never proposed. Now the bench runs libddkv's client core: a bounded
# number of redirects in --timeout-ms, the write counted as an error, not an
# unknown outcome, and the run ends within its timeout.
source "$(dirname "$0")/../cli/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

python3 "$HERE/clientcore_fake_pair.py" "$WORK/ports" "$WORK/count" 15 &  # exits by itself after 15 s
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/ports" ] && break; sleep 0.1; done
read -r PA PB <"$WORK/ports" || fail "the fake members did not start"

t0=$(date +%s%N)
set +e
timeout 20 "$DDKV" bench --endpoints "127.0.0.1:$PA,127.0.0.1:$PB" --timeout-ms 1500 --workload write \
  --clients 1 --duration-s 0.3 --warmup-s 0 -o json >"$WORK/bench.json" 2>"$WORK/bench.err"
rc=$?
set -e
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" -ne 124 ] || fail "the bench did not end within 20 s"
[ "$rc" -ne 0 ] || fail "the bench claims success against members that never accept a write"
redirects=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["redirects"])' "$WORK/bench.json")
unknown=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["unknown"])' "$WORK/bench.json")
answers=$(cat "$WORK/count" 2>/dev/null || echo 0)
echo "bench: exit $rc after $ms ms, redirects $redirects, NOT_LEADER answers $answers, unknown $unknown"
[ "$redirects" -le 40 ] || fail "the bench followed $redirects redirects in 1.5 s (want <= 40: backoff after 3)"
[ "$answers" -le 60 ] || fail "the fake pair answered $answers NOT_LEADERs (want <= 60)"
[ "$unknown" -eq 0 ] || fail "a write refused with NOT_LEADER counted as of unknown outcome ($unknown)"
[ "$ms" -le 8000 ] || fail "the bench took $ms ms (timeout 1.5 s)"
pass "redirect loop bounded: $redirects redirects, $answers NOT_LEADER answers in $ms ms, unknown outcomes 0"
