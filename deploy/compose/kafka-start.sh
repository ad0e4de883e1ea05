#!/bin/bash
# The compose Kafka's start (apache/kafka image, KRaft, one combined node) in the production profile: SASL/SCRAM-SHA-512
# on every client listener, every request authorized against ACLs (StandardAuthorizer, deny when none matches),
# auto-creation of topics off. Its SCRAM users — the administrator and one per process — are created when the data
# volume is formatted (its first start), with the passwords of WANGGE_KAFKA_<USER>_PASSWORD; the ACLs are applied by
# the kafka-acls container (kafka-acls.sh). Changing a password later: kafka-configs.sh --alter … --entity-type users
# as admin, or a fresh volume. Passwords: letters, digits, '-' and '_' (they are written into a JAAS line).
set -euo pipefail

CONF=/tmp/wangge/server.properties
mkdir -p /tmp/wangge
for user in ADMIN INTAKE ROUTING SUPERVISION NOTIFY BRIDGE; do
  var=WANGGE_KAFKA_${user}_PASSWORD
  [[ ${!var:-} =~ ^[A-Za-z0-9_-]{16,}$ ]] || { echo "kafka: $var must be 16 or more letters, digits, - or _" >&2; exit 2; }
done

cat > "$CONF" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@kafka:9093
# SASL for the containers (kafka:9092) and for clients on the Docker host (127.0.0.1:19092); the controller's
# listener is reached by this node alone.
listeners=SASL_PLAINTEXT://:9092,CONTROLLER://:9093,HOST://:19092
advertised.listeners=SASL_PLAINTEXT://kafka:9092,HOST://127.0.0.1:19092
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT,HOST:SASL_PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
controller.listener.names=CONTROLLER
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$WANGGE_KAFKA_ADMIN_PASSWORD";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
# admin: the operator's principal (topics, the credential registry). ANONYMOUS: this node's broker asking its own
# controller over the CONTROLLER listener, which no other container reaches (it is not published).
super.users=User:admin;User:ANONYMOUS
auto.create.topics.enable=false
num.partitions=3
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.dirs=/var/lib/kafka/data
PROPS

# The administrator's client settings, for the healthcheck and the kafka-acls container.
cat > /tmp/wangge/admin.properties <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$WANGGE_KAFKA_ADMIN_PASSWORD";
PROPS

scram=()
for user in admin intake routing supervision notify bridge; do
  var=WANGGE_KAFKA_${user^^}_PASSWORD
  scram+=(--add-scram "SCRAM-SHA-512=[name=$user,password=${!var}]")
done
# --ignore-formatted: a volume formatted before keeps its data and its users.
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --cluster-id "$CLUSTER_ID" --config "$CONF" "${scram[@]}"
exec /opt/kafka/bin/kafka-server-start.sh "$CONF"
