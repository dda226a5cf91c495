#!/usr/bin/env bash
# `ddkv completion bash`: source the script the binary prints, run its
# completion function on command lines as bash would hand them over, and check
# the candidates: commands, sub-commands, per-command flags, choice values,
# file names where a FILE is expected; and that every flag `ddkv CMD --help`
# shows is one the completion offers (the script cannot drift from the tables).
source "$(dirname "$0")/lib.sh"

"$DDKV" completion bash >"$WORK/ddkv.bash" || fail "ddkv completion bash exited $?"
# shellcheck disable=SC1091
source "$WORK/ddkv.bash"
complete -p ddkv | grep -q -- '-F _ddkv' || fail "the script does not register _ddkv for ddkv"
expect_exit 2 "$DDKV" completion zsh
pass "completion bash prints a script that registers _ddkv; other shells are refused"

# comp LINE: the candidates, sorted, one line, for the cursor at LINE's end.
comp() {
  COMP_LINE=$1
  COMP_POINT=${#1}
  read -ra COMP_WORDS <<<"$1"
  [[ $1 == *' ' ]] && COMP_WORDS+=('')
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _ddkv ddkv "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
  printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}
want() { # LINE EXPECTED
  local got
  got=$(comp "$1")
  [ "$got" = "$2" ] || fail "completing '$1': got '$got', want '$2'"
}
has() { # LINE WORD...: the candidates include every WORD
  local got w
  got=" $(comp "$1") "
  shift
  for w in "$@"; do [[ $got == *" $w "* ]] || fail "completing: '$w' not among '$got'"; done
}
hasnt() { # LINE WORD...
  local got w
  got=" $(comp "$1") "
  shift
  for w in "$@"; do [[ $got != *" $w "* ]] || fail "completing: '$w' should not be among '$got'"; done
}

# Commands: exactly those `ddkv --help` lists, plus nothing hidden.
cmds=$("$DDKV" --help | awk '/^Commands:/{on=1;next} /^$/{on=0} on{print $1}' | sort | tr '\n' ' ' | sed 's/ $//')
[ -n "$cmds" ] || fail "ddkv --help lists no commands"
want "ddkv " "$cmds"
hasnt "ddkv " __doc
want "ddkv le" "lease"
want "ddkv comp" "completion"
want "ddkv --endpoints 127.0.0.1:7001 wr" "write"
want "ddkv --endpoints=127.0.0.1:7001 -o json wat" "watch"
has "ddkv --" --endpoints --timeout-ms --version --help
pass "commands (as ddkv --help lists them) and the global flags before a command"

want "ddkv lease " "grant keepalive revoke"
want "ddkv members " "add remove transfer"
want "ddkv user " "add get grant list passwd remove revoke"
want "ddkv job s" "submit"
want "ddkv snapshot " "restore save"
want "ddkv auth " "disable enable status"
want "ddkv completion " "bash"
want "ddkv --timeout-ms 900 lease --every-ms 50 k" "keepalive"
pass "sub-commands, after global flags and flags with values"

has "ddkv write k v --" --ttl --lease --endpoints --tls-ca --help
hasnt "ddkv write k v --" --data-dir --consistency
has "ddkv serve --" --data-dir --cluster-token --config --max-conns-per-addr
hasnt "ddkv serve --" --endpoints
want "ddkv serve --conf" "--config"
want "ddkv serve --log-level " "debug error info warn"
want "ddkv serve --log-level=w" "warn"
want "ddkv serve --tls-client-cert r" "required"
want "ddkv read k --consistency " "causal linearizable stale"
want "ddkv list --consistency=s" "stale"
want "ddkv ping -o " "json text"
want "ddkv bench --workload m" "mixed"
want "ddkv role grant reader logs/ " "read readwrite"
pass "flags per command, and the choices of their values"

mkdir -p "$WORK/files/sub" && : >"$WORK/files/data1.csv" && : >"$WORK/files/data2.csv"
cd "$WORK/files" || fail "cd"
want "ddkv job submit da" "data1.csv data2.csv"
want "ddkv snapshot save d" "data1.csv data2.csv"
want "ddkv snapshot restore data1.csv --data-dir s" "sub"
want "ddkv serve --config d" "data1.csv data2.csv"
want "ddkv serve --data-dir " "sub"
want "ddkv write k --tls-ca=data2" "data2.csv"
want "ddkv job get " ""
want "ddkv write " ""
cd "$WORK" || fail "cd"
pass "file names where a FILE is expected, directories where a DIR is"

# Every flag each command's --help shows is offered after that command.
for c in $cmds; do
  flags=$("$DDKV" "$c" --help | grep -oE '^ +(-[a-z], )?--[a-z0-9-]+' | grep -oE -- '--[a-z0-9-]+$' | sort -u || true)
  [ -n "$flags" ] || [ "$c" = completion ] || fail "ddkv $c --help shows no flags"
  # shellcheck disable=SC2086
  [ -z "$flags" ] || has "ddkv $c x --" $flags
done
pass "every flag of every command's --help is completed"
echo "all $PASSED completion checks passed"
