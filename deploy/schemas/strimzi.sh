#!/usr/bin/env bash
# Remakes deploy/schemas/strimzi/*.json: the CRDs of Strimzi's Kafka, KafkaNodePool, KafkaTopic and KafkaUser (API
# kafka.strimzi.io/v1), generated the way Strimzi's own build makes its install files — its crd-generator run over
# its api classes — from the released artifacts io.strimzi:api and io.strimzi:crd-generator on Maven Central
# (neither jar carries the CRD YAML itself), then their openAPIV3Schema extracted (extract.py).
#
#   deploy/schemas/strimzi.sh [VERSION]      (default 1.2.0; needs mvn, and JAVA: a Java 21+ runtime — Strimzi 1.x's
#                                             classes are Java 21's; the JDK 17 that ./dev uses is too old)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
VERSION=${1:-1.2.0}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cat > "$WORK/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>wangge</groupId><artifactId>strimzi-crds</artifactId><version>0</version>
  <dependencies>
    <dependency><groupId>io.strimzi</groupId><artifactId>api</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>io.strimzi</groupId><artifactId>crd-generator</artifactId><version>$VERSION</version></dependency>
  </dependencies>
</project>
POM
mvn -q -B -Dstyle.color=never -f "$WORK/pom.xml" dependency:copy-dependencies -DoutputDirectory="$WORK/libs" \
    -DincludeScope=runtime > "$WORK/mvn.log" 2>&1 || { tail -n 40 "$WORK/mvn.log" >&2; exit 1; }

# The arguments of Strimzi's api/pom.xml (generate-crd-co-install-v1) for the four kinds wangge uses.
"${JAVA:-java}" -Xmx512m -cp "$WORK/libs/*" io.strimzi.crdgenerator.CrdGenerator \
    --label app:strimzi --label strimzi.io/crd-install:true --target-kube 1.16+ \
    --crd-api-version v1 --api-versions v1 --storage-version v1 --yaml \
    "io.strimzi.api.kafka.model.kafka.Kafka=$WORK/040-Crd-kafka.yaml" \
    "io.strimzi.api.kafka.model.topic.KafkaTopic=$WORK/043-Crd-kafkatopic.yaml" \
    "io.strimzi.api.kafka.model.user.KafkaUser=$WORK/044-Crd-kafkauser.yaml" \
    "io.strimzi.api.kafka.model.nodepool.KafkaNodePool=$WORK/045-Crd-kafkanodepool.yaml"

rm -f "$HERE"/strimzi/*.json
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
cd "$REPO" && "$PYTHON" -m deploy.schemas.extract strimzi \
    "Strimzi $VERSION: io.strimzi:crd-generator $VERSION run over io.strimzi:api $VERSION (Maven Central) with the arguments of Strimzi's api/pom.xml" \
    "$WORK"/04*.yaml
