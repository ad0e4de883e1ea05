# Sourced by the scripts of deploy/local and by ./dev: how one of their daemons is found by its pid file and stopped.

# running PID: the process exists and is not a zombie waiting to be reaped.
running() {
  [[ -r /proc/$1/status ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# alive PIDFILE PATTERN: the pid, if that process runs and its command line (arguments joined by spaces, each followed
# by one) holds PATTERN — pids get reused, so a pid file alone proves nothing.
alive() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$2" || return 1
  echo "$pid"
}

# await_or_kill GRACE PID…: wait up to GRACE seconds for these processes (already asked to stop) to end, then SIGKILL
# what still runs; prints the pids it had to kill, so the caller can say so.
await_or_kill() {
  local grace=$1 pid n left
  shift
  for (( n = 0; n < grace * 2; n++ )); do
    left=0
    for pid in "$@"; do running "$pid" && left=1; done
    (( left )) || return 0
    sleep 0.5
  done
  for pid in "$@"; do
    running "$pid" || continue
    kill -KILL "$pid" 2>/dev/null || true
    echo "$pid"
  done
  sleep 0.5
}

# stop_pids GRACE PID…: SIGTERM each at once (a cluster's nodes stop together: alone, the last would wait for a quorum),
# then await_or_kill.
stop_pids() {
  local grace=$1 pid
  shift
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  await_or_kill "$grace" "$@"
}
