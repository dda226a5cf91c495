#!/usr/bin/env bash
# Builds etcd's own load tool (go.etcd.io/etcd/tools/benchmark, v3.4) from
# Debian's packages only, for comparing ddkv with etcd on the same machine.
# Prints the path of the binary on stdout; everything else goes to stderr.
# Idempotent: installs nothing and builds nothing when both are already there.
#
#   tool=$(bench/etcd-benchmark.sh)
#   "$tool" --endpoints 127.0.0.1:2379 put --total 10000 --key-size 16 --val-size 256
#
# Where the pieces come from (nothing is fetched outside apt, no etcd code
# lands in the repo):
#   - the etcd libraries the tool imports (clientv3, pkg/report, ...) and all
#     their third-party imports (cobra, pb.v1, x/time/rate, grpc, zap, ...):
#     golang-etcd-server-dev and its dependencies, in /usr/share/gocode/src;
#   - tools/benchmark itself, which that package leaves out (debian/rules sets
#     DH_GOLANG_EXCLUDES := tools): the orig tarball of Debian's etcd source
#     package of the same version, via `apt-get source` with a private
#     deb-src list under build/ (the system's apt configuration is untouched);
#   - go 1.19 (golang-go), building in GOPATH mode with GOPROXY=off.
# Also installs etcd-server and etcd-client (etcd, etcdctl), which the
# comparison runs against.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=build/etcd-benchmark
BIN=$OUT/benchmark
PKGS=(golang-go golang-etcd-server-dev etcd-server etcd-client)

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  echo "etcd-benchmark: installing ${missing[*]}" >&2
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { echo "etcd-benchmark: apt-get install failed for: ${missing[*]}" >&2; exit 1; }
fi

# The tool must match the installed library; rebuild when that changes.
src_pkg=$(dpkg-query -W -f='${source:Package}' golang-etcd-server-dev)
src_ver=$(dpkg-query -W -f='${source:Version}' golang-etcd-server-dev)
stamp="$src_pkg $src_ver $(go version)"
if [ -x "$BIN" ] && [ "$(cat "$OUT/STAMP" 2>/dev/null)" = "$stamp" ]; then
  echo "$PWD/$BIN"
  exit 0
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# 1. Debian's source package, through a private deb-src list built from the
#    Debian archive the system already uses for this release.
# shellcheck source=/dev/null
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
# shellcheck disable=SC2016  # apt's own $(FIELD) placeholders
repo=$(apt-get indextargets --format '$(ORIGIN) $(CODENAME) $(IDENTIFIER) $(REPO_URI)' 2>/dev/null \
  | awk -v c="$codename" '$1 == "Debian" && $2 == c && $3 == "Packages" { print $4; exit }')
[ -n "$repo" ] || { echo "etcd-benchmark: no Debian $codename archive in apt's sources" >&2; exit 1; }
apt_dir=$OUT/apt
rm -rf "$apt_dir"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/parts"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb-src [signed-by=$keyring] $repo $codename main" >"$apt_dir/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/parts"
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
src_dir=$OUT/src
rm -rf "$src_dir"
mkdir -p "$src_dir"
echo "etcd-benchmark: fetching Debian source package $src_pkg $src_ver" >&2
{ apt-get "${apt_opts[@]}" update -qq \
    && (cd "$src_dir" && apt-get "${apt_opts[@]}" source --download-only -qq "$src_pkg=$src_ver"); } \
  >"$OUT/apt.log" 2>&1 \
  || { echo "etcd-benchmark: apt-get source $src_pkg=$src_ver failed, see $OUT/apt.log" >&2; exit 1; }
origs=("$src_dir/${src_pkg}"_*.orig.tar.*)
orig=${origs[0]}
[ -f "$orig" ] || { echo "etcd-benchmark: no orig tarball in $src_dir" >&2; exit 1; }

# 2. Only tools/benchmark goes into a private GOPATH; every import resolves to
#    Debian's /usr/share/gocode/src. No source is changed.
gopath=$OUT/gopath
rm -rf "$gopath"
mkdir -p "$gopath/src/go.etcd.io/etcd"
tar -xf "$orig" -C "$gopath/src/go.etcd.io/etcd" --strip-components=1 --wildcards '*/tools/benchmark'
[ -f "$gopath/src/go.etcd.io/etcd/tools/benchmark/main.go" ] \
  || { echo "etcd-benchmark: tools/benchmark not in $orig" >&2; exit 1; }

echo "etcd-benchmark: building (go $(go env GOVERSION), GOPATH mode, offline)" >&2
(cd "$gopath/src/go.etcd.io/etcd/tools/benchmark" \
  && env GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOPROXY=off GOFLAGS= \
    GOCACHE="$OUT/gocache" go build -o "$OUT/benchmark.tmp" .) \
  || { echo "etcd-benchmark: go build failed" >&2; exit 1; }
mv -f "$OUT/benchmark.tmp" "$OUT/benchmark"
echo "$stamp" >"$OUT/STAMP"
rm -rf "$apt_dir" "$src_dir"
echo "$OUT/benchmark"
