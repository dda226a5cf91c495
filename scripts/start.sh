#!/usr/bin/env bash
# The main job: install what is missing, build, and run a local ddkv node in the
# foreground with its data under var/. Ctrl-C stops it cleanly; data survives.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh release
mkdir -p var
CLIENT=${DDKV_CLIENT_ADDR:-127.0.0.1:7001}
HTTP=${DDKV_HTTP_ADDR:-127.0.0.1:7201}
cat <<MSG

ddkv is starting: one node, data in var/n1, client port $CLIENT, ops HTTP $HTTP.
Talk to it from another shell:
  build/ddkv --endpoints $CLIENT write greeting hello
  build/ddkv --endpoints $CLIENT read greeting
  build/ddkv --endpoints $CLIENT list ''
  build/ddkv --endpoints $CLIENT status
  curl -s http://$HTTP/status
Ctrl-C stops the node; start it again and everything acknowledged is still there.

MSG
exec build/ddkv serve --name n1 --data-dir var/n1 --client-addr "$CLIENT" --http-addr "$HTTP"
