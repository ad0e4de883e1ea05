#!/usr/bin/env bash
# Local Apache Kafka (KRaft, each node a combined broker + controller) for development and tests: one node by
# default, a cluster of three with WANGGE_KAFKA_NODES=3.
#
#   deploy/local/kafka.sh fetch    jars from Maven Central into $STATE/kafka/libs (first run only)
#   deploy/local/kafka.sh start [N]  fetch, format storage once, write config, start, wait until it answers
#                                  (a cluster: every node not running, or node N only)
#   deploy/local/kafka.sh stop [N]   SIGTERM (controlled shutdown), then SIGKILL after a grace period
#                                  (every node of this state folder, single or cluster; or cluster node N only)
#   deploy/local/kafka.sh status   running/stopped, pid, port (one line per node)
#   deploy/local/kafka.sh bootstrap  the bootstrap list clients use (host:port of every node, comma-separated)
#   deploy/local/kafka.sh topics [TopicCommand args]   e.g. `topics --list` (default), `topics --describe`
#   deploy/local/kafka.sh reassign [ReassignPartitionsCommand args]   kafka-reassign-partitions.sh, e.g.
#                                  `reassign --reassignment-json-file plan.json --execute` (a topic given more
#                                  copies: the plan shared/replication.py prints for a topic with fewer)
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
# WANGGE_KAFKA_START_TIMEOUT (seconds, 120), WANGGE_KAFKA_SECURITY (none | scram),
# WANGGE_KAFKA_LIBS (the jars' folder, default $STATE/kafka/libs: a second state folder can reuse a first's jars).
#
# WANGGE_KAFKA_NODES=3 (or 5): a cluster on this machine, for proving what a broker's loss does. Node i
# (1..N) is broker and controller with node.id i; the N controllers are the quorum's voters (static quorum),
# so the cluster goes on while a majority runs. Each node has its own folder <state>/kafka-cluster/node<i>
# (config, data, logs) and pid file <state>/run/kafka-node<i>.pid; the cluster id is made once in
# <state>/kafka-cluster/cluster.id. Ports: WANGGE_KAFKA_PORTS / WANGGE_KAFKA_CONTROLLER_PORTS (comma lists,
# one per node), else node i listens on WANGGE_KAFKA_PORT + 100*(i-1) and its controller on
# WANGGE_KAFKA_CONTROLLER_PORT + 100*(i-1) (19092/19093, 19192/19193, 19292/19293 by default; keep them
# below 32768, outside the kernel's ephemeral range). Heap per node: -Xms128m -Xmx384m unless KAFKA_HEAP_OPTS.
# The broker-side topics (consumer offsets, transactions) and auto-created ones get replication factor
# min(3, N) and min.insync.replicas 2 when that is 3; wangge's own topics get the same from shared/topics.py,
# which reads the factor from the cluster. The cluster's data is apart from the single node's, so switching
# between the two never mixes their storage. The secure profile is single-node only.
#
# WANGGE_KAFKA_SECURITY=scram is the production profile on this machine: a second broker with its
# own data (<state>/kafka-secure, ports 19094/19095 by default) that accepts only SASL/SCRAM-SHA-512
# clients and authorizes every request against ACLs (StandardAuthorizer, deny when no ACL matches).
# Its admin password is generated at the first start into <state>/kafka-secure/admin.password.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=deploy/local/proc-lib.sh
source "$HERE/proc-lib.sh"
STATE=${WANGGE_STATE_DIR:-$REPO/.local}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)   # absolute: it ends up in the config and in pid checks

KAFKA_VERSION=4.1.1
HOST=127.0.0.1
SECURITY=${WANGGE_KAFKA_SECURITY:-none}
NODES=${WANGGE_KAFKA_NODES:-1}
[[ $NODES =~ ^[135]$ ]] || { echo "kafka: ERROR: WANGGE_KAFKA_NODES must be 1, 3 or 5 (a quorum needs a majority), not '$NODES'" >&2; exit 2; }
case $SECURITY in
  none)  BASE_PORT=${WANGGE_KAFKA_PORT:-19092}; BASE_CONTROLLER_PORT=${WANGGE_KAFKA_CONTROLLER_PORT:-19093} ;;
  scram) BASE_PORT=${WANGGE_KAFKA_PORT:-19094}; BASE_CONTROLLER_PORT=${WANGGE_KAFKA_CONTROLLER_PORT:-19095}
         (( NODES == 1 )) || { echo "kafka: ERROR: the secure profile (WANGGE_KAFKA_SECURITY=scram) is single-node only" >&2; exit 2; } ;;
  *) echo "kafka: ERROR: WANGGE_KAFKA_SECURITY must be none or scram, not '$SECURITY'" >&2; exit 2 ;;
esac
# The broker-side replication the nodes are configured with: three copies where there are three nodes, and a
# write acknowledged (acks=all) only once two hold it, so one node's loss loses nothing and stops nothing.
REPLICATION=$(( NODES < 3 ? NODES : 3 ))
MIN_INSYNC=$(( REPLICATION == 3 ? 2 : 1 ))
if (( NODES == 1 )); then
  HEAP=${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
else
  HEAP=${KAFKA_HEAP_OPTS:--Xms128m -Xmx384m}   # three JVMs on a developer's machine
fi
START_TIMEOUT=${WANGGE_KAFKA_START_TIMEOUT:-120}
CLUSTER_DIR=$STATE/kafka-cluster

# The jars are the same for every profile and node: fetched once.
LIBS=${WANGGE_KAFKA_LIBS:-$STATE/kafka/libs}
POM=$HERE/kafka/pom.xml
# The libs folder is complete only when this stamp exists and names the pom's hash: an interrupted
# or outdated fetch is redone, a complete one is never repeated.
LIBS_STAMP=$LIBS/.fetched
RUN=$STATE/run

# nth_port LIST BASE I: the I-th (1-based) entry of a comma list, else BASE + 100*(I-1).
nth_port() {
  local list=$1 base=$2 i=$3 ports
  if [[ -n $list ]]; then
    IFS=, read -r -a ports <<< "$list"
    (( ${#ports[@]} == NODES )) || { echo "kafka: ERROR: '$list' names ${#ports[@]} ports for $NODES nodes" >&2; exit 2; }
    echo "${ports[$((i - 1))]}"
  else
    echo $(( base + 100 * (i - 1) ))
  fi
}

# select_node I: point the per-node variables at node I (0: the single node, 1..N: a cluster node).
select_node() {
  NODE=$1
  if (( NODE == 0 )); then
    PORT=$BASE_PORT; CONTROLLER_PORT=$BASE_CONTROLLER_PORT; NODE_ID=1
    if [[ $SECURITY == scram ]]; then KDIR=$STATE/kafka-secure; else KDIR=$STATE/kafka; fi
    PIDFILE=$RUN/$(basename "$KDIR").pid
    LABEL=kafka
  else
    PORT=$(nth_port "${WANGGE_KAFKA_PORTS:-}" "$BASE_PORT" "$NODE")
    CONTROLLER_PORT=$(nth_port "${WANGGE_KAFKA_CONTROLLER_PORTS:-}" "$BASE_CONTROLLER_PORT" "$NODE")
    NODE_ID=$NODE
    KDIR=$CLUSTER_DIR/node$NODE
    PIDFILE=$RUN/kafka-node$NODE.pid
    LABEL="kafka node $NODE"
  fi
  ADMIN_PASSWORD_FILE=$KDIR/admin.password
  CONF_DIR=$KDIR/config
  CONF=$CONF_DIR/server.properties
  LOG4J_CONF=$CONF_DIR/log4j2.xml
  DATA=$KDIR/data
  LOGS=$KDIR/logs
  SERVER_LOG=$LOGS/server.log
  STDOUT_LOG=$LOGS/kafka.out
}

# The nodes `start` runs: the single node, or 1..N.
nodes() { if (( NODES == 1 )); then echo 0; else seq 1 "$NODES"; fi; }

# Every node: id@host:controller-port, the static quorum of a cluster.
voters() {
  local i out=()
  if (( NODES == 1 )); then echo "1@$HOST:$BASE_CONTROLLER_PORT"; return; fi
  for i in $(seq 1 "$NODES"); do
    out+=("$i@$HOST:$(nth_port "${WANGGE_KAFKA_CONTROLLER_PORTS:-}" "$BASE_CONTROLLER_PORT" "$i")")
  done
  (IFS=,; echo "${out[*]}")
}

bootstrap_list() {
  local i out=()
  if (( NODES == 1 )); then echo "$HOST:$BASE_PORT"; return; fi
  for i in $(seq 1 "$NODES"); do out+=("$HOST:$(nth_port "${WANGGE_KAFKA_PORTS:-}" "$BASE_PORT" "$i")"); done
  (IFS=,; echo "${out[*]}")
}

# A wrong port list is refused here, before anything starts (nth_port's own check runs in subshells).
for list in "${WANGGE_KAFKA_PORTS:-}" "${WANGGE_KAFKA_CONTROLLER_PORTS:-}"; do
  [[ -z $list ]] && continue
  IFS=, read -r -a _ports <<< "$list"
  (( ${#_ports[@]} == NODES )) || { echo "kafka: ERROR: '$list' names ${#_ports[@]} ports for $NODES nodes (WANGGE_KAFKA_NODES)" >&2; exit 2; }
done
select_node "$(nodes | head -n 1)"

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
        -DoutputDirectory="$tmp" -DincludeScope=runtime > "$(dirname "$LIBS")/fetch.log" 2>&1; then
    tail -n 40 "$(dirname "$LIBS")/fetch.log" >&2
    rm -rf "$tmp"
    die "mvn could not fetch the Kafka jars (is Maven Central reachable?); full output in $(dirname "$LIBS")/fetch.log"
  fi
  [[ -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]] || die "fetch finished but kafka_2.13-$KAFKA_VERSION.jar is missing in $tmp"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  pom_hash > "$LIBS_STAMP"
  say "jars ready in $LIBS ($(find "$LIBS" -name "*.jar" | wc -l) jars)"
}

# Is the process in the pid file alive and really our broker (pids get reused)?
running_pid() { alive "$PIDFILE" "kafka.Kafka $CONF "; }

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
  local cluster_tuning=""
  if (( NODES > 1 )); then
    # A follower that stopped fetching (its node killed) leaves the ISR after 10 s instead of 30: until then
    # an acks=all write to a partition it follows waits for it.
    cluster_tuning="replica.lag.time.max.ms=10000"
    # A broker that has not registered with the controller quorum within this gives up and exits (Kafka's default:
    # 60 s). On a loaded machine the other nodes' JVMs may take longer than that to form the quorum: the node waits
    # as long as this script waits for it.
    cluster_tuning+=$'\n'"initial.broker.registration.timeout.ms=$((START_TIMEOUT * 1000))"
  fi
  # Rewritten on every start so port changes apply; the storage format (cluster id, node id) is
  # kept in $DATA/meta.properties and does not depend on these ports.
  cat > "$CONF" <<EOF
# Generated by deploy/local/kafka.sh on every start: edit the script, not this file.
process.roles=broker,controller
node.id=$NODE_ID
# Static quorum (controller.quorum.voters) instead of the dynamic one (--standalone): the voter
# endpoints then live in this file only, so the controller ports can change without reformatting.
controller.quorum.voters=$(voters)
$(listener_config)

log.dirs=$DATA

# $NODES node(s): the broker's own topics (and auto-created ones) with min(3, nodes) copies, and
# min.insync.replicas 2 where there are 3, so an acknowledged write (acks=all) is on two nodes.
offsets.topic.replication.factor=$REPLICATION
transaction.state.log.replication.factor=$REPLICATION
transaction.state.log.min.isr=$MIN_INSYNC
share.coordinator.state.topic.replication.factor=$REPLICATION
share.coordinator.state.topic.min.isr=$MIN_INSYNC
default.replication.factor=$REPLICATION
min.insync.replicas=$MIN_INSYNC
$cluster_tuning
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

new_cluster_id() {
  # A Kafka cluster id is 16 random bytes, base64url without padding, not starting with '-'
  # (what `kafka-storage.sh random-uuid` prints); python is faster than another JVM start.
  python3 -c '
import base64, os
while True:
    u = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
    if not u.startswith("-"):
        print(u); break'
}

# The id this node is formatted with: a fresh one for the single node, the cluster's own (made once, shared by
# every node: nodes formatted with different ids refuse each other) for a cluster node.
cluster_id() {
  if (( NODE == 0 )); then new_cluster_id; return; fi
  if [[ ! -s $CLUSTER_DIR/cluster.id ]]; then
    mkdir -p "$CLUSTER_DIR"
    new_cluster_id > "$CLUSTER_DIR/cluster.id"
  fi
  cat "$CLUSTER_DIR/cluster.id"
}

format_storage() {
  [[ -f $DATA/meta.properties ]] && return 0
  say "formatting storage of $LABEL in $DATA (first run only)…"
  local cluster_id
  cluster_id=$(cluster_id)
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

# prepare: the selected node's ports checked, config written, storage formatted (a JVM of its own: seconds, or
# tens of seconds on a loaded machine). Every node is prepared before any is launched: see launch.
prepare() {
  local p
  for p in "$PORT" "$CONTROLLER_PORT"; do
    if port_open "$p"; then
      die "port $HOST:$p is already in use by another process (another checkout's Kafka, or this one's single node while starting the cluster?). Stop it (./dev down), or move the ports (WANGGE_KAFKA_PORT / WANGGE_KAFKA_CONTROLLER_PORT, WANGGE_KAFKA_PORTS / WANGGE_KAFKA_CONTROLLER_PORTS)."
    fi
  done
  write_config
  format_storage
}

# launch: start the selected node's JVM in the background (prepared). It does not wait: the nodes of a cluster
# are launched together, since each waits for a quorum of the others (a node formatted in between would leave the
# first one alone long enough to give up registering, see write_config).
launch() {
  # Keep the previous run's stdout log for diagnosis; the fresh one is what we wait on.
  [[ -f $STDOUT_LOG ]] && mv -f "$STDOUT_LOG" "$STDOUT_LOG.1"
  if (( NODE == 0 )); then
    say "starting Kafka $KAFKA_VERSION (KRaft, single node), logs in $LOGS"
  else
    say "starting $LABEL of $NODES (KRaft, Kafka $KAFKA_VERSION) on $HOST:$PORT, controller $CONTROLLER_PORT, logs in $LOGS"
  fi
  # setsid: own session, so Ctrl-C in the terminal that ran `./dev up` does not kill the broker.
  # The inner bash writes its own pid and then execs java, so the pid file is java's pid.
  # stdin/stdout/stderr redirected and every other inherited fd closed: nothing keeps a
  # caller's pipe (CI's output, `./dev infra | tail`) open.
  jvm_opts
  # Every partition keeps files open (segment + index files), and test runs create many prefixed
  # topics: lift the open-files limit as far as we are allowed to.
  ulimit -n 100000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  rm -f "$PIDFILE"
  setsid bash -c "$DAEMON_EXEC" _ "$PIDFILE" java "${JVM_OPTS[@]}" kafka.Kafka "$CONF" \
    < /dev/null >> "$STDOUT_LOG" 2>&1 &
}

# wait_started T0: until the selected node says it started and answers (its JVM launched at SECONDS=T0).
wait_started() {
  local t0=$1 pid
  say "waiting for $LABEL on $HOST:$PORT (timeout ${START_TIMEOUT}s)…"
  while true; do
    if ! pid=$(running_pid); then
      # The pid file may not be written yet in the first instant.
      if (( SECONDS - t0 > 5 )); then
        echo "---- last lines of $STDOUT_LOG ----" >&2
        tail -n 30 "$STDOUT_LOG" >&2 || true
        die "$LABEL exited during startup; see $STDOUT_LOG and $SERVER_LOG"
      fi
      sleep 0.5
      continue
    fi
    if grep -q "Kafka Server started" "$STDOUT_LOG" 2>/dev/null && broker_answers; then
      break
    fi
    if (( SECONDS - t0 > START_TIMEOUT )); then
      echo "---- last lines of $SERVER_LOG ----" >&2
      tail -n 30 "$SERVER_LOG" >&2 || true
      die "$LABEL did not answer on $HOST:$PORT within ${START_TIMEOUT}s (pid $pid still running); see $SERVER_LOG and $STDOUT_LOG"
    fi
    sleep 0.5
  done
  say "ready: $LABEL on $HOST:$PORT (pid $pid, started in $((SECONDS - t0))s)"
}

# How many brokers the selected node's metadata lists (a Metadata v4 request naming no topic), or nothing.
brokers_listed() {
  python3 - "$HOST" "$PORT" <<'PY'
import socket, struct, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
    s.settimeout(3)
    client = b"wangge-dev"
    # header v1: api_key=Metadata(3), version 4, correlation id, client id; body: topics = [] (none), no auto-create
    body = struct.pack(">hhih", 3, 4, 43, len(client)) + client + struct.pack(">ib", 0, 0)
    s.sendall(struct.pack(">i", len(body)) + body)
    buf = b""
    while len(buf) < 16:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    s.close()
    _size, corr, _throttle, brokers = struct.unpack(">iiii", buf[:16])
    if corr == 43:
        print(brokers)
except Exception:
    pass
PY
}

# Until every node of the cluster is a registered, unfenced broker in the metadata the selected node serves:
# a node that said "started" may still be unknown to the others for a moment.
wait_all_brokers() {
  local t0=$SECONDS listed
  while true; do
    listed=$(brokers_listed)
    [[ $listed == "$NODES" ]] && return 0
    if (( SECONDS - t0 > START_TIMEOUT )); then
      die "the cluster lists ${listed:-no} brokers of $NODES after ${START_TIMEOUT}s (asked $HOST:$PORT); see the nodes' server.log in $CLUSTER_DIR"
    fi
    sleep 0.5
  done
}

start() {
  local only=${1:-} pid i launched=()
  if [[ -n $only ]]; then
    (( NODES > 1 )) || die "start N names a node of a cluster (WANGGE_KAFKA_NODES=3); the single node is just: start"
    [[ $only =~ ^[0-9]+$ ]] && (( only >= 1 && only <= NODES )) || die "no node '$only' in a cluster of $NODES"
  fi
  fetch
  need_java
  local -A launched_at=()
  for i in $(nodes); do
    [[ -n $only && $i != "$only" ]] && continue
    select_node "$i"
    if pid=$(running_pid); then
      say "$LABEL already running (pid $pid) on $HOST:$PORT"
      continue
    fi
    prepare
    launched+=("$i")
  done
  for i in "${launched[@]}"; do
    select_node "$i"
    launch
    launched_at[$i]=$SECONDS   # each node's timeout counts from its own launch
  done
  for i in "${launched[@]}"; do
    select_node "$i"
    wait_started "${launched_at[$i]}"
  done
  if (( NODES > 1 )); then
    wait_all_brokers
    say "cluster of $NODES ready: bootstrap $(bootstrap_list)"
  fi
}

# stop_nodes I…: SIGTERM every running node among these at once (controlled shutdown), SIGKILL what still runs
# after 30 s. At once, not one after another: the last node left alone has no quorum to grant its controlled
# shutdown and would wait out the grace period; together, a cluster stops in seconds.
stop_nodes() {
  local i pid pids=() labels=() killed
  for i in "$@"; do
    select_node "$i"
    if ! pid=$(running_pid); then
      rm -f "$PIDFILE"
      continue
    fi
    say "stopping $LABEL (pid $pid)…"
    pids+=("$pid")
    labels+=("$LABEL")
  done
  (( ${#pids[@]} )) || return 0
  killed=$(stop_pids 30 "${pids[@]}")
  [[ -z $killed ]] || say "still running after 30s, SIGKILL sent: pid $(echo $killed)"
  for i in "$@"; do
    select_node "$i"
    rm -f "$PIDFILE"
  done
  say "stopped: ${labels[*]}"
}

# The cluster nodes that have a pid file in this state folder, highest first (whatever WANGGE_KAFKA_NODES says
# now: `./dev down` stops a cluster started with another setting too).
cluster_nodes_present() {
  local f
  for f in "$RUN"/kafka-node*.pid; do
    [[ -e $f ]] || continue
    f=${f##*/kafka-node}
    echo "${f%.pid}"
  done | sort -rn
}

stop() {
  local only=${1:-} nodes_here
  if [[ -n $only ]]; then
    (( NODES > 1 )) || die "stop N names a node of a cluster (WANGGE_KAFKA_NODES=3); the single node is just: stop"
    [[ $only =~ ^[0-9]+$ ]] && (( only >= 1 && only <= NODES )) || die "no node '$only' in a cluster of $NODES"
    stop_nodes "$only"
    return
  fi
  nodes_here=$(cluster_nodes_present)
  if [[ $SECURITY == none && -n $nodes_here ]]; then
    # shellcheck disable=SC2086  # a list of numbers
    stop_nodes $nodes_here
  fi
  select_node 0
  if running_pid >/dev/null; then
    stop_nodes 0
  else
    rm -f "$PIDFILE"
    [[ -n $nodes_here ]] || say "not running"
  fi
  return 0
}

# One line per node; exit code 3 when a node that should run does not.
status() {
  local pid i rc=0
  for i in $(nodes); do
    select_node "$i"
    if pid=$(running_pid); then
      if broker_answers; then
        echo "$LABEL: running (pid $pid), bootstrap $HOST:$PORT, answering"
      else
        echo "$LABEL: running (pid $pid), bootstrap $HOST:$PORT, NOT answering yet (see $SERVER_LOG)"
      fi
    else
      echo "$LABEL: stopped (bootstrap would be $HOST:$PORT)"
      rc=3
    fi
  done
  if (( NODES > 1 )) && (( rc == 0 )); then
    select_node 1
    echo "kafka cluster: $(brokers_listed || true) of $NODES brokers listed, bootstrap $(bootstrap_list)"
  elif (( NODES == 1 )) && [[ $SECURITY == none ]]; then
    # A cluster left running from a WANGGE_KAFKA_NODES=3 start shows too (`./dev down` stops it).
    for i in $(cluster_nodes_present | sort -n); do
      select_node "$i"
      pid=$(running_pid) && echo "kafka node $i (of a cluster: WANGGE_KAFKA_NODES=3 ./dev status): running (pid $pid), $HOST:$PORT"
    done
  fi
  return "$rc"
}

topics() {
  [[ -f $LIBS_STAMP ]] || die "jars not fetched yet: run $0 fetch"
  [[ $# -gt 0 ]] || set -- --list
  # Quiet tool logging on stderr; the log4j file of the broker would write into server.log.
  java -Xmx256m -Dlog4j2.level=warn -cp "$LIBS/*" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$(bootstrap_list)" "$@"
}

reassign() {
  [[ -f $LIBS_STAMP ]] || die "jars not fetched yet: run $0 fetch"
  java -Xmx256m -Dlog4j2.level=warn -cp "$LIBS/*" org.apache.kafka.tools.reassign.ReassignPartitionsCommand \
    --bootstrap-server "$(bootstrap_list)" "$@"
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
  start)  start "${2:-}" ;;
  stop)   stop "${2:-}" ;;
  status) status ;;
  bootstrap) bootstrap_list ;;
  topics) shift; topics "$@" ;;
  reassign) shift; reassign "$@" ;;
  *)
    echo "usage: $0 {fetch|start [N]|stop [N]|status|bootstrap|topics [TopicCommand args]|reassign [args]|setup-security SPEC|admin-password}" >&2
    exit 2 ;;
esac
