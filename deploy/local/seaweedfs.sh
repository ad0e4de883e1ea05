#!/usr/bin/env bash
# Project-local SeaweedFS (Apache-2.0): an S3-compatible server for the photo store that every instance shares
# (shared/media_s3.py). Built from its Go module (the pinned version below) with the machine's Go.
#
#   deploy/local/seaweedfs.sh install   build `weed` into $WANGGE_STATE_DIR/seaweedfs/bin (first run only: ~9
#                                       CPU-minutes, 5-7 min on two idle cores; the version is stamped beside it)
#   deploy/local/seaweedfs.sh start     write the S3 identity (a key pair made once, or the one in the environment),
#                                       start master + volume + filer + S3 gateway on 127.0.0.1, wait until the S3
#                                       gateway answers /healthz, create the bucket
#   deploy/local/seaweedfs.sh stop      SIGTERM, then SIGKILL after a grace period
#   deploy/local/seaweedfs.sh status    one line: running/stopped, pid, S3 endpoint
#   deploy/local/seaweedfs.sh env       export lines pointing the services at it (WANGGE_MEDIA_S3_*)
#
# Ports (all 127.0.0.1): the S3 gateway on WANGGE_SEAWEEDFS_PORT (default 18333); SeaweedFS's own parts on the next
# seven (master +1, its gRPC +2, volume +3, its gRPC +4, filer +5, its gRPC +6, the S3 gateway's gRPC +7): every
# gRPC port is given, never SeaweedFS's default of port + 10000 (which would leave the range below 32768).
# State in $WANGGE_STATE_DIR/seaweedfs/ (bin/weed, data/, s3.json, s3-keys, seaweedfs.log).
# Environment: WANGGE_STATE_DIR (default <repo>/.local), WANGGE_SEAWEEDFS_PORT, WANGGE_MEDIA_S3_BUCKET
# (wangge-media), WANGGE_MEDIA_S3_ACCESS_KEY / WANGGE_MEDIA_S3_SECRET_KEY (default: made once, kept in s3-keys),
# WANGGE_SEAWEEDFS_START_TIMEOUT (seconds, 90).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=deploy/local/proc-lib.sh
source "$HERE/proc-lib.sh"
STATE=${WANGGE_STATE_DIR:-$REPO/.local}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)   # absolute: it ends up in the command line we check the pid against

# The one version built: SeaweedFS publishes no tagged Go module, so a pseudo-version of its main branch.
MODULE=github.com/seaweedfs/seaweedfs
VERSION=v0.0.0-20261109003541-7506e5f91cd6

HOST=127.0.0.1
PORT=${WANGGE_SEAWEEDFS_PORT:-18333}
DIR=$STATE/seaweedfs
BIN=$DIR/bin/weed
STAMP=$DIR/bin/weed.version
DATA=$DIR/data
CONF=$DIR/s3.json
KEYS=$DIR/s3-keys
LOG=$DIR/seaweedfs.log
RUN=$STATE/run
PIDFILE=$RUN/seaweedfs.pid
BUCKET=${WANGGE_MEDIA_S3_BUCKET:-wangge-media}
START_TIMEOUT=${WANGGE_SEAWEEDFS_START_TIMEOUT:-90}

# Body of `bash -c` that starts the daemon: write own pid to $1, close inherited fds > 2, exec.
# (A caller's pipe held open by a daemon makes `./dev up | tail` or CI wait forever.)
# shellcheck disable=SC2016  # expanded by the inner bash, not here
DAEMON_EXEC='echo $$ > "$1"; shift
for fd in /proc/self/fd/*; do fd=${fd##*/}; case $fd in 0|1|2) ;; *) eval "exec $fd>&-" ;; esac; done
exec "$@"'

say() { printf 'seaweedfs: %s\n' "$*"; }
die() { printf 'seaweedfs: ERROR: %s\n' "$*" >&2; exit 1; }

[[ $PORT =~ ^[0-9]+$ ]] && (( PORT >= 1024 && PORT + 7 < 32768 )) \
  || die "WANGGE_SEAWEEDFS_PORT=$PORT: a port from 1024 to 32760 (it and the next seven are used)"

# ---- install ------------------------------------------------------------------------------

installed() { [[ -x $BIN && -f $STAMP && $(cat "$STAMP") == "$VERSION" ]]; }

install() {
  if installed; then
    return 0
  fi
  command -v go >/dev/null || die "Go is not installed: SeaweedFS is built from its Go module (apt-get install golang-go, or Go from go.dev)"
  say "building weed $VERSION from the Go module proxy (first run only; a few minutes)…"
  local t0=$SECONDS source tmp
  # `go install module@version` refuses a module whose go.mod has replace directives (SeaweedFS's has one), so the
  # module is downloaded and built in place: its own go.mod and go.sum decide every dependency's version.
  source=$(go mod download -json "$MODULE@$VERSION" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])') \
    || die "go mod download $MODULE@$VERSION failed (see above)"
  mkdir -p "$DIR/bin"
  tmp=$DIR/bin/.weed.building
  # -trimpath and no debug symbols: a smaller binary; -buildvcs=false: the module cache is no repository.
  (cd "$source" && go build -buildvcs=false -trimpath -ldflags='-s -w' -o "$tmp" ./weed) \
    || { rm -f "$tmp"; die "go build of weed failed (see above)"; }
  mv -f "$tmp" "$BIN"
  echo "$VERSION" > "$STAMP"
  say "built $BIN in $((SECONDS - t0)) s"
}

need_installed() {
  installed || die "weed $VERSION is not built: run deploy/local/seaweedfs.sh install (or ./dev install)"
}

# ---- the S3 identity ------------------------------------------------------------------------

# The key pair: the environment's, else one made once for this state folder (mode 600), so the services of
# ./dev up and the tests agree with the server without being told.
keys() {
  if [[ -n ${WANGGE_MEDIA_S3_ACCESS_KEY:-} && -n ${WANGGE_MEDIA_S3_SECRET_KEY:-} ]]; then
    printf '%s %s\n' "$WANGGE_MEDIA_S3_ACCESS_KEY" "$WANGGE_MEDIA_S3_SECRET_KEY"
    return
  fi
  mkdir -p "$DIR"
  if [[ ! -s $KEYS ]]; then
    (umask 077 && printf 'wangge%s %s\n' "$(od -An -N7 -tx1 /dev/urandom | tr -d ' \n')" \
      "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" > "$KEYS")
  fi
  cat "$KEYS"
}

# s3.json: one identity, wangge's, allowed everything on every bucket of this private server; no anonymous access.
write_identity() {
  local access secret
  read -r access secret < <(keys)
  (umask 077 && python3 - "$access" "$secret" > "$CONF.new" <<'PY'
import json, sys
print(json.dumps({"identities": [{"name": "wangge",
                                  "credentials": [{"accessKey": sys.argv[1], "secretKey": sys.argv[2]}],
                                  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}, indent=2))
PY
  ) && mv -f "$CONF.new" "$CONF"
}

cmd_env() {
  local access secret
  read -r access secret < <(keys)
  printf 'export WANGGE_MEDIA_S3_ENDPOINT=%q\n' "http://$HOST:$PORT"
  printf 'export WANGGE_MEDIA_S3_BUCKET=%q\n' "$BUCKET"
  printf 'export WANGGE_MEDIA_S3_ACCESS_KEY=%q\n' "$access"
  printf 'export WANGGE_MEDIA_S3_SECRET_KEY=%q\n' "$secret"
}

# ---- lifecycle ----------------------------------------------------------------------------

# Is the process in the pid file alive and really our weed (pids get reused)?
running_pid() { alive "$PIDFILE" "-s3.config=$CONF "; }

s3_healthy() {
  python3 - "http://$HOST:$PORT/healthz" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as answer:
        sys.exit(0 if answer.status == 200 else 1)
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

# The bucket, through the S3 API with the project's own client (the venv's boto3), as the services will use it.
ensure_bucket() {
  local py=$REPO/.venv/bin/python
  [[ -x $py ]] || { say "no .venv yet: the bucket $BUCKET is made by the first upload's client instead"; return 0; }
  local t0=$SECONDS
  # The filer may still be finding its volume server for a moment after the gateway answers /healthz.
  until (eval "$(cmd_env)" && cd "$REPO" && "$py" -m shared.media_s3 ensure-bucket); do
    (( SECONDS - t0 < 30 )) || die "could not create the bucket $BUCKET (see above and $LOG)"
    sleep 1
  done
}

start() {
  need_installed
  local pid
  write_identity
  if pid=$(running_pid); then
    say "already running (pid $pid) on http://$HOST:$PORT"
    durable_writes
    ensure_bucket
    return 0
  fi
  local p
  for (( p=PORT; p<=PORT+7; p++ )); do
    port_open "$p" && die "port $HOST:$p is already in use by another process; set WANGGE_SEAWEEDFS_PORT (it and the next seven)"
  done
  mkdir -p "$DATA" "$RUN"
  [[ -f $LOG ]] && mv -f "$LOG" "$LOG.1"
  say "starting weed server (master, volume, filer, S3) on http://$HOST:$PORT, data $DATA, log $LOG"
  # setsid: its own session, so Ctrl-C in the terminal that ran `./dev up` does not stop it.
  # -ip/-ip.bind 127.0.0.1: loopback only. No telemetry (there is no outside network, and none is wanted), no
  # Iceberg or Lance listeners. Volumes of 64 MB (a photo is ~0.5 MB) so a fresh data folder stays small.
  setsid bash -c "$DAEMON_EXEC" _ "$PIDFILE" "$BIN" server \
    -ip="$HOST" -ip.bind="$HOST" -dir="$DATA" \
    -master.port=$((PORT + 1)) -master.port.grpc=$((PORT + 2)) -master.telemetry=false \
    -master.volumeSizeLimitMB=64 -volume.max=16 \
    -volume.port=$((PORT + 3)) -volume.port.grpc=$((PORT + 4)) \
    -filer -filer.port=$((PORT + 5)) -filer.port.grpc=$((PORT + 6)) \
    -s3 -s3.port="$PORT" -s3.port.grpc=$((PORT + 7)) -s3.port.iceberg=0 -s3.port.lance=0 \
    -s3.config="$CONF" \
    < /dev/null >> "$LOG" 2>&1 &

  local t0=$SECONDS
  while true; do
    sleep 0.5
    if ! pid=$(running_pid); then
      if (( SECONDS - t0 > 5 )); then
        echo "---- last lines of $LOG ----" >&2
        tail -n 20 "$LOG" >&2 || true
        die "weed exited during startup; see $LOG"
      fi
      continue
    fi
    s3_healthy && break
    if (( SECONDS - t0 > START_TIMEOUT )); then
      tail -n 20 "$LOG" >&2 || true
      die "weed (pid $pid) did not answer http://$HOST:$PORT/healthz within ${START_TIMEOUT}s; see $LOG"
    fi
  done
  say "ready (pid $pid) in $((SECONDS - t0)) s: S3 on http://$HOST:$PORT"
  durable_writes
  ensure_bucket
}

# Every write under /buckets/ fsynced before the S3 gateway answers it (SeaweedFS's default is not to): an
# upload wangge answered 201 survives the machine's crash, as with the folder store. Kept in the filer.
# (An address host:port.grpcPort: weed shell would otherwise look for gRPC at port + 10000.)
durable_writes() {
  local out
  out=$(printf 'fs.configure -locationPrefix=/buckets/ -fsync -apply\n' \
        | timeout 60 "$BIN" shell -master="$HOST:$((PORT + 1)).$((PORT + 2))" -filer="$HOST:$((PORT + 5)).$((PORT + 6))" 2>&1) \
    || { echo "$out" >&2; die "weed shell fs.configure (fsync for /buckets/) failed"; }
  grep -q '"fsync": *true' <<< "$out" || { echo "$out" >&2; die "weed shell did not confirm fsync for /buckets/"; }
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    say "not running"
    rm -f "$PIDFILE"
    return 0
  fi
  say "stopping (pid $pid)…"
  # Its parts stop one by one and the rest retry the stopped ones for a while: 10 s, then SIGKILL (the writes are
  # fsynced, and the filer's store keeps a log).
  [[ -z $(stop_pids 10 "$pid") ]] || say "still running after 10s: SIGKILL sent"
  rm -f "$PIDFILE"
  say "stopped"
}

status() {
  if ! installed; then
    echo "seaweedfs: not built (run $0 install)"
    return 3
  fi
  local pid
  if pid=$(running_pid); then
    if s3_healthy; then
      echo "seaweedfs: running (pid $pid), S3 on http://$HOST:$PORT, bucket $BUCKET"
    else
      echo "seaweedfs: running (pid $pid) on http://$HOST:$PORT, NOT healthy (see $LOG)"
    fi
  else
    echo "seaweedfs: stopped (would serve S3 on http://$HOST:$PORT)"
    return 3
  fi
}

usage() {
  sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) cmd_env ;;
  -h|--help|help) usage ;;
  *)
    echo "usage: $0 {install|start|stop|status|env}  (--help for more)" >&2
    exit 2 ;;
esac
