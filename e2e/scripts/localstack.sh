#!/usr/bin/env bash
# Run LocalStack's S3 and SQS on loopback without Docker, for tests that need
# an independent S3 that verifies SigV4 and enforces bucket CORS, and that
# sends its event notifications to a queue (the settle path).
#
#   e2e/scripts/localstack.sh start    # prints `export ...` lines to eval
#   e2e/scripts/localstack.sh stop     # stops the instance this script started
#   e2e/scripts/localstack.sh status
#   e2e/scripts/localstack.sh env      # prints the export lines of the running instance
#
# `start` is idempotent: if an instance started by this script is already
# healthy it is reused, and LOCALSTACK_STARTED_HERE=0 tells the caller not to
# stop it. The printed variables:
#   LOCALSTACK_ENDPOINT     http://127.0.0.1:PORT
#   LOCALSTACK_PYTHON       the venv's python (has boto3), for test helpers
#   LOCALSTACK_STARTED_HERE 1 if this call started it
#
# Settings (environment):
#   UPLOADGATE_CACHE     cache root (default ~/.cache/uploadgate): venv, state
#   LOCALSTACK_PORT      port to listen on (default 4566, or a free one if busy)
#   LOCALSTACK_STATE_DIR pidfile, log and env file (default $UPLOADGATE_CACHE/localstack)
#
# The Python packages are pinned in .ci/requirements-localstack.txt; the venv
# is keyed by that file's hash, so changing a pin builds a new one.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${UPLOADGATE_CACHE:-$HOME/.cache/uploadgate}"
REQS="$ROOT/.ci/requirements-localstack.txt"
STATE="${LOCALSTACK_STATE_DIR:-$CACHE/localstack}"
PIDFILE="$STATE/localstack.pid"
ENVFILE="$STATE/localstack.env"
LOGFILE="$STATE/localstack.log"

say() { echo "localstack: $*" >&2; }

find_python313() {
  local root cand
  root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
  cand="$(ls -d "$root"/versions/3.13.*/bin/python 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$cand" ] && [ -x "$cand" ]; then echo "$cand"; return; fi
  if command -v python3.13 >/dev/null 2>&1; then command -v python3.13; return; fi
  say "no Python 3.13 found (looked in $root/versions/3.13.* and PATH)"
  return 1
}

# shellcheck source=../../scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"
# shellcheck source=../../scripts/lib/proc.sh
. "$ROOT/scripts/lib/proc.sh"

port_free() {
  "$1" - "$2" <<'PY'
import socket, sys
s = socket.socket()
# Servers bind with SO_REUSEADDR; without it, TIME_WAIT leftovers look "busy".
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
}

free_port() {
  "$1" - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

wait_healthy() {
  local py="$1" endpoint="$2" pid="$3"
  "$py" - "$endpoint" "$pid" <<'PY'
import json, os, sys, time, urllib.request
endpoint, pid = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 120
while time.time() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        print("localstack: process exited during start-up", file=sys.stderr)
        sys.exit(1)
    try:
        with urllib.request.urlopen(endpoint + "/_localstack/health", timeout=2) as r:
            services = json.load(r).get("services", {})
            if all(services.get(s) in ("available", "running") for s in ("s3", "sqs")):
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.5)
print("localstack: not healthy after 120 s", file=sys.stderr)
sys.exit(1)
PY
}

print_env() {
  cat "$ENVFILE"
}

cmd_start() {
  mkdir -p "$STATE"
  local py pid port endpoint
  py="$(ensure_venv localstack "$REQS" "$(find_python313)")/bin/python"
  if pid="$(running_pid "$PIDFILE" localstack.runtime.main)" && [ -f "$ENVFILE" ]; then
    # shellcheck disable=SC1090
    endpoint="$(. "$ENVFILE" && echo "$LOCALSTACK_ENDPOINT")"
    if wait_healthy "$py" "$endpoint" "$pid" 2>/dev/null; then
      say "already running (pid $pid) at $endpoint"
      print_env
      echo "export LOCALSTACK_STARTED_HERE=0"
      return
    fi
  fi
  port="${LOCALSTACK_PORT:-4566}"
  if ! port_free "$py" "$port"; then
    if [ -n "${LOCALSTACK_PORT:-}" ]; then
      say "port $port is in use"
      return 1
    fi
    port="$(free_port "$py")"
  fi
  endpoint="http://127.0.0.1:$port"
  say "starting on $endpoint (log: $LOGFILE)"
  (
    cd "$STATE"
    export GATEWAY_SERVER=hypercorn GATEWAY_LISTEN="127.0.0.1:$port" DNS_ADDRESS=0 \
      S3_SKIP_SIGNATURE_VALIDATION=0 SERVICES=s3,sqs SQS_ENDPOINT_STRATEGY=path \
      LOCALSTACK_HOST="127.0.0.1:$port" \
      SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 LOCALSTACK_TELEMETRY_DISABLED=1
    # Own process group, so `stop` can end it and any children it spawns.
    exec setsid "$py" -m localstack.runtime.main </dev/null >"$LOGFILE" 2>&1
  ) &
  pid=$!
  echo "$pid" >"$PIDFILE"
  if ! wait_healthy "$py" "$endpoint" "$pid"; then
    tail -n 30 "$LOGFILE" >&2 || true
    cmd_stop || true
    return 1
  fi
  {
    echo "export LOCALSTACK_ENDPOINT=$endpoint"
    echo "export LOCALSTACK_PYTHON=$py"
  } >"$ENVFILE"
  say "ready (pid $pid)"
  print_env
  echo "export LOCALSTACK_STARTED_HERE=1"
}

cmd_stop() {
  local pid
  if ! pid="$(running_pid "$PIDFILE" localstack.runtime.main)"; then
    rm -f "$PIDFILE" "$ENVFILE"
    say "not running"
    return 0
  fi
  say "stopping pid $pid"
  stop_group "$pid" 15
  rm -f "$PIDFILE" "$ENVFILE"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status)
    if pid="$(running_pid "$PIDFILE" localstack.runtime.main)"; then say "running (pid $pid)"; print_env; else say "not running"; exit 1; fi
    ;;
  env) running_pid "$PIDFILE" localstack.runtime.main >/dev/null && print_env ;;
  *)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
