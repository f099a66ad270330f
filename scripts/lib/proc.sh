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

# running_pid PIDFILE PATTERN
#
# Prints the PID recorded in PIDFILE if that process is still alive and its
# command line contains PATTERN (so a recycled PID is never mistaken for
# ours); fails otherwise.
running_pid() {
  local pidfile="$1" pattern="$2" pid
  [ -f "$pidfile" ] || return 1
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$pattern" || return 1
  echo "$pid"
}
