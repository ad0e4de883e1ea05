#!/usr/bin/env bash
# Project-local PostgreSQL cluster (Debian's packages) for development and tests.
#
#   deploy/local/postgres.sh install   apt-get install postgresql if no server binary is present
#   deploy/local/postgres.sh start     initdb once, write config, start, wait, ensure role+db wangge and the
#                                      services' roles wangge_intake, wangge_routing, wangge_supervision, wangge_notify
#   deploy/local/postgres.sh stop      fast shutdown (rolls back open transactions, then checkpoints)
#   deploy/local/postgres.sh status    running/stopped, pid, port, DSN
#   deploy/local/postgres.sh psql [psql args]   psql to the wangge database
#   deploy/local/postgres.sh where     the folder holding data/, run/, log/
#   deploy/local/postgres.sh dsn [ROLE]   the URL clients use (WANGGE_DATABASE_URL; ROLE default wangge)
#   deploy/local/postgres.sh roles HOST PORT   the role+db wangge and the services' roles on that server (patroni.sh)
#
# WANGGE_PG_HA=1: every command goes to deploy/local/patroni.sh instead — a primary and a synchronous standby
# under Patroni with etcd, which fail over (see there).
#
# Its own data folder and port, so it never touches a system cluster (Debian's 5432 "main").
#
# Environment: WANGGE_STATE_DIR (default <repo>/.local), WANGGE_PG_PORT (15432), WANGGE_PG_STAT_STATEMENTS (0; 1 loads
# pg_stat_statements, for `python -m bench.statements`: which statements a case costs, by service role. Read at the
# server's start: stop and start PostgreSQL to change it. Off by default: it costs a little on every statement).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
STATE=${WANGGE_STATE_DIR:-$REPO/.local}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)

HOST=127.0.0.1
PORT=${WANGGE_PG_PORT:-15432}
DB=wangge
ROLE=wangge
DSN="postgresql://$ROLE@$HOST:$PORT/$DB"
SERVICE_ROLES="intake routing supervision notify"   # roles wangge_<service>
PG_USER=postgres   # the unprivileged OS user the server runs as when we are root

say() { printf 'postgres: %s\n' "$*"; }

# PostgreSQL that fails over: the same commands, on a Patroni cluster.
if [[ ${WANGGE_PG_HA:-0} == 1 ]]; then
  exec "$HERE/patroni.sh" "$@"
fi
die() { printf 'postgres: ERROR: %s\n' "$*" >&2; exit 1; }

# shellcheck source=deploy/local/pg-lib.sh
source "$HERE/pg-lib.sh"

install_server() {
  if newest_bindir >/dev/null; then
    return 0
  fi
  [[ $EUID -eq 0 ]] || die "PostgreSQL server is not installed; run: sudo apt-get install -y postgresql"
  say "installing PostgreSQL from Debian's packages (first run only)…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql > /dev/null
  newest_bindir >/dev/null || die "apt-get installed postgresql but no server binary is under /usr/lib/postgresql/*/bin"
  say "installed $(newest_bindir)"
}

# ---- who runs the server, and where its files live ----------------------------------------

# PostgreSQL refuses to run as root. As root we run initdb/pg_ctl/postgres as $PG_USER; as any
# other user, as that user.
as_pg() {
  if [[ $EUID -eq 0 ]]; then
    # cd /: the caller's cwd may not be readable by postgres (initdb and psql complain).
    (cd / && runuser -u "$PG_USER" -- "$@")
  else
    "$@"
  fi
}

ensure_pg_user() {
  [[ $EUID -eq 0 ]] || return 0
  if ! id -u "$PG_USER" >/dev/null 2>&1; then
    say "creating system user $PG_USER"
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash "$PG_USER"
  fi
}

# Folder for data/, run/ (socket) and log/. Normally $STATE/pg; but when we are root and the
# postgres user cannot reach it (e.g. the repo lives under a 0700 home), the server could not
# open its own files: then use /var/tmp/wangge-<hash of $STATE>/pg, stable for this checkout.
pg_base() {
  local want=$STATE/pg
  if [[ $EUID -ne 0 ]]; then echo "$want"; return; fi
  mkdir -p "$want"
  chown "$PG_USER": "$want"
  if runuser -u "$PG_USER" -- test -w "$want" -a -x "$want" 2>/dev/null; then
    echo "$want"
    return
  fi
  local h
  h=$(printf '%s' "$STATE" | sha256sum | cut -c1-12)
  echo "/var/tmp/wangge-$h/pg"
}

BASE=""
resolve_paths() {
  [[ -n $BASE ]] && return 0
  ensure_pg_user
  BASE=$(pg_base)
  if [[ $BASE != "$STATE/pg" && ! -d $BASE ]]; then
    say "NOTE: user $PG_USER cannot reach $STATE/pg (a parent folder is not traversable by others);" >&2
    say "      keeping the cluster in $BASE instead" >&2
  fi
  DATA=$BASE/data
  SOCK_DIR=$BASE/run
  LOG_DIR=$BASE/log
  LOG=$LOG_DIR/postgresql.log
  mkdir -p "$BASE" "$SOCK_DIR" "$LOG_DIR"
  if [[ $EUID -eq 0 ]]; then
    chown "$PG_USER": "$BASE" "$SOCK_DIR" "$LOG_DIR"
    [[ -e $LOG ]] && chown "$PG_USER": "$LOG"
    # The fallback folder's parent: root-owned, but traversable.
    [[ $BASE == /var/tmp/* ]] && chmod 755 "$(dirname "$BASE")"
  fi
  # Same major version as the one that created the cluster (a cluster cannot be started by another).
  if [[ -f $DATA/PG_VERSION ]]; then
    local v
    v=$(cat "$DATA/PG_VERSION")
    BIN=/usr/lib/postgresql/$v/bin
    [[ -x $BIN/postgres ]] || die "$DATA was created by PostgreSQL $v, which is not installed (apt-get install postgresql-$v, or delete $DATA to start over)"
  else
    BIN=$(newest_bindir) || die "PostgreSQL server not installed: run $0 install"
  fi
}

# ---- lifecycle ----------------------------------------------------------------------------

init_cluster() {
  [[ -f $DATA/PG_VERSION ]] && return 0
  say "initializing a new cluster in $DATA (first run only)…"
  local locale=C.UTF-8
  locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$' || locale=C
  rm -rf "$DATA"
  mkdir -p "$DATA"
  [[ $EUID -eq 0 ]] && chown "$PG_USER": "$DATA"
  # trust auth: local dev only, and the server listens on 127.0.0.1 and its own socket folder.
  # Data checksums: cheap, and they catch torn or corrupted pages early.
  if ! as_pg "$BIN/initdb" -D "$DATA" --encoding=UTF8 --locale="$locale" \
        --auth-local=trust --auth-host=trust --username=postgres --data-checksums \
        > "$LOG_DIR/initdb.log" 2>&1; then
    cat "$LOG_DIR/initdb.log" >&2
    die "initdb failed (see $LOG_DIR/initdb.log)"
  fi
  # Our settings live in their own file, rewritten on every start (ports may change).
  echo "include_if_exists = 'wangge.conf'" >> "$DATA/postgresql.conf"
}

write_config() {
  local tmp
  tmp=$(mktemp)
  cat > "$tmp" <<EOF
# Generated by deploy/local/postgres.sh on every start: edit the script, not this file.
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = '$SOCK_DIR'
max_connections = 200
shared_buffers = 256MB
# Durability is a product guarantee ("nothing accepted is lost"): never turn these off, not even
# to make tests faster.
fsync = on
synchronous_commit = on
full_page_writes = on
# Logging goes to pg_ctl's -l file.
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = 1000
EOF
  if [[ ${WANGGE_PG_STAT_STATEMENTS:-0} == 1 ]]; then
    cat >> "$tmp" <<EOF
# WANGGE_PG_STAT_STATEMENTS=1: statements counted per role (bench/statements.py), nested ones (triggers) too.
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
pg_stat_statements.max = 5000
# Planning counted apart (plans and total_plan_time): a statement planned anew on every run shows there.
pg_stat_statements.track_planning = on
EOF
  fi
  install -m 0644 "$tmp" "$DATA/wangge.conf"
  rm -f "$tmp"
  [[ $EUID -eq 0 ]] && chown "$PG_USER": "$DATA/wangge.conf"
  return 0
}

is_running() { as_pg "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; }

server_pid() { head -n1 "$DATA/postmaster.pid" 2>/dev/null || true; }

psql_super() {  # psql as the bootstrap superuser, over the unix socket (trust)
  "$BIN/psql" -X -q -h "$SOCK_DIR" -p "$PORT" -U postgres -v ON_ERROR_STOP=1 "$@"
}

ensure_db() {
  # Idempotent: \gexec runs the generated statement only when the SELECT returns a row.
  psql_super -d postgres >/dev/null <<SQL
SELECT 'CREATE ROLE $ROLE LOGIN SUPERUSER' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$ROLE') \gexec
SELECT 'CREATE DATABASE $DB OWNER $ROLE' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB') \gexec
SQL
  if [[ ${WANGGE_PG_STAT_STATEMENTS:-0} == 1 ]]; then
    psql_super -d "$DB" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
  fi
  # One role per service (WANGGE_<SERVICE>_DATABASE_URL): no superuser, no schema of its own to create; the owner's
  # `python -m shared.migrate` grants each its own schema only. Trust auth locally, so no passwords here.
  local svc
  for svc in $SERVICE_ROLES; do
    psql_super -d postgres >/dev/null <<SQL
SELECT 'CREATE ROLE wangge_$svc LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOBYPASSRLS'
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'wangge_$svc') \gexec
SQL
  done
}

start() {
  install_server
  resolve_paths
  if is_running; then
    say "already running (pid $(server_pid)) on $HOST:$PORT"
    ensure_db
    say "DSN: $DSN"
    return 0
  fi
  init_cluster
  write_config
  if python3 -c "import socket,sys; socket.create_connection(('$HOST', $PORT), timeout=1)" 2>/dev/null; then
    die "port $HOST:$PORT is already in use by another process; stop it or set WANGGE_PG_PORT"
  fi
  say "starting PostgreSQL $(basename "$(dirname "$BIN")") on $HOST:$PORT, log $LOG"
  # pg_ctl -w waits until the server accepts connections; -l sends the server's output to $LOG.
  # pg_ctl starts the postmaster with stdin from /dev/null and output to the log, so no caller's
  # pipe stays open. A stale postmaster.pid from a crash is handled by pg_ctl/postgres itself.
  # The fd loop: pg_ctl and postgres would keep any fd above 2 that we inherited (e.g. a
  # caller's pipe), and a pipe held open by a daemon makes `./dev infra | tail` or CI hang.
  # shellcheck disable=SC2016  # expanded by the inner bash
  if ! as_pg bash -c 'for fd in /proc/self/fd/*; do fd=${fd##*/}; case $fd in 0|1|2) ;; *) eval "exec $fd>&-" ;; esac; done
      exec "$@"' _ "$BIN/pg_ctl" start -D "$DATA" -l "$LOG" -w -t 60 -s < /dev/null; then
    echo "---- last lines of $LOG ----" >&2
    tail -n 30 "$LOG" >&2 || true
    die "PostgreSQL did not start; see $LOG"
  fi
  say "waiting for PostgreSQL on $HOST:$PORT…"
  for _ in $(seq 1 60); do
    "$BIN/pg_isready" -q -h "$HOST" -p "$PORT" -U postgres -d postgres && break
    sleep 0.5
  done
  "$BIN/pg_isready" -q -h "$HOST" -p "$PORT" -U postgres -d postgres || die "PostgreSQL started but pg_isready fails; see $LOG"
  ensure_db
  say "ready (pid $(server_pid)). DSN: $DSN"
}

stop() {
  resolve_paths
  # A failover cluster of this state folder (WANGGE_PG_HA=1) is stopped too, whatever the knob says now.
  [[ -d $STATE/pg-ha || -d $(dirname "$BASE")/pg-ha ]] && "$HERE/patroni.sh" stop
  if ! is_running; then
    say "not running"
    return 0
  fi
  say "stopping (pid $(server_pid))…"
  # fast: disconnects clients (rolls back their open transactions), then a clean shutdown checkpoint.
  as_pg "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 -s \
    || die "PostgreSQL did not stop within 60 s; see $LOG"
  say "stopped"
}

status() {
  if ! newest_bindir >/dev/null; then
    echo "postgres: not installed (run $0 install)"
    return 3
  fi
  resolve_paths
  if is_running; then
    echo "postgres: running (pid $(server_pid)) on $HOST:$PORT, DSN $DSN"
  else
    echo "postgres: stopped (DSN would be $DSN)"
    return 3
  fi
}

psql_cmd() {
  resolve_paths
  is_running || die "not running: start it with ./dev infra (or $0 start)"
  exec "$BIN/psql" -h "$HOST" -p "$PORT" -U "$ROLE" -d "$DB" "$@"
}

case "${1:-}" in
  install) install_server; say "server binaries: $(newest_bindir)" ;;
  start)   start ;;
  stop)    stop ;;
  status)  status ;;
  psql)    shift; psql_cmd "$@" ;;
  where)   resolve_paths; echo "$BASE" ;;
  dsn)     echo "postgresql://${2:-$ROLE}@$HOST:$PORT/$DB" ;;
  logs)    resolve_paths; echo "$LOG" ;;
  roles)   BIN=$(newest_bindir) || die "PostgreSQL server not installed"
           SOCK_DIR=${2:?roles HOST PORT}; PORT=${3:?roles HOST PORT}; ensure_db ;;
  *)
    echo "usage: $0 {install|start|stop|status|psql [args]|where|dsn [ROLE]|logs|roles HOST PORT}" >&2
    exit 2 ;;
esac
