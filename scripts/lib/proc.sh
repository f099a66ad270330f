# shellcheck shell=bash
# stop_group PID [SECONDS]
#
# Stops a process this script started in its own process group (setsid):
# SIGTERM to the group, up to SECONDS (default 15) for it to exit, then
# SIGKILL. Nothing else is signalled.
stop_group() {
  local pid="$1" secs="${2:-15}" _
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((secs * 4))); do
    [ -d "/proc/$pid" ] || return 0
    sleep 0.25
  done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}
