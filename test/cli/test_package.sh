#!/usr/bin/env bash
# scripts/package.sh and the .deb it builds from the release build (build/,
# which the test command builds first; only brought up to date here): lintian
# has no error or warning (and does flag a package broken on purpose); the
# control data (version, Depends covering every library the binary links,
# conffiles); the files, their modes and a stripped binary; the unit passes
# `systemd-analyze verify` and keeps its hardening; the man pages render
# without warnings; and the unpacked binary prints its version, serves a
# one-node cluster on 127.0.0.1 from the packaged config, and writes and reads.
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
for t in dpkg-deb dpkg-shlibdeps lintian; do
  command -v $t >/dev/null || { echo "SKIP: $t needed (scripts/deps.sh)"; exit 77; }
done

deb=$("$ROOT/scripts/package.sh") || fail "scripts/package.sh failed"
deb=$ROOT/$deb
version=$(sed -n 's/^project(ddkv VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
[ -n "$version" ] || fail "no project version in CMakeLists.txt"
[ "$deb" = "$ROOT/build/ddkv_${version}_amd64.deb" ] || fail "package.sh built $deb, want build/ddkv_${version}_amd64.deb"
[ -s "$deb" ] || fail "$deb is empty"
pass "package.sh builds build/ddkv_${version}_amd64.deb"

# lintian: nothing at error or warning level.
lint=$(lintian "$deb" 2>&1 | grep -E "^[A-Z]: " || true)
grep -E '^[EW]: ' <<<"$lint" && fail "lintian: $lint"
pass "lintian reports no error and no warning${lint:+ (${lint//$'\n'/; })}"

# Control data.
x=$WORK/x
dpkg-deb -x "$deb" "$x"
dpkg-deb -e "$deb" "$WORK/ctl"
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = ddkv ] && [ "$(field Version)" = "$version" ] && [ "$(field Architecture)" = amd64 ] \
  || fail "control: $(field Package) $(field Version) $(field Architecture)"
[ "$(cat "$WORK/ctl/conffiles")" = /etc/ddkv/ddkv.conf ] || fail "conffiles: $(cat "$WORK/ctl/conffiles")"
deps=$(field Depends)
[[ ", $deps," == *", adduser,"* ]] || fail "Depends lacks adduser (postinst runs it): $deps"
# Every shared library the binary links is provided by a package in Depends.
for so in $(readelf -d "$x/usr/bin/ddkv" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
  path=$(ldconfig -p | awk -v s="$so" '$1 == s && /x86-64/ && !n++ {print $NF}')
  [ -n "$path" ] || fail "$so not found by ldconfig"
  pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | awk -F: 'NR == 1 {print $1}' || true)
  [ -n "$pkg" ] || pkg=$(dpkg -S "$path" | awk -F: 'NR == 1 {print $1}')
  [[ ", $deps" == *", $pkg "* || ", $deps," == *", $pkg,"* ]] || fail "$so (package $pkg) missing from Depends: $deps"
done
(cd "$x" && md5sum --quiet -c "$WORK/ctl/md5sums") || fail "md5sums do not match the files"
pass "control: version, conffiles, Depends covering every NEEDED library, md5sums"

# Files and modes.
for f in usr/bin/ddkv lib/systemd/system/ddkv.service etc/ddkv/ddkv.conf usr/share/man/man1/ddkv.1.gz \
         usr/share/man/man5/ddkv.conf.5.gz usr/share/bash-completion/completions/ddkv \
         usr/share/doc/ddkv/copyright usr/share/doc/ddkv/changelog.gz usr/share/ddkv/web/index.html; do
  [ -s "$x/$f" ] || fail "the package lacks /$f"
done
[ "$(stat -c %a "$x/usr/bin/ddkv")" = 755 ] || fail "/usr/bin/ddkv mode $(stat -c %a "$x/usr/bin/ddkv")"
[ "$(dpkg-deb -c "$deb" | awk '$2 != "root/root"' | wc -l)" = 0 ] || fail "files not owned by root"
readelf -S "$x/usr/bin/ddkv" | grep -q '\.symtab' && fail "/usr/bin/ddkv is not stripped"
gzip -t "$x/usr/share/man/man1/ddkv.1.gz" "$x/usr/share/doc/ddkv/changelog.gz" || fail "bad gzip"
zcat "$x/usr/share/doc/ddkv/changelog.gz" | head -1 | grep -q "^ddkv ($version) " || fail "changelog does not open with ddkv ($version)"
for page in man1/ddkv.1.gz man5/ddkv.conf.5.gz; do
  warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$x/usr/share/man/$page" 2>&1 >/dev/null)
  [ -z "$warn" ] || fail "man --warnings on $page: $warn"
done
bash -c "source '$x/usr/share/bash-completion/completions/ddkv' && complete -p ddkv" | grep -q _ddkv \
  || fail "the packaged completion does not register"
pass "files: binary (0755, stripped), unit, conffile, man pages, completion, copyright, changelog"

# The unit: systemd's own check (ExecStart pointed at the unpacked binary) and its promises.
unit=$x/lib/systemd/system/ddkv.service
grep -qx 'ExecStart=/usr/bin/ddkv serve --config /etc/ddkv/ddkv.conf --data-dir /var/lib/ddkv' "$unit" || fail "ExecStart"
for kv in User=ddkv StateDirectory=ddkv RestartPreventExitStatus=4 NoNewPrivileges=yes ProtectSystem=strict \
          ProtectHome=yes PrivateTmp=yes PrivateDevices=yes 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX'; do
  grep -qx "$kv" "$unit" || fail "the unit lacks $kv"
done
if command -v systemd-analyze >/dev/null; then
  sed "s|^ExecStart=/usr/bin/ddkv|ExecStart=$x/usr/bin/ddkv|" "$unit" >"$WORK/ddkv.service"
  out=$(systemd-analyze verify --man=no --recursive-errors=no "$WORK/ddkv.service" 2>&1) \
    || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify: $out"
  sed 's/^NoNewPrivileges=/NoNewPrivilege=/' "$WORK/ddkv.service" >"$WORK/bad.service"
  systemd-analyze verify --man=no --recursive-errors=no "$WORK/bad.service" >/dev/null 2>&1 \
    && fail "systemd-analyze verify accepts a misspelt key: the check proves nothing"
  pass "the unit passes systemd-analyze verify (and a misspelt copy does not)"
else
  echo "note: no systemd-analyze; unit not verified"
fi

# The unpacked binary: version, and a one-node cluster from the packaged config.
rev=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
got=$("$x/usr/bin/ddkv" --version)
[[ $got =~ ^ddkv\ $version\ \(git\ $rev(-dirty)?\)$ ]] || fail "--version: '$got', want 'ddkv $version (git $rev)'"
DDKV=$x/usr/bin/ddkv
NONAME=1 start_node pkg "$WORK/data" --config "$x/etc/ddkv/ddkv.conf" --http-addr 127.0.0.1:0
# shellcheck disable=SC2154 # set by start_node
ep=127.0.0.1:$PORT_pkg
expect_exit 0 "$DDKV" write pkgkey "from the package" --endpoints "$ep"
expect_exit 0 "$DDKV" read pkgkey --endpoints "$ep"
[ "$OUT" = "from the package" ] || fail "read back '$OUT'"
s=$(curl -sf "http://127.0.0.1:$(http_port pkg)/status") || fail "no /status"
python3 -c 'import json,sys; s=json.loads(sys.argv[1]); v=sys.argv[2].split(" ")
assert s["name"] == "n1" and s["version"] == v[1] and s["git_rev"] + ")" == v[3] and s["role"] == "leader", (s, v)' \
  "$s" "$got" || fail "status does not show the packaged config's name, the version and git_rev: $s"
pass "the packaged binary: '$got'; serves from the packaged config; write, read, status"

# lintian bites: the same package without its copyright file is an error.
rm -rf "$WORK/broken" && dpkg-deb -R "$deb" "$WORK/broken"
rm "$WORK/broken/usr/share/doc/ddkv/copyright"
sed -i '/usr\/share\/doc\/ddkv\/copyright/d' "$WORK/broken/DEBIAN/md5sums"
dpkg-deb --root-owner-group --build "$WORK/broken" "$WORK/broken.deb" >/dev/null
lint=$(lintian "$WORK/broken.deb" 2>/dev/null || true)
grep -q '^E: ddkv: no-copyright-file' <<<"$lint" \
  || fail "lintian does not flag a package without copyright: the lintian check proves nothing"
pass "lintian flags a broken copy (no copyright file) as an error"
echo "all $PASSED package checks passed"
