#!/usr/bin/env bash
# The man pages ddkv(1) and ddkv.conf(5) as scripts/man.sh builds them: groff
# and man find nothing to warn about, ddkv(1) has every command `ddkv --help`
# lists and every flag each command's --help shows, the global flags, the exit
# codes and the DDKV_ variables; ddkv.conf(5) has every key the config file
# takes (serve's flags with a value, but --config) and no other.
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
command -v groff >/dev/null && command -v man >/dev/null || { echo "SKIP: groff and man-db needed"; exit 77; }

"$ROOT/scripts/man.sh" "$DDKV" "$WORK/man" || fail "scripts/man.sh failed"
for page in ddkv.1 ddkv.conf.5; do
  [ -s "$WORK/man/$page" ] || fail "$page not built"
  warn=$(groff -ww -man -Tutf8 -z "$WORK/man/$page" 2>&1) || fail "groff failed on $page: $warn"
  [ -z "$warn" ] || fail "groff -ww warns on $page: $warn"
  warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$WORK/man/$page" 2>&1 >"$WORK/$page.txt") \
    || fail "man -l failed on $page: $warn"
  [ -z "$warn" ] || fail "man --warnings on $page: $warn"
  grep -q '@[A-Z]*@' "$WORK/man/$page" && fail "$page keeps a template placeholder"
done
pass "groff -ww and man --warnings are silent on both pages"

# The rendered text, hyphenation undone, one blank-separated word stream.
text() { sed -e ':a' -e '/‐$/{N;s/‐\n *//;ba' -e '}' "$WORK/$1.txt" | tr -s ' \n' '  '; }
t1=" $(text ddkv.1) "
t5=" $(text ddkv.conf.5) "
cmds=$("$DDKV" --help | awk '/^Commands:/{on=1;next} /^$/{on=0} on{print $1}')
[ -n "$cmds" ] || fail "ddkv --help lists no commands"
for c in $cmds; do
  grep -qx "\.SS $c" "$WORK/man/ddkv.1" || fail "ddkv(1) has no section for the command $c"
  # The flags between this command's section heading and the next.
  sect=$(awk -v c="$c" '/^\.SS /{on = ($2 == c)} on' "$WORK/man/ddkv.1")
  for f in $("$DDKV" "$c" --help | awk '/^Options:/{on=1;next} /^$/{on=0} on' \
             | grep -oE '^ +(-[a-z], )?--[a-z0-9-]+' | grep -oE -- '--[a-z0-9-]+$' || true); do
    grep -qF -- "\\fB${f//-/\\-}\\fR" <<<"$sect" || fail "ddkv(1): $c's flag $f is missing"
  done
done
pass "ddkv(1): every command and each one's flags"

for f in $("$DDKV" --help | awk '/^Global options/{on=1;next} /^$/{on=0} on' | grep -oE -- '--[a-z0-9-]+' | sort -u); do
  [[ $t1 == *" $f "* ]] || fail "ddkv(1): the global flag $f is missing"
done
for w in "EXIT STATUS" "ENVIRONMENT" "FILES" "EXAMPLES" "DDKV_ENDPOINTS" "DDKV_PASSWORD" "/etc/ddkv/ddkv.conf" \
         "ddkv --version" "ddkv completion bash"; do
  [[ $t1 == *" $w "* || $t1 == *" $w"[.,:\;]* ]] || fail "ddkv(1) lacks '$w'"
done
exits=$(sed -n '/^\.SH EXIT STATUS/,/^\.SH /p' "$WORK/man/ddkv.1")
for code in 0 1 2 3 4; do
  grep -qx "\.B $code" <<<"$exits" || fail "ddkv(1): exit status $code undocumented"
done
pass "ddkv(1): global flags, exit codes, environment, files, examples"

# Config keys: serve's flags that take a value, but --config itself.
keys=$("$DDKV" serve --help | grep -oE '^ +--[a-z0-9-]+ [^ ]' | grep -oE -- '--[a-z0-9-]+' | sed 's/^--//' \
       | grep -vx config | sort)
[ -n "$keys" ] || fail "ddkv serve --help shows no flags"
got=$(grep -oE '^\\fB[a-z0-9\\-]+\\fR = ' "$WORK/man/ddkv.conf.5" | sed -e 's/^\\fB//' -e 's/\\fR = $//' \
      -e 's/\\-/-/g' | sort)
[ "$got" = "$keys" ] || fail "ddkv.conf(5) keys differ from serve's flags: $(diff <(echo "$keys") <(echo "$got") | tr '\n' ' ')"
[[ $t5 == *" KEYS "* && $t5 == *" EXAMPLE "* ]] || fail "ddkv.conf(5) lacks its KEYS or EXAMPLE section"
# The example in the page is a file the node accepts.
sed -n '/^\.SH EXAMPLE/,/^\.SH/p' "$WORK/man/ddkv.conf.5" | sed -n '/^\.nf/,/^\.fi/p' | sed '1d;$d' \
  | sed 's/\\-/-/g' >"$WORK/example.conf"
grep -q '^data-dir = ' "$WORK/example.conf" || fail "the example config is empty"
sed -i "s|^data-dir = .*|data-dir = $WORK/exdata|; s|^\(.*-addr\) = .*|\1 = 127.0.0.1:0|; /^cluster = /d" "$WORK/example.conf"
expect_exit 2 "$DDKV" serve --config "$WORK/example.conf" --max-frame-bytes 0
[[ $ERR == *"max-frame-bytes"* ]] || fail "the example config was refused for another reason: $ERR"
pass "ddkv.conf(5): exactly serve's keys; its example parses"
echo "all $PASSED man page checks passed"
