#!/bin/bash
# One-shot (the kafka-acls container, apache/kafka image): the production profile's ACLs (kafka-acls.tsv) on the
# compose Kafka, as its administrator. Lines of one principal, resource type, pattern type and set of operations are
# given to one kafka-acls.sh call (each is a JVM start). Adding an ACL that exists changes nothing: safe to re-run.
set -euo pipefail

SPEC=${1:-/etc/wangge/kafka-acls.tsv}
BOOTSTRAP=${WANGGE_KAFKA_BOOTSTRAP:-kafka:9092}
ACLS=${KAFKA_ACLS:-/opt/kafka/bin/kafka-acls.sh}
CONFIG=/tmp/admin.properties
cat > "$CONFIG" <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$WANGGE_KAFKA_ADMIN_PASSWORD";
PROPS

# principal|TYPE|PATTERN|name -> its operations, then principal|TYPE|PATTERN|operations -> its names.
declare -A ops names
while IFS=$'\t' read -r kind principal type name pattern op; do
  [[ $kind == acl ]] || continue
  key="$principal|$type|$pattern|$name"
  ops[$key]="${ops[$key]:-}${ops[$key]:+ }$op"
done < "$SPEC"
for key in "${!ops[@]}"; do
  IFS='|' read -r principal type pattern name <<< "$key"
  group="$principal|$type|$pattern|$(tr ' ' '\n' <<< "${ops[$key]}" | sort | tr '\n' ' ')"
  names[$group]="${names[$group]:-}${names[$group]:+$'\t'}$name"
done

calls=0
for group in "${!names[@]}"; do
  IFS='|' read -r principal type pattern operations <<< "$group"
  args=(--bootstrap-server "$BOOTSTRAP" --command-config "$CONFIG" --add --allow-principal "User:$principal"
        --resource-pattern-type "${pattern,,}")
  # kafka-acls.sh spells operations as its help lists them: READ → Read, DESCRIBE_CONFIGS → DescribeConfigs.
  for op in $operations; do
    args+=(--operation "$(awk -F_ '{for (i = 1; i <= NF; i++) printf "%s%s", toupper(substr($i, 1, 1)), tolower(substr($i, 2))}' <<< "$op")")
  done
  IFS=$'\t' read -r -a resources <<< "${names[$group]}"
  case $type in
    TOPIC) for r in "${resources[@]}"; do args+=(--topic "$r"); done ;;
    GROUP) for r in "${resources[@]}"; do args+=(--group "$r"); done ;;
    CLUSTER) args+=(--cluster) ;;
    *) echo "kafka-acls: unknown resource type $type" >&2; exit 2 ;;
  esac
  "$ACLS" "${args[@]}" > /dev/null
  calls=$((calls + 1))
done
echo "kafka-acls: $(grep -c '^acl' "$SPEC") ACLs in place ($calls kafka-acls.sh calls)"
