#!/usr/bin/env bash
# Run moto's server on 127.0.0.1, for the DynamoDB tests (through
# scripts/moto_server.py, which applies requests one at a time).
#
#   scripts/moto.sh start    # prints `export ...` lines to eval
#   scripts/moto.sh stop     # stops the instance this script started
#   scripts/moto.sh status
#   scripts/moto.sh env      # prints the export lines of the running instance
#
# `start` is idempotent: a healthy instance started earlier is reused and
# MOTO_STARTED_HERE=0 tells the caller not to stop it. Printed variables:
#   AWS_ENDPOINT_URL_DYNAMODB  http://127.0.0.1:PORT (the standard AWS setting)
#   MOTO_ENDPOINT              the same, for tools that point elsewhere too
#   MOTO_STARTED_HERE          1 if this call started it
#
# Settings (environment): UPLOADGATE_CACHE (default ~/.cache/uploadgate),
# MOTO_PORT (default: a free port), MOTO_STATE_DIR (pidfile, log, env file).
# The package is pinned in .ci/requirements-moto.txt; the venv is keyed by
# that file's hash and the Python version.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${UPLOADGATE_CACHE:-$HOME/.cache/uploadgate}"
REQS="$ROOT/.ci/requirements-moto.txt"
STATE="${MOTO_STATE_DIR:-$CACHE/moto}"
PIDFILE="$STATE/moto.pid"
ENVFILE="$STATE/moto.env"
LOGFILE="$STATE/moto.log"
PYTHON="${PYTHON:-python3}"

say() { echo "moto: $*" >&2; }

# shellcheck source=lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"
# shellcheck source=lib/proc.sh
. "$ROOT/scripts/lib/proc.sh"

healthy() { # endpoint pid
  local i
  for i in $(seq 1 120); do
    [ -d "/proc/$2" ] || { say "process exited during start-up"; return 1; }
    if curl -fsS -o /dev/null "$1/moto-api/" 2>/dev/null; then return 0; fi
    sleep 0.25
  done
  say "not healthy after 30 s"
  return 1
}

cmd_start() {
  mkdir -p "$STATE"
  local venv pid port endpoint
  venv="$(ensure_venv moto "$REQS" "$PYTHON")"
  if pid="$(running_pid "$PIDFILE" moto_server.py)" && [ -f "$ENVFILE" ]; then
    endpoint="$(sed -n 's/^export MOTO_ENDPOINT=//p' "$ENVFILE")"
    if healthy "$endpoint" "$pid" 2>/dev/null; then
      say "already running (pid $pid) at $endpoint"
      cat "$ENVFILE"
      echo "export MOTO_STARTED_HERE=0"
      return
    fi
  fi
  port="${MOTO_PORT:-$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
  endpoint="http://127.0.0.1:$port"
  say "starting on $endpoint (log: $LOGFILE)"
  # Own session, so the server outlives the caller (cargo test reuses it)
  # and `stop` can end its whole process group.
  # moto_server.py: moto's app with requests applied one at a time (moto's
  # DynamoDB transactions are not atomic under concurrency; see the file).
  setsid "$venv/bin/python" "$ROOT/scripts/moto_server.py" 127.0.0.1 "$port" </dev/null >"$LOGFILE" 2>&1 &
  pid=$!
  echo "$pid" >"$PIDFILE"
  if ! healthy "$endpoint" "$pid"; then
    tail -n 30 "$LOGFILE" >&2 || true
    cmd_stop || true
    return 1
  fi
  {
    echo "export MOTO_ENDPOINT=$endpoint"
    echo "export AWS_ENDPOINT_URL_DYNAMODB=$endpoint"
  } >"$ENVFILE"
  say "ready (pid $pid)"
  cat "$ENVFILE"
  echo "export MOTO_STARTED_HERE=1"
}

cmd_stop() {
  local pid
  if ! pid="$(running_pid "$PIDFILE" moto_server.py)"; then
    rm -f "$PIDFILE" "$ENVFILE"
    say "not running"
    return 0
  fi
  say "stopping pid $pid"
  stop_group "$pid" 10
  rm -f "$PIDFILE" "$ENVFILE"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status)
    if pid="$(running_pid "$PIDFILE" moto_server.py)"; then say "running (pid $pid)"; cat "$ENVFILE"; else say "not running"; exit 1; fi
    ;;
  env) running_pid "$PIDFILE" moto_server.py >/dev/null && cat "$ENVFILE" ;;
  *)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
