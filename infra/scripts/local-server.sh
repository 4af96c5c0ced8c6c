# Sourced, not run: the start|stop|status|endpoint commands that
# dynamodb-local.sh and moto.sh share, for one emulator on 127.0.0.1:PORT
# with its pid and log files under .cache.
#
# The script that sources this sets NAME (for messages and file names),
# PORT and REPO, defines
#   server_exec     exec the server (runs in a background subshell whose
#                   output goes to the log file)
#   server_answers  exit 0 once the server answers on $ENDPOINT
# and optionally server_prepare (run by start before launching, e.g. to
# install), then calls: local_server_main "$cmd"

PIDFILE="$REPO/.cache/$NAME-$PORT.pid"
LOGFILE="$REPO/.cache/$NAME-$PORT.log"
ENDPOINT="http://127.0.0.1:$PORT"

log() { echo "$NAME: $*" >&2; }

running() {
  [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

# http_status PATH: the HTTP status of a GET of $ENDPOINT/PATH, 000 for none.
http_status() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$ENDPOINT$1" 2>/dev/null || true
}

local_server_start() {
  if running; then
    echo "$ENDPOINT"
    return 0
  fi
  command -v curl >/dev/null 2>&1 || { log "curl is required"; return 1; }
  if declare -F server_prepare >/dev/null; then server_prepare; fi
  mkdir -p "$REPO/.cache"
  (server_exec >"$LOGFILE" 2>&1 </dev/null) &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 120); do
    if server_answers; then
      echo "$ENDPOINT"
      return 0
    fi
    if ! running; then
      log "exited early; log follows"; cat "$LOGFILE" >&2; rm -f "$PIDFILE"; return 1
    fi
    sleep 0.25
  done
  log "did not answer on $ENDPOINT within 30s; log follows"; cat "$LOGFILE" >&2
  kill "$(cat "$PIDFILE")" 2>/dev/null || true
  rm -f "$PIDFILE"
  return 1
}

local_server_stop() {
  if running; then
    local pid
    pid=$(cat "$PIDFILE")
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}

local_server_main() {
  case "${1:-}" in
  start) local_server_start ;;
  stop) local_server_stop ;;
  status) running ;;
  endpoint) echo "$ENDPOINT" ;;
  *)
    echo "usage: $0 start|stop|status|endpoint [port]" >&2
    return 2
    ;;
  esac
}
