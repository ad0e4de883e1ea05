#!/usr/bin/env bash
# Project-local Prometheus (Debian's package) scraping every wangge process, with the alert rules.
#
#   deploy/local/prometheus.sh install   apt-get install prometheus (and promtool) if missing; Debian's own
#                                        service is kept from starting or taking port 9090
#   deploy/local/prometheus.sh start     write the config from the ports in the environment, start Prometheus
#                                        on 127.0.0.1:$WANGGE_PROMETHEUS_PORT with its own TSDB, wait until ready
#                                        (already running: rewrite the config and reload it)
#   deploy/local/prometheus.sh stop      SIGTERM, then SIGKILL after a grace period
#   deploy/local/prometheus.sh status    one line: running/stopped, pid, address, targets up
#   deploy/local/prometheus.sh check     promtool: check config + check rules + test rules (deploy/prometheus/)
#   deploy/local/prometheus.sh config [DIR]   only write the config (default $WANGGE_STATE_DIR/prometheus)
#
# The rules and the config template live in deploy/prometheus/; what this script writes lives in
# $WANGGE_STATE_DIR/prometheus/ (prometheus.yml, alerts.yml, data/ = the TSDB, prometheus.log).
# Debian's package serves the classic web UI: targets on http://127.0.0.1:19090/classic/targets, alerts on
# /classic/alerts (and /api/v1/targets, /api/v1/alerts); no Alertmanager runs locally.
#
# Environment: WANGGE_STATE_DIR (default <repo>/.local), WANGGE_PROMETHEUS_PORT (19090),
# WANGGE_INTAKE_PORT (8101), WANGGE_ROUTING_PORT (8102), WANGGE_SUPERVISION_PORT (8103),
# WANGGE_NOTIFY_PORT (8104), WANGGE_LIVE_PORT (8105; `off`: no live-figures target), WANGGE_INSTANCES (1: a
# target per instance, instance i on its process's port + 1000·(i-1), as ./dev starts them; each its own
# `instance` label, host:port) or WANGGE_<NAME>_PORTS (a comma list of one process's instances),
# WANGGE_PROMETHEUS_SCRAPE_INTERVAL (5s), WANGGE_PROMETHEUS_EVALUATION_INTERVAL (same as scrape),
# WANGGE_PROMETHEUS_RETENTION (15d), WANGGE_PROMETHEUS_START_TIMEOUT (seconds, 60).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=deploy/local/proc-lib.sh
source "$HERE/proc-lib.sh"
RULES_SRC=$REPO/deploy/prometheus
STATE=${WANGGE_STATE_DIR:-$REPO/.local}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)   # absolute: it ends up in the command line we check the pid against

HOST=127.0.0.1
PORT=${WANGGE_PROMETHEUS_PORT:-19090}
DIR=$STATE/prometheus
CONF=$DIR/prometheus.yml
DATA=$DIR/data
LOG=$DIR/prometheus.log
RUN=$STATE/run
PIDFILE=$RUN/prometheus.pid
SCRAPE=${WANGGE_PROMETHEUS_SCRAPE_INTERVAL:-5s}
EVALUATION=${WANGGE_PROMETHEUS_EVALUATION_INTERVAL:-$SCRAPE}
RETENTION=${WANGGE_PROMETHEUS_RETENTION:-15d}
START_TIMEOUT=${WANGGE_PROMETHEUS_START_TIMEOUT:-60}

# Body of `bash -c` that starts the daemon: write own pid to $1, close inherited fds > 2, exec.
# (A caller's pipe held open by a daemon makes `./dev up | tail` or CI wait forever.)
# shellcheck disable=SC2016  # expanded by the inner bash, not here
DAEMON_EXEC='echo $$ > "$1"; shift
for fd in /proc/self/fd/*; do fd=${fd##*/}; case $fd in 0|1|2) ;; *) eval "exec $fd>&-" ;; esac; done
exec "$@"'

say() { printf 'prometheus: %s\n' "$*"; }
die() { printf 'prometheus: ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=deploy/local/instances.sh
source "$HERE/instances.sh"

# ---- install ------------------------------------------------------------------------------

installed() { command -v prometheus >/dev/null && command -v promtool >/dev/null; }

install() {
  if installed; then
    return 0
  fi
  [[ $EUID -eq 0 ]] || die "Prometheus is not installed; run: sudo apt-get install -y --no-install-recommends prometheus"
  say "installing Prometheus and promtool from Debian's packages (first run only)…"
  export DEBIAN_FRONTEND=noninteractive
  # Debian's package would start its own Prometheus on :9090 from its postinst. A policy-rc.d that
  # answers 101 forbids that; when the machine has none, we put one there for the install only.
  local policy=/usr/sbin/policy-rc.d ours=""
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# wangge deploy/local/prometheus.sh install: no service starts during this install\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    ours=$policy
  fi
  # Other engineers' scripts may be installing packages at the same moment: wait for dpkg's lock.
  local ok=1
  apt-get -o DPkg::Lock::Timeout=600 update -qq \
    && apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends prometheus > /dev/null \
    || ok=0
  [[ -n $ours ]] && rm -f "$ours"
  (( ok )) || die "apt-get install prometheus failed (see above)"
  keep_debian_service_off
  installed || die "apt-get installed prometheus but prometheus/promtool are not on PATH"
  say "installed $(prometheus --version 2>&1 | head -n1)"
}

# Debian's own prometheus service: never enabled at boot, never running (it would take :9090 and
# scrape nothing of ours). Ours runs from this script with its own config, data and port.
keep_debian_service_off() {
  if [[ -d /run/systemd/system ]]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  elif command -v systemctl >/dev/null; then
    systemctl disable prometheus.service >/dev/null 2>&1 || true   # works offline: removes the symlinks
  fi
  if [[ -x /etc/init.d/prometheus ]]; then
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
}

need_installed() {
  installed || die "prometheus/promtool not found: run deploy/local/prometheus.sh install (or ./dev install)"
}

# ---- config -------------------------------------------------------------------------------

# "'127.0.0.1:P1', '127.0.0.1:P2'" for a comma list of ports, nothing for `off` (an empty target list is valid
# YAML and config).
targets() {
  local port out=""
  [[ $1 == off ]] && return 0
  local IFS=,
  for port in $1; do out+="${out:+, }'$HOST:$port'"; done
  printf '%s' "$out"
}

live_ports() {
  # The live-figures process runs only where its module exists (./dev up starts it only then).
  if [[ ! -d $REPO/services/supervision/live ]]; then echo off; return; fi
  instance_ports live 8105
}

# write_config DIR: prometheus.yml from the template with this environment's ports, alerts.yml beside it.
write_config() {
  local dir=$1 tmp timeout intake routing supervision notify live
  # Each process's instances (a die inside $(…) would only end the subshell: the assignment fails instead).
  intake=$(instance_ports intake 8101) || die "see above"
  routing=$(instance_ports routing 8102) || die "see above"
  supervision=$(instance_ports supervision 8103) || die "see above"
  notify=$(instance_ports notify 8104) || die "see above"
  live=$(live_ports) || die "see above"
  [[ $PORT =~ ^[0-9]+$ ]] || die "WANGGE_PROMETHEUS_PORT: port '$PORT' is not a number"
  mkdir -p "$dir"
  # A scrape must end before the next begins: the timeout is the interval, capped at 10s.
  timeout=$SCRAPE
  if [[ $SCRAPE =~ ^([0-9]+)s$ ]] && (( BASH_REMATCH[1] > 10 )); then timeout=10s; fi
  [[ $SCRAPE =~ ^[0-9]+s$ ]] || timeout=10s
  tmp=$(mktemp "$dir/.prometheus.yml.XXXXXX")
  sed -e "s|@SCRAPE_INTERVAL@|$SCRAPE|" \
      -e "s|@SCRAPE_TIMEOUT@|$timeout|" \
      -e "s|@EVALUATION_INTERVAL@|$EVALUATION|" \
      -e "s|@INTAKE_TARGETS@|$(targets "$intake")|" \
      -e "s|@ROUTING_TARGETS@|$(targets "$routing")|" \
      -e "s|@SUPERVISION_TARGETS@|$(targets "$supervision")|" \
      -e "s|@NOTIFY_TARGETS@|$(targets "$notify")|" \
      -e "s|@LIVE_TARGETS@|$(targets "$live")|" \
      -e "s|@PROMETHEUS_TARGETS@|$(targets "$PORT")|" \
      "$RULES_SRC/prometheus.yml.tmpl" > "$tmp"
  if grep -q '@[A-Z_]*@' "$tmp"; then
    rm -f "$tmp"
    die "the template has a placeholder this script does not fill: $(grep -o '@[A-Z_]*@' "$RULES_SRC/prometheus.yml.tmpl" | sort -u | tr '\n' ' ')"
  fi
  cp "$RULES_SRC/alerts.yml" "$dir/alerts.yml"
  mv -f "$tmp" "$dir/prometheus.yml"
}

# ---- lifecycle ----------------------------------------------------------------------------

# Is the process in the pid file alive and really our Prometheus (pids get reused)?
running_pid() { alive "$PIDFILE" "--config.file=$CONF "; }

# http_get PATH: the body of GET http://HOST:PORT/PATH, or a failure (no curl needed: python3 is there).
http_get() {
  python3 - "http://$HOST:$PORT$1" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as answer:
        sys.stdout.write(answer.read().decode())
except Exception:
    sys.exit(1)
PY
}

http_post() {
  python3 - "http://$HOST:$PORT$1" <<'PY'
import sys, urllib.request
try:
    urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="POST", data=b""), timeout=10).read()
except Exception:
    sys.exit(1)
PY
}

port_open() {
  python3 - "$HOST" "$1" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}

start() {
  need_installed
  local pid
  if pid=$(running_pid); then
    write_config "$DIR"
    http_post /-/reload || die "running (pid $pid) but the config reload was refused; see $LOG"
    say "already running (pid $pid) on http://$HOST:$PORT; config rewritten and reloaded"
    return 0
  fi
  port_open "$PORT" && die "port $HOST:$PORT is already in use by another process; stop it or set WANGGE_PROMETHEUS_PORT"
  write_config "$DIR"
  promtool check config "$CONF" > "$DIR/check.log" 2>&1 || { cat "$DIR/check.log" >&2; die "the written config does not pass promtool check config"; }
  mkdir -p "$DATA" "$RUN"
  [[ -f $LOG ]] && mv -f "$LOG" "$LOG.1"
  say "starting $(prometheus --version 2>&1 | head -n1 | cut -d' ' -f1-3) on http://$HOST:$PORT (scrape every $SCRAPE), log $LOG"
  # setsid: own session, so Ctrl-C in the terminal that ran `./dev up` does not stop it. The inner
  # bash writes its own pid and execs prometheus, so the pid file is Prometheus's pid.
  # --web.enable-lifecycle: `start` on a running one reloads the config (loopback only).
  setsid bash -c "$DAEMON_EXEC" _ "$PIDFILE" prometheus \
    "--config.file=$CONF" \
    "--storage.tsdb.path=$DATA" \
    "--storage.tsdb.retention.time=$RETENTION" \
    "--web.listen-address=$HOST:$PORT" \
    "--web.enable-lifecycle" \
    "--log.level=info" \
    < /dev/null >> "$LOG" 2>&1 &

  local t0=$SECONDS
  while true; do
    sleep 0.3
    if ! pid=$(running_pid); then
      if (( SECONDS - t0 > 5 )); then
        echo "---- last lines of $LOG ----" >&2
        tail -n 20 "$LOG" >&2 || true
        die "Prometheus exited during startup; see $LOG"
      fi
      continue
    fi
    http_get /-/ready >/dev/null && break
    if (( SECONDS - t0 > START_TIMEOUT )); then
      tail -n 20 "$LOG" >&2 || true
      die "Prometheus (pid $pid) was not ready on http://$HOST:$PORT within ${START_TIMEOUT}s; see $LOG"
    fi
  done
  say "ready (pid $pid): targets http://$HOST:$PORT/classic/targets, alerts http://$HOST:$PORT/classic/alerts"
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    say "not running"
    rm -f "$PIDFILE"
    return 0
  fi
  say "stopping (pid $pid)…"
  # It writes its head block and closes the TSDB in a second or two; 30 s before pulling the plug.
  [[ -z $(stop_pids 30 "$pid") ]] || say "still running after 30s: SIGKILL sent"
  rm -f "$PIDFILE"
  say "stopped"
}

# "3/5 targets up (not up: live, notify)" from the targets API; with several instances of a process, each one not
# up named by its address ("intake 127.0.0.1:9101").
targets_summary() {
  http_get /api/v1/targets 2>/dev/null | python3 -c '
import collections, json, sys
active = json.load(sys.stdin)["data"]["activeTargets"]
jobs = collections.Counter(t["labels"].get("job", "?") for t in active)
def name(t):
    job = t["labels"].get("job", "?")
    return "%s %s" % (job, t["labels"].get("instance", "?")) if jobs[job] > 1 else job
down = sorted(name(t) for t in active if t["health"] != "up")
line = "%d/%d targets up" % (len(active) - len(down), len(active))
print(line + (" (not up: %s)" % ", ".join(down) if down else ""))' 2>/dev/null || echo "targets unknown"
}

status() {
  if ! installed; then
    echo "prometheus: not installed (run $0 install)"
    return 3
  fi
  local pid
  if pid=$(running_pid); then
    if http_get /-/ready >/dev/null; then
      echo "prometheus: running (pid $pid) on http://$HOST:$PORT, $(targets_summary)"
    else
      echo "prometheus: running (pid $pid) on http://$HOST:$PORT, NOT ready yet (see $LOG)"
    fi
  else
    echo "prometheus: stopped (would listen on http://$HOST:$PORT)"
    return 3
  fi
}

check() {
  need_installed
  local tmp
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064  # expand now: the folder of this run
  trap "rm -rf '$tmp'" EXIT
  write_config "$tmp"
  promtool check config "$tmp/prometheus.yml"
  promtool check rules "$RULES_SRC/alerts.yml"
  # test rules resolves rule_files relative to the test file (deploy/prometheus/).
  promtool test rules "$RULES_SRC/alerts_test.yml"
}

usage() {
  sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  check) check ;;
  config) write_config "${2:-$DIR}"; echo "${2:-$DIR}/prometheus.yml" ;;
  -h|--help|help) usage ;;
  *)
    echo "usage: $0 {install|start|stop|status|check|config [DIR]}  (--help for more)" >&2
    exit 2 ;;
esac
