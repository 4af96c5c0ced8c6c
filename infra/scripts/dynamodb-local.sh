#!/usr/bin/env bash
# Runs DynamoDB Local (installed by install-dynamodb-local.sh) on 127.0.0.1.
#
# Usage: infra/scripts/dynamodb-local.sh start|stop|status|endpoint [port]
#   start     start in memory (-inMemory -sharedDb) unless already running,
#             wait until it answers, print the endpoint URL
#   stop      stop the instance started by `start` (pid file under .cache)
#   status    exit 0 when running
#   endpoint  print http://127.0.0.1:<port>
# Port: argument, else $DYNAMODB_LOCAL_PORT, else 8000.
# Example: export AWS_ENDPOINT_URL_DYNAMODB=$(infra/scripts/dynamodb-local.sh start 8123)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR="$REPO/.cache/dynamodb-local"
NAME=dynamodb-local
PORT=${2:-${DYNAMODB_LOCAL_PORT:-8000}}

server_prepare() {
  [[ -f "$DIR/DynamoDBLocal.jar" ]] || "$REPO/infra/scripts/install-dynamodb-local.sh" >/dev/null
}

server_exec() {
  cd "$DIR"
  exec nohup java -Djava.library.path="$DIR/DynamoDBLocal_lib" -jar "$DIR/DynamoDBLocal.jar" \
    -inMemory -sharedDb -port "$PORT"
}

server_answers() {
  # Any HTTP answer (DynamoDB Local replies 400 to a bare GET) means it is up.
  [[ "$(http_status /)" != 000 ]]
}

# shellcheck source=local-server.sh
. "$REPO/infra/scripts/local-server.sh"
local_server_main "${1:-}"
