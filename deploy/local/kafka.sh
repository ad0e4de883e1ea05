#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, combined broker + controller) for development and tests.
#
#   deploy/local/kafka.sh fetch    jars from Maven Central into $STATE/kafka/libs (first run only)
#   deploy/local/kafka.sh start    fetch, format storage once, write config, start, wait until it answers
#   deploy/local/kafka.sh stop     SIGTERM (controlled shutdown), then SIGKILL after a grace period
#   deploy/local/kafka.sh status   running/stopped, pid, port
#   deploy/local/kafka.sh topics [TopicCommand args]   e.g. `topics --list` (default), `topics --describe`
#
# Why Maven and not the release tarball: our machines reach Maven Central but not the Apache
# mirrors. The broker is just jars + `java kafka.Kafka server.properties`, which is what
# bin/kafka-server-start.sh does too.
#
#   deploy/local/kafka.sh setup-security SPEC   (secure profile) SCRAM users and ACLs from a spec file
#                                                 (python -m shared.kafka_security plan writes one)
#
# Environment: WANGGE_STATE_DIR (default <repo>/.local), WANGGE_KAFKA_PORT (19092),
# WANGGE_KAFKA_CONTROLLER_PORT (19093), KAFKA_HEAP_OPTS (-Xms256m -Xmx512m),
# WANGGE_KAFKA_START_TIMEOUT (seconds, 120), WANGGE_KAFKA_SECURITY (none | scram).
#
# WANGGE_KAFKA_SECURITY=scram is the production profile on this machine: a second broker with its
# own data (<state>/kafka-secure, ports 19094/19095 by default) that accepts only SASL/SCRAM-SHA-512
# clients and authorizes every request against ACLs (StandardAuthorizer, deny when no ACL matches).
# Its admin password is generated at the first start into <state>/kafka-secure/admin.password.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
STATE=${WANGGE_STATE_DIR:-$REPO/.local}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)   # absolute: it ends up in the config and in pid checks

KAFKA_VERSION=4.1.1
HOST=127.0.0.1
SECURITY=${WANGGE_KAFKA_SECURITY:-none}
case $SECURITY in
  none)  PORT=${WANGGE_KAFKA_PORT:-19092}; CONTROLLER_PORT=${WANGGE_KAFKA_CONTROLLER_PORT:-19093}; KDIR=$STATE/kafka ;;
  scram) PORT=${WANGGE_KAFKA_PORT:-19094}; CONTROLLER_PORT=${WANGGE_KAFKA_CONTROLLER_PORT:-19095}; KDIR=$STATE/kafka-secure ;;
  *) echo "kafka: ERROR: WANGGE_KAFKA_SECURITY must be none or scram, not '$SECURITY'" >&2; exit 2 ;;
esac
HEAP=${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
START_TIMEOUT=${WANGGE_KAFKA_START_TIMEOUT:-120}

# The jars are the same for both profiles: fetched once.
LIBS=$STATE/kafka/libs
ADMIN_PASSWORD_FILE=$KDIR/admin.password
CONF_DIR=$KDIR/config
CONF=$CONF_DIR/server.properties
LOG4J_CONF=$CONF_DIR/log4j2.xml
DATA=$KDIR/data
LOGS=$KDIR/logs
SERVER_LOG=$LOGS/server.log
STDOUT_LOG=$LOGS/kafka.out
RUN=$STATE/run
PIDFILE=$RUN/$(basename "$KDIR").pid
POM=$HERE/kafka/pom.xml
# The libs folder is complete only when this stamp exists and names the pom's hash: an interrupted
# or outdated fetch is redone, a complete one is never repeated.
LIBS_STAMP=$LIBS/.fetched

# Body of `bash -c` that starts the broker: write own pid to $1, close inherited fds > 2, exec.
# shellcheck disable=SC2016  # expanded by the inner bash, not here
# shellcheck disable=SC2016  # expanded by the inner bash, not here
DAEMON_EXEC='echo $$ > "$1"; shift
for fd in /proc/self/fd/*; do fd=${fd##*/}; case $fd in 0|1|2) ;; *) eval "exec $fd>&-" ;; esac; done
exec "$@"'

say() { printf 'kafka: %s\n' "$*"; }
die() { printf 'kafka: ERROR: %s\n' "$*" >&2; exit 1; }

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

need_java() {
  command -v java >/dev/null || die "java not found: install a JDK 17+ (Debian: apt-get install -y openjdk-17-jre-headless)"
}

fetch() {
  if [[ -f $LIBS_STAMP && $(cat "$LIBS_STAMP") == "$(pom_hash)" ]]; then
    [[ ${1:-} == verbose ]] && say "jars already fetched ($LIBS)"
    return 0
  fi
  need_java
  command -v mvn >/dev/null || die "mvn not found: install Maven (Debian: apt-get install -y maven)"
  say "fetching Kafka $KAFKA_VERSION jars from Maven Central (first run only, ~10-60 s)…"
  local tmp=$LIBS.tmp
  rm -rf "$tmp"
  mkdir -p "$(dirname "$LIBS")"
  # -B: no colour codes/progress bars in CI logs. Into a temp folder first, so an interrupted
  # download never looks like a complete one.
  # Maven's own output goes to a file, shown only when it fails.
  if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -DoutputDirectory="$tmp" -DincludeScope=runtime > "$STATE/kafka/fetch.log" 2>&1; then
    tail -n 40 "$STATE/kafka/fetch.log" >&2
    rm -rf "$tmp"
    die "mvn could not fetch the Kafka jars (is Maven Central reachable?); full output in $KDIR/fetch.log"
  fi
  [[ -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]] || die "fetch finished but kafka_2.13-$KAFKA_VERSION.jar is missing in $tmp"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  pom_hash > "$LIBS_STAMP"
  say "jars ready in $LIBS ($(find "$LIBS" -name "*.jar" | wc -l) jars)"
}

# Is the process in the pid file alive and really our broker (pids get reused)?
running_pid() {
  [[ -f $PIDFILE ]] || return 1
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "kafka.Kafka $CONF" || return 1
  echo "$pid"
}

port_open() {  # port_open PORT: does something accept TCP connections there?
  python3 - "$HOST" "$1" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}

# A real round trip, not just an open port: send an ApiVersions (v0) request and expect an answer
# with error_code 0. Stdlib only, ~30 ms, unlike a JVM-based CLI tool (~3 s).
broker_answers() {
  python3 - "$HOST" "$PORT" <<'PY'
import socket, struct, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
    s.settimeout(3)
    client = b"wangge-dev"
    body = struct.pack(">hhih", 18, 0, 42, len(client)) + client  # api_key=ApiVersions, v0, corr id
    s.sendall(struct.pack(">i", len(body)) + body)
    buf = b""
    while len(buf) < 10:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    s.close()
    _size, corr, err = struct.unpack(">iih", buf[:10])
    sys.exit(0 if corr == 42 and err == 0 else 1)
except Exception:
    sys.exit(1)
PY
}

write_config() {
  mkdir -p "$CONF_DIR" "$DATA" "$LOGS" "$RUN"
  # Rewritten on every start so port changes apply; the storage format (cluster id, node id) is
  # kept in $DATA/meta.properties and does not depend on these ports.
  cat > "$CONF" <<EOF
# Generated by deploy/local/kafka.sh on every start: edit the script, not this file.
process.roles=broker,controller
node.id=1
# Static quorum (controller.quorum.voters) instead of the dynamic one (--standalone): the voter
# endpoint then lives in this file only, so the controller port can change without reformatting.
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
$(listener_config)

log.dirs=$DATA

# One node: every internal topic with replication factor 1.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
# Fewer partitions for the internal topics than the default 50: they are created on the first
# consumer group / transaction, and 50 partitions make that first call slow on a 2-core box.
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10

auto.create.topics.enable=$([[ $SECURITY == none ]] && echo true || echo false)
num.partitions=3
# Tests start and stop consumers all the time: do not wait 3 s before the first rebalance.
group.initial.rebalance.delay.ms=0

num.network.threads=2
num.io.threads=4
log.retention.hours=168
log.segment.bytes=104857600
EOF

  # Kafka 4 logs with log4j2. XML config: needs no extra jars (YAML would need jackson-yaml).
  # server.log gets INFO and up; the stdout log (kafka.out) gets warnings, errors and the
  # "Kafka Server started" line, which start() waits for.
  cat > "$LOG4J_CONF" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by deploy/local/kafka.sh on every start. -->
<Configuration status="warn">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
    <RollingFile name="server" fileName="$SERVER_LOG" filePattern="$SERVER_LOG.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="20 MB"/></Policies>
      <DefaultRolloverStrategy max="5"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="info">
      <AppenderRef ref="server"/>
      <AppenderRef ref="stdout" level="warn"/>
    </Root>
    <Logger name="kafka.server.KafkaRaftServer" level="info">
      <AppenderRef ref="stdout"/>
    </Logger>
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="org.apache.kafka.controller" level="info"/>
    <Logger name="state.change.logger" level="warn"/>
  </Loggers>
</Configuration>
EOF
}

# The listeners: plain for development; SCRAM + ACLs for the secure (production) profile.
listener_config() {
  if [[ $SECURITY == none ]]; then
    cat <<EOF
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
EOF
    return
  fi
  cat <<EOF
listeners=SASL_PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=SASL_PLAINTEXT://$HOST:$PORT
inter.broker.listener.name=SASL_PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(admin_password)";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
# admin: the operator's principal. ANONYMOUS: the broker's own requests to its controller over the
# loopback-only CONTROLLER listener of this combined node (it has no other peer).
super.users=User:admin;User:ANONYMOUS
EOF
}

admin_password() {
  if [[ ! -s $ADMIN_PASSWORD_FILE ]]; then
    mkdir -p "$KDIR"
    python3 -c 'import secrets; print(secrets.token_urlsafe(24))' > "$ADMIN_PASSWORD_FILE"
    chmod 600 "$ADMIN_PASSWORD_FILE"
  fi
  cat "$ADMIN_PASSWORD_FILE"
}

# The JVM options bin/kafka-run-class.sh would use, as an array (paths may contain spaces).
jvm_opts() {
  local heap
  read -r -a heap <<< "$HEAP"   # KAFKA_HEAP_OPTS is a space-separated option list
  JVM_OPTS=("${heap[@]}" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
    -Djava.awt.headless=true "-Dlog4j2.configurationFile=$LOG4J_CONF"
    "-Dkafka.logs.dir=$LOGS" -cp "$LIBS/*")
}

format_storage() {
  [[ -f $DATA/meta.properties ]] && return 0
  say "formatting storage in $DATA (first run only)…"
  # A Kafka cluster id is 16 random bytes, base64url without padding, not starting with '-'
  # (what `kafka-storage.sh random-uuid` prints); python is faster than another JVM start.
  local cluster_id
  cluster_id=$(python3 -c '
import base64, os
while True:
    u = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
    if not u.startswith("-"):
        print(u); break')
  # Tools log to stderr via the same log4j config; keep their output for diagnosis.
  local scram=()
  [[ $SECURITY == scram ]] && scram=(--add-scram "SCRAM-SHA-512=[name=admin,password=$(admin_password)]")
  if ! java -Xmx256m -Dlog4j2.configurationFile="$LOG4J_CONF" -cp "$LIBS/*" \
        kafka.tools.StorageTool format --config "$CONF" --cluster-id "$cluster_id" "${scram[@]}" \
        > "$LOGS/format.log" 2>&1; then
    cat "$LOGS/format.log" >&2
    die "formatting storage failed (see $LOGS/format.log)"
  fi
  say "storage formatted (cluster id $cluster_id)"
}

start() {
  local pid
  if pid=$(running_pid); then
    say "already running (pid $pid) on $HOST:$PORT"
    return 0
  fi
  fetch
  need_java
  for p in "$PORT" "$CONTROLLER_PORT"; do
    if port_open "$p"; then
      die "port $HOST:$p is already in use by another process (another checkout's Kafka?). Stop it, or set WANGGE_KAFKA_PORT / WANGGE_KAFKA_CONTROLLER_PORT."
    fi
  done
  write_config
  format_storage

  # Keep the previous run's stdout log for diagnosis; the fresh one is what we wait on.
  [[ -f $STDOUT_LOG ]] && mv -f "$STDOUT_LOG" "$STDOUT_LOG.1"
  say "starting Kafka $KAFKA_VERSION (KRaft, single node), logs in $LOGS"
  # setsid: own session, so Ctrl-C in the terminal that ran `./dev up` does not kill the broker.
  # The inner bash writes its own pid and then execs java, so the pid file is java's pid.
  # stdin/stdout/stderr redirected and every other inherited fd closed: nothing keeps a
  # caller's pipe (CI's output, `./dev infra | tail`) open.
  jvm_opts
  # Every partition keeps files open (segment + index files), and test runs create many prefixed
  # topics: lift the open-files limit as far as we are allowed to.
  ulimit -n 100000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  setsid bash -c "$DAEMON_EXEC" _ "$PIDFILE" java "${JVM_OPTS[@]}" kafka.Kafka "$CONF" \
    < /dev/null >> "$STDOUT_LOG" 2>&1 &

  say "waiting for Kafka on $HOST:$PORT (timeout ${START_TIMEOUT}s)…"
  local t0=$SECONDS
  while true; do
    sleep 0.5
    if ! pid=$(running_pid); then
      # The pid file may not be written yet in the first instant.
      if (( SECONDS - t0 > 5 )); then
        echo "---- last lines of $STDOUT_LOG ----" >&2
        tail -n 30 "$STDOUT_LOG" >&2 || true
        die "Kafka exited during startup; see $STDOUT_LOG and $SERVER_LOG"
      fi
      continue
    fi
    if grep -q "Kafka Server started" "$STDOUT_LOG" 2>/dev/null && broker_answers; then
      break
    fi
    if (( SECONDS - t0 > START_TIMEOUT )); then
      echo "---- last lines of $SERVER_LOG ----" >&2
      tail -n 30 "$SERVER_LOG" >&2 || true
      die "Kafka did not answer on $HOST:$PORT within ${START_TIMEOUT}s (pid $pid still running); see $SERVER_LOG and $STDOUT_LOG"
    fi
  done
  say "ready: bootstrap $HOST:$PORT (pid $pid, started in $((SECONDS - t0))s)"
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    say "not running"
    rm -f "$PIDFILE"
    return 0
  fi
  say "stopping (pid $pid)…"
  kill -TERM "$pid" 2>/dev/null || true
  # A single KRaft node shuts down in a few seconds; give it 30 before pulling the plug.
  for _ in $(seq 1 60); do
    [[ -d /proc/$pid ]] || break
    sleep 0.5
  done
  if [[ -d /proc/$pid ]]; then
    say "still running after 30s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$PIDFILE"
  say "stopped"
}

status() {
  local pid
  if pid=$(running_pid); then
    if broker_answers; then
      echo "kafka: running (pid $pid), bootstrap $HOST:$PORT, answering"
    else
      echo "kafka: running (pid $pid), bootstrap $HOST:$PORT, NOT answering yet (see $SERVER_LOG)"
    fi
  else
    echo "kafka: stopped (bootstrap would be $HOST:$PORT)"
    return 3
  fi
}

topics() {
  [[ -f $LIBS_STAMP ]] || die "jars not fetched yet: run $0 fetch"
  [[ $# -gt 0 ]] || set -- --list
  # Quiet tool logging on stderr; the log4j file of the broker would write into server.log.
  java -Xmx256m -Dlog4j2.level=warn -cp "$LIBS/*" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$HOST:$PORT" "$@"
}

# SCRAM users and ACLs (secure profile) from a spec: lines "user<TAB>name<TAB>password" and
# "acl<TAB>principal<TAB>resource type<TAB>name<TAB>pattern type<TAB>operation". One JVM for all.
setup_security() {
  [[ $SECURITY == scram ]] || die "setup-security is for WANGGE_KAFKA_SECURITY=scram"
  [[ -f ${1:-} ]] || die "usage: $0 setup-security SPECFILE"
  running_pid >/dev/null || die "the secure broker is not running: $0 start first"
  java -Xmx256m -Dlog4j2.level=warn -cp "$LIBS/*" "$HERE/kafka/SecuritySetup.java" "$HOST:$PORT" "$(admin_password)" "$1"
}

case "${1:-}" in
  fetch)  fetch verbose ;;
  setup-security) shift; setup_security "$@" ;;
  admin-password) admin_password ;;
  start)  start ;;
  stop)   stop ;;
  status) status ;;
  topics) shift; topics "$@" ;;
  *)
    echo "usage: $0 {fetch|start|stop|status|topics [TopicCommand args]|setup-security SPEC|admin-password}" >&2
    exit 2 ;;
esac
