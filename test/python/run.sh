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
    exec "$py" -m pytest -q -p no:cacheprovider test/python "$@"
  fi
done
echo "python.test_client: no python3 with msgpack and pytest (run scripts/deps.sh)" >&2
exit 1
