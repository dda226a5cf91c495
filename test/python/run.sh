#!/usr/bin/env bash
# The Python client's tests (clients/python) with pytest, against real clusters
# of the binary in DDKV_BIN (ctest sets it to the ASan build). Runs with the
# first python3 that has msgpack and pytest (Debian's python3-msgpack and
# python3-pytest: scripts/deps.sh installs them). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
for py in /usr/bin/python3 python3; do
  if command -v "$py" >/dev/null && "$py" -c 'import msgpack, pytest' 2>/dev/null; then
    export PYTHONDONTWRITEBYTECODE=1
    # First: the package installs with pip (offline, from a copy of the
    # source, so the tree gets no build/ or egg-info) and the installed copy
    # imports and knows its version.
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    cp -r clients/python "$tmp/src"
    "$py" -m pip install -q --no-build-isolation --no-deps --no-index --target "$tmp/site" "$tmp/src" \
      >"$tmp/pip.log" 2>&1 || { cat "$tmp/pip.log" >&2; echo "python.test_client: pip install ./clients/python failed" >&2; exit 1; }
    (cd "$tmp" && PYTHONPATH="$tmp/site" "$py" -c 'import ddkv, sys; assert ddkv.__file__.startswith(sys.argv[1]), ddkv.__file__; print("pip install: ddkv", ddkv.__version__, "from", ddkv.__file__)' "$tmp/site") ||
      { echo "python.test_client: the pip-installed package does not import" >&2; exit 1; }
    "$py" -m pytest -q -p no:cacheprovider test/python "$@"
    exit $?
  fi
done
echo "python.test_client: no python3 with msgpack and pytest (run scripts/deps.sh)" >&2
exit 1
