#!/usr/bin/env bash
# Runs moto's server (moto_server, installed by install-moto.sh), the AWS
# emulator the tests use for SQS, Secrets Manager, EventBridge and KMS, on
# 127.0.0.1 (never 0.0.0.0: it takes any credentials).
#
# Usage: infra/scripts/moto.sh start|stop|status|endpoint [port]
#   start     start unless already running, wait until it answers, print
#             the endpoint URL
#   stop      stop the instance started by `start` (pid file under .cache)
#   status    exit 0 when running
#   endpoint  print http://127.0.0.1:<port>
# Port: argument, else $MOTO_PORT, else 8766.
# Example: export MERCHANTSYNC_MOTO_ENDPOINT=$(infra/scripts/moto.sh start 8123)
#
# Behaviour is pinned: the server keeps every resource until it stops
# (nothing here calls moto's reset API; tests isolate themselves by name),
# and no MOTO_* setting of the caller's environment reaches it (e.g.
# MOTO_ACCOUNT_ID would move everything to another account), nor
# INITIAL_NO_AUTH_ACTION_COUNT (which would turn on IAM checks).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NAME=moto
PORT=${2:-${MOTO_PORT:-8766}}

server_prepare() {
  BIN=$("$REPO/infra/scripts/install-moto.sh")
}

server_exec() {
  local unset=()
  for v in $(compgen -e); do
    case $v in MOTO_* | INITIAL_NO_AUTH_ACTION_COUNT | TEST_SERVER_MODE | TEST_PROXY_MODE) unset+=(-u "$v") ;; esac
  done
  exec env "${unset[@]}" MOTO_PORT="$PORT" "$BIN/moto_server" -H 127.0.0.1 -p "$PORT"
}

server_answers() {
  # moto's configuration endpoint answers 201: no other server would.
  [[ "$(http_status /moto-api/config)" == 201 ]]
}

# shellcheck source=local-server.sh
. "$REPO/infra/scripts/local-server.sh"
local_server_main "${1:-}"
