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
cmd=${1:-}
PORT=${2:-${DYNAMODB_LOCAL_PORT:-8000}}
PIDFILE="$REPO/.cache/dynamodb-local-$PORT.pid"
LOGFILE="$REPO/.cache/dynamodb-local-$PORT.log"
ENDPOINT="http://127.0.0.1:$PORT"

log() { echo "dynamodb-local: $*" >&2; }

running() {
  [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

answers() {
  # Any HTTP answer (DynamoDB Local replies 400 to a bare GET) means it is up.
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$ENDPOINT" 2>/dev/null || true)
  [[ -n "$code" && "$code" != 000 ]]
}

case "$cmd" in
start)
  if running; then
    echo "$ENDPOINT"
    exit 0
  fi
  [[ -f "$DIR/DynamoDBLocal.jar" ]] || "$REPO/infra/scripts/install-dynamodb-local.sh" >/dev/null
  command -v curl >/dev/null 2>&1 || { log "curl is required"; exit 1; }
  (cd "$DIR" && exec nohup java -Djava.library.path="$DIR/DynamoDBLocal_lib" -jar "$DIR/DynamoDBLocal.jar" \
      -inMemory -sharedDb -port "$PORT" >"$LOGFILE" 2>&1 </dev/null) &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 120); do
    if answers; then
      echo "$ENDPOINT"
      exit 0
    fi
    if ! running; then
      log "exited early; log follows"; cat "$LOGFILE" >&2; rm -f "$PIDFILE"; exit 1
    fi
    sleep 0.25
  done
  log "did not answer on $ENDPOINT within 30s; log follows"; cat "$LOGFILE" >&2
  kill "$(cat "$PIDFILE")" 2>/dev/null || true
  rm -f "$PIDFILE"
  exit 1
  ;;
stop)
  if running; then
    pid=$(cat "$PIDFILE")
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
  ;;
status)
  running
  ;;
endpoint)
  echo "$ENDPOINT"
  ;;
*)
  echo "usage: $0 start|stop|status|endpoint [port]" >&2
  exit 2
  ;;
esac
