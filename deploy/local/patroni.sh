#!/usr/bin/env bash
# PostgreSQL that fails over, on this machine: a one-member etcd and two PostgreSQL members (primary + streaming
# standby) run by Patroni, all from Debian's packages. deploy/local/postgres.sh hands every command here when
# WANGGE_PG_HA=1, so ./dev infra/up/down/status/env/psql/test know it without a second code path.
#
#   deploy/local/patroni.sh install      apt-get install postgresql patroni etcd-server if missing
#   deploy/local/patroni.sh start [N]    etcd, then every member (or member N only); the whole cluster: until a
#                                        leader answers and every other member streams as its synchronous standby,
#                                        then the role+db wangge and the services' roles (as postgres.sh does)
#   deploy/local/patroni.sh stop [N]     the standbys first, the leader last (no needless failover), then etcd;
#                                        or member N only
#   deploy/local/patroni.sh status       one line per member, the leader first ("postgres: running (pid P)…"),
#                                        then etcd; exit 3 when no member leads
#   deploy/local/patroni.sh dsn [ROLE]   the URL clients use: every member, target_session_attrs=read-write
#   deploy/local/patroni.sh psql [ARGS]  psql to the wangge database on the leader
#   deploy/local/patroni.sh where        the folder holding data/ (etcd, member<i>), run/, log/
#   deploy/local/patroni.sh logs         the log files, one a line
#
# How clients find the primary: a libpq multi-host URL, postgresql://wangge@127.0.0.1:P1,127.0.0.1:P2/wangge?
# target_session_attrs=read-write. asyncpg (and psql) try the hosts in order and keep the first that accepts writes,
# so after a failover every new connection lands on the promoted standby; shared/db.py's pools replace connections
# the dead primary cut. No proxy in between (Patroni's REST /primary behind HAProxy would be the other way).
#
# Synchronous replication (Patroni's synchronous_mode): a commit is acknowledged only once the standby has it on
# disk, so the standby Patroni promotes (it only promotes the synchronous one) holds everything acknowledged.
# With the standby gone, Patroni lets the primary go on alone (synchronous_mode_strict off): availability first,
# and the standby is synchronous again as soon as it is back.
#
# Ports (all 127.0.0.1, keep them below 32768): member i's PostgreSQL on WANGGE_PG_PORT + (i-1) (15432, 15433),
# its Patroni REST API on WANGGE_PG_PORT + 10 + (i-1) (15442, 15443), etcd's client and peer ports
# WANGGE_PG_PORT + 20 / + 21 (15452, 15453); or list them: WANGGE_PG_PORTS, WANGGE_PATRONI_PORTS (one per member,
# comma-separated; two or three members), WANGGE_ETCD_PORTS (client,peer).
# State: <state>/pg-ha (data/etcd, data/member<i>, run/, log/), apart from the single server's <state>/pg, so
# switching between the two never mixes their data. WANGGE_PG_HA_START_TIMEOUT (seconds, 180).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
STATE=${WANGGE_STATE_DIR:-$REPO/.local}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)

HOST=127.0.0.1
DB=wangge
PG_USER=postgres   # the unprivileged OS user etcd, Patroni and PostgreSQL run as when we are root
SCOPE=wangge
START_TIMEOUT=${WANGGE_PG_HA_START_TIMEOUT:-180}
P=${WANGGE_PG_PORT:-15432}
IFS=, read -r -a PG_PORTS <<< "${WANGGE_PG_PORTS:-$P,$((P + 1))}"
IFS=, read -r -a REST_PORTS <<< "${WANGGE_PATRONI_PORTS:-$((P + 10)),$((P + 11))}"
IFS=, read -r ETCD_PORT ETCD_PEER_PORT <<< "${WANGGE_ETCD_PORTS:-$((P + 20)),$((P + 21))}"
MEMBERS=${#PG_PORTS[@]}

say() { printf 'postgres-ha: %s\n' "$*"; }
die() { printf 'postgres-ha: ERROR: %s\n' "$*" >&2; exit 1; }

(( MEMBERS >= 2 && MEMBERS <= 3 )) || die "WANGGE_PG_PORTS lists $MEMBERS ports; a primary and one or two standbys need 2 or 3"
(( ${#REST_PORTS[@]} == MEMBERS )) || die "WANGGE_PATRONI_PORTS must list one port per member ($MEMBERS)"
[[ -n ${ETCD_PEER_PORT:-} ]] || die "WANGGE_ETCD_PORTS must be CLIENT,PEER"

# shellcheck source=deploy/local/pg-lib.sh
source "$HERE/pg-lib.sh"
# shellcheck source=deploy/local/proc-lib.sh
source "$HERE/proc-lib.sh"

# Debian's packages, like postgres.sh's server: a bare machine (CI) gets them on the first start.
install_packages() {
  if newest_bindir >/dev/null && command -v patroni >/dev/null && command -v etcd >/dev/null; then
    return 0
  fi
  [[ $EUID -eq 0 ]] || die "PostgreSQL, Patroni or etcd is missing; run: sudo apt-get install -y postgresql patroni etcd-server"
  say "installing PostgreSQL, Patroni and etcd from Debian's packages (first run only)…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql patroni etcd-server > /dev/null
  command -v patroni >/dev/null && command -v etcd >/dev/null || die "apt-get ran but patroni or etcd is still missing"
}

as_pg() {
  if [[ $EUID -eq 0 ]]; then (cd / && runuser -u "$PG_USER" -- "$@"); else "$@"; fi
}

# <state>/pg-ha, unless the postgres user cannot reach it (a 0700 parent, e.g. pytest's tmp folders): then
# /var/tmp/wangge-<hash of the state folder>/pg-ha, the fallback postgres.sh uses for its own server.
BASE=""
resolve_paths() {
  [[ -n $BASE ]] && return 0
  BASE=$STATE/pg-ha
  if [[ $EUID -eq 0 ]]; then
    id -u "$PG_USER" >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash "$PG_USER"
    mkdir -p "$BASE"
    chown "$PG_USER": "$BASE"
    if ! runuser -u "$PG_USER" -- test -w "$BASE" -a -x "$BASE" 2>/dev/null; then
      BASE=/var/tmp/wangge-$(printf '%s' "$STATE" | sha256sum | cut -c1-12)/pg-ha
      mkdir -p "$BASE"
      chmod 755 "$(dirname "$BASE")"
    fi
  fi
  DATA=$BASE/data
  RUN=$BASE/run
  LOGS=$BASE/log
  mkdir -p "$DATA" "$RUN" "$LOGS"
  [[ $EUID -eq 0 ]] && chown "$PG_USER": "$BASE" "$DATA" "$RUN" "$LOGS"
  if [[ -f $DATA/member1/PG_VERSION ]]; then
    BIN=/usr/lib/postgresql/$(cat "$DATA/member1/PG_VERSION")/bin
  else
    BIN=$(newest_bindir) || die "PostgreSQL server not installed: run $0 install"
  fi
}

# ---- processes ------------------------------------------------------------------------------------


etcd_pid() { alive "$RUN/etcd.pid" "$DATA/etcd"; }
patroni_pid() { alive "$RUN/patroni-member$1.pid" "patroni-member$1.yml"; }
postgres_pid() {  # the member's postmaster, whoever started it (Patroni, or an orphan of a killed Patroni)
  local pid
  pid=$(head -n1 "$DATA/member$1/postmaster.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$DATA/member$1" || return 1
  echo "$pid"
}

# A daemon as $PG_USER in its own session, its output appended to LOG, every inherited fd closed (a caller's pipe
# held open by a daemon makes `./dev infra | tail` or CI wait for ever). start-stop-daemon records the pid of the
# program itself (env execs it).
daemon() {  # daemon PIDFILE LOG PROGRAM ARGS…
  local pidfile=$1 log=$2; shift 2
  rm -f "$pidfile"
  touch "$log"
  local as=()
  [[ $EUID -eq 0 ]] && { chown "$PG_USER": "$log"; as=(--chuid "$PG_USER"); }
  # env -u: Patroni is Debian's Python program; a caller's virtualenv or PYTHONPATH must not leak into it.
  start-stop-daemon --start --background --make-pidfile --pidfile "$pidfile" "${as[@]}" --output "$log" \
    --chdir / --startas /usr/bin/env -- -u PYTHONPATH -u PYTHONHOME -u VIRTUAL_ENV "$@"
}

http_code() {  # http_code URL: the HTTP status (000 when nothing answers within 2 s)
  python3 - "$1" <<'PY'
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
PY
}

member_role() {  # member_role I: leader | sync_standby | replica | … as the cluster sees it ("" if unknown)
  python3 - "${REST_PORTS[@]}" "member$1" <<'PY' 2>/dev/null || true
import json, sys, urllib.request
*ports, name = sys.argv[1:]
for port in ports:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/cluster", timeout=2) as r:
            members = json.load(r)["members"]
    except Exception:
        continue
    print(next((m["role"] for m in members if m["name"] == name), ""))
    break
PY
}

leader() {  # the member whose Patroni says it is the primary (REST /primary answers 200)
  local i
  for (( i = 1; i <= MEMBERS; i++ )); do
    [[ $(http_code "http://$HOST:${REST_PORTS[i-1]}/primary") == 200 ]] && { echo "$i"; return 0; }
  done
  return 1
}

# ---- configuration ----------------------------------------------------------------------------------

write_config() {  # write_config I
  local i=$1 tmp
  tmp=$(mktemp)
  mkdir -p "$RUN/member$i"
  [[ $EUID -eq 0 ]] && chown "$PG_USER": "$RUN/member$i"
  cat > "$tmp" <<EOF
# Generated by deploy/local/patroni.sh on every start: edit the script, not this file.
scope: $SCOPE
namespace: /wangge/
name: member$i
log:
  level: INFO
restapi:
  listen: $HOST:${REST_PORTS[i-1]}
  connect_address: $HOST:${REST_PORTS[i-1]}
etcd3:
  hosts: $HOST:$ETCD_PORT
watchdog:
  mode: "off"
bootstrap:
  # Written to etcd once, by the member that initializes the cluster.
  dcs:
    # The leader key lives ttl seconds (Patroni's least: 20) unless renewed every loop_wait: a primary whose
    # machine dies is replaced after at most ttl + loop_wait. A primary whose PostgreSQL crashes under a running
    # Patroni fails over at once (primary_start_timeout 0) rather than being restarted in place for 5 minutes:
    # safe, because only the synchronous standby, which has every acknowledged commit, may be promoted.
    ttl: 20
    loop_wait: 1
    retry_timeout: 3
    primary_start_timeout: 0
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    synchronous_mode_strict: false
    synchronous_node_count: 1
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        max_connections: 200
        shared_buffers: 128MB
        wal_level: replica
        hot_standby: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 256MB
        # Durability is a product guarantee: never off, not even for tests.
        fsync: "on"
        full_page_writes: "on"
        synchronous_commit: "on"
        log_min_duration_statement: 1000
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
    - data-checksums
    - auth-local: trust
    - auth-host: trust
postgresql:
  listen: $HOST:${PG_PORTS[i-1]}
  connect_address: $HOST:${PG_PORTS[i-1]}
  data_dir: $DATA/member$i
  bin_dir: $BIN
  pgpass: $RUN/member$i/pgpass
  # Trust on 127.0.0.1 only, like postgres.sh's server: local development; the passwords below are never asked.
  authentication:
    superuser:
      username: postgres
      password: wangge-local
    replication:
      username: replicator
      password: wangge-local
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication replicator 127.0.0.1/32 trust
  # A killed primary whose WAL went further than the new primary's comes back as its standby through pg_rewind,
  # or, if that fails, as a fresh copy.
  remove_data_directory_on_rewind_failure: true
  remove_data_directory_on_diverged_timelines: true
  basebackup:
    - checkpoint: fast
  parameters:
    unix_socket_directories: $RUN/member$i
    logging_collector: "on"
    log_directory: $LOGS
    log_filename: member$i-postgresql.log
    log_file_mode: "0644"
    log_line_prefix: "%m [%p] %q%u@%d "
tags:
  nofailover: false
  noloadbalance: false
  clonefrom: false
  nosync: false
EOF
  install -m 0600 "$tmp" "$RUN/patroni-member$i.yml"
  rm -f "$tmp"
  [[ $EUID -eq 0 ]] && chown "$PG_USER": "$RUN/patroni-member$i.yml"
  return 0
}

# ---- lifecycle ----------------------------------------------------------------------------------------

port_taken() { python3 -c "import socket,sys; socket.create_connection(('$HOST', $1), timeout=1)" 2>/dev/null; }

start_etcd() {
  if etcd_pid >/dev/null; then return 0; fi
  port_taken "$ETCD_PORT" && die "port $HOST:$ETCD_PORT is taken by something else; move it with WANGGE_ETCD_PORTS or WANGGE_PG_PORT"
  mkdir -p "$DATA/etcd"
  chmod 700 "$DATA/etcd"
  [[ $EUID -eq 0 ]] && chown "$PG_USER": "$DATA/etcd"
  say "starting etcd on $HOST:$ETCD_PORT, log $LOGS/etcd.log"
  local url="http://$HOST:$ETCD_PORT" peer="http://$HOST:$ETCD_PEER_PORT"
  daemon "$RUN/etcd.pid" "$LOGS/etcd.log" etcd --name wangge --data-dir "$DATA/etcd" \
    --listen-client-urls "$url" --advertise-client-urls "$url" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "wangge=$peer" \
    --initial-cluster-state new --initial-cluster-token "wangge-$(printf '%s' "$BASE" | sha256sum | cut -c1-8)" \
    --auto-compaction-retention 1 --logger zap --log-outputs stderr
  local t0=$SECONDS
  until [[ $(http_code "$url/health") == 200 ]]; do
    etcd_pid >/dev/null || { tail -n 20 "$LOGS/etcd.log" >&2; die "etcd exited during startup (log $LOGS/etcd.log)"; }
    (( SECONDS - t0 < 60 )) || die "etcd did not answer $url/health within 60 s (log $LOGS/etcd.log)"
    sleep 0.5
  done
}

start_member() {  # start_member I
  local i=$1
  if patroni_pid "$i" >/dev/null; then return 0; fi
  # A postmaster left by a killed Patroni would keep the port: stop it, Patroni starts its own.
  if postgres_pid "$i" >/dev/null; then
    say "member$i: a PostgreSQL without its Patroni runs; stopping it first"
    as_pg "$BIN/pg_ctl" stop -D "$DATA/member$i" -m fast -w -t 60 -s || true
  fi
  port_taken "${PG_PORTS[i-1]}" && die "port $HOST:${PG_PORTS[i-1]} is taken by something else; move it with WANGGE_PG_PORT"
  mkdir -p "$DATA/member$i"
  chmod 700 "$DATA/member$i"
  [[ $EUID -eq 0 ]] && chown "$PG_USER": "$DATA/member$i"
  write_config "$i"
  say "starting member$i (Patroni, REST $HOST:${REST_PORTS[i-1]}; PostgreSQL $HOST:${PG_PORTS[i-1]}), log $LOGS/member$i.log"
  printf '\n==== %s: starting Patroni ====\n' "$(date -Is)" >> "$LOGS/member$i.log"
  daemon "$RUN/patroni-member$i.pid" "$LOGS/member$i.log" patroni "$RUN/patroni-member$i.yml"
}

wait_for() {  # wait_for WHAT COMMAND…: until COMMAND succeeds, START_TIMEOUT at most
  local what=$1 t0=$SECONDS; shift
  until "$@"; do
    (( SECONDS - t0 < START_TIMEOUT )) || die "$what not within $START_TIMEOUT s (logs in $LOGS)"
    sleep 0.5
  done
}

member_running() { [[ $(http_code "http://$HOST:${REST_PORTS[$1-1]}/health") == 200 ]]; }
a_synchronous_standby() {
  local i lead
  lead=$(leader) || return 1
  for (( i = 1; i <= MEMBERS; i++ )); do
    (( i == lead )) && continue
    [[ $(member_role "$i") == sync_standby ]] && return 0   # one synchronous standby (synchronous_node_count 1)
  done
  return 1
}

start() {
  install_packages
  resolve_paths
  start_etcd
  if [[ -n ${1:-} ]]; then
    start_member "$1"
    wait_for "member$1 running" member_running "$1"
    say "member$1 running ($(member_role "$1"))"
    return 0
  fi
  local i lead
  if [[ ! -f $DATA/member1/PG_VERSION ]]; then
    # A new cluster: member 1 first, so that it initializes and leads; the others copy it.
    start_member 1
    wait_for "a leader" leader >/dev/null
  fi
  # An existing one: every member at once. Patroni decides who leads — in synchronous mode only a member that was
  # the leader or its synchronous standby may, so one started alone could wait for the other for ever.
  for (( i = 1; i <= MEMBERS; i++ )); do start_member "$i"; done
  wait_for "a leader" leader >/dev/null
  for (( i = 1; i <= MEMBERS; i++ )); do wait_for "member$i running" member_running "$i"; done
  wait_for "a synchronous standby" a_synchronous_standby
  lead=$(leader)
  WANGGE_PG_HA=0 "$HERE/postgres.sh" roles "$HOST" "${PG_PORTS[lead-1]}"
  say "ready: member$lead leads, $(for (( i = 1; i <= MEMBERS; i++ )); do (( i == lead )) || printf 'member%s %s ' "$i" "$(member_role "$i")"; done)"
  say "DSN: $(dsn)"
}

stop_member() {  # stop_member I
  local i=$1 pid
  if pid=$(patroni_pid "$i"); then
    say "stopping member$i (Patroni pid $pid)…"
    [[ -z $(stop_pids 60 "$pid") ]] || say "member$i: Patroni still running after 60 s: SIGKILL sent"
  fi
  rm -f "$RUN/patroni-member$i.pid"
  if postgres_pid "$i" >/dev/null; then   # Patroni stops its PostgreSQL; one it left behind (killed) is stopped here
    as_pg "$BIN/pg_ctl" stop -D "$DATA/member$i" -m fast -w -t 60 -s || die "member$i's PostgreSQL did not stop"
  fi
}

stop() {
  [[ -d $STATE/pg-ha || -d /var/tmp/wangge-$(printf '%s' "$STATE" | sha256sum | cut -c1-12)/pg-ha ]] || { say "not running"; return 0; }
  resolve_paths
  if [[ -n ${1:-} ]]; then stop_member "$1"; return 0; fi
  local i lead
  lead=$(leader) || lead=0
  for (( i = 1; i <= MEMBERS; i++ )); do (( i == lead )) || stop_member "$i"; done
  (( lead > 0 )) && stop_member "$lead"
  local pid
  if pid=$(etcd_pid); then
    say "stopping etcd (pid $pid)…"
    stop_pids 20 "$pid" >/dev/null
  fi
  rm -f "$RUN/etcd.pid"
  say "stopped"
}

status() {
  if ! command -v patroni >/dev/null; then
    echo "postgres: not installed (WANGGE_PG_HA=1: run $0 install)"
    return 3
  fi
  resolve_paths
  local i lead order=() pg pat
  lead=$(leader) || lead=0
  (( lead > 0 )) && order+=("$lead")
  for (( i = 1; i <= MEMBERS; i++ )); do (( i == lead )) || order+=("$i"); done
  for i in "${order[@]}"; do
    pat=$(patroni_pid "$i" || echo none)
    if pg=$(postgres_pid "$i"); then
      echo "postgres: running (pid $pg) on $HOST:${PG_PORTS[i-1]}, member$i $(member_role "$i" || true) (Patroni pid $pat, REST $HOST:${REST_PORTS[i-1]})"
    else
      echo "postgres member$i: stopped on $HOST:${PG_PORTS[i-1]} (Patroni pid $pat)"
    fi
  done
  if i=$(etcd_pid); then echo "etcd: running (pid $i) on $HOST:$ETCD_PORT"; else echo "etcd: stopped"; fi
  echo "postgres DSN: $(dsn)"
  (( lead > 0 )) || return 3
}

dsn() {  # dsn [ROLE]
  local hosts="" i
  for (( i = 0; i < MEMBERS; i++ )); do hosts+="${hosts:+,}$HOST:${PG_PORTS[i]}"; done
  echo "postgresql://${1:-wangge}@$hosts/$DB?target_session_attrs=read-write"
}

psql_cmd() {
  resolve_paths
  local lead
  lead=$(leader) || die "no member leads: start the cluster with WANGGE_PG_HA=1 ./dev infra"
  exec "$BIN/psql" -h "$HOST" -p "${PG_PORTS[lead-1]}" -U wangge -d "$DB" "$@"
}

case "${1:-}" in
  install) install_packages; say "patroni $(patroni --version 2>/dev/null | awk '{print $2}'), $(etcd --version 2>/dev/null | head -n1)" ;;
  start)   start "${2:-}" ;;
  stop)    stop "${2:-}" ;;
  status)  status ;;
  dsn)     dsn "${2:-}" ;;
  psql)    shift; psql_cmd "$@" ;;
  where)   resolve_paths; echo "$BASE" ;;
  leader)  resolve_paths; leader ;;
  logs)    resolve_paths; ls -1 "$LOGS"/member*.log "$LOGS"/etcd.log 2>/dev/null ;;
  *)
    echo "usage: $0 {install|start [N]|stop [N]|status|dsn [ROLE]|psql [args]|where|leader|logs}" >&2
    exit 2 ;;
esac
