"""The shipped deployment files, checked by the schemas their tools check them with, and held to the code.

- Every object in deploy/k8s against its kind's schema (deploy/validate.py): Kubernetes' own kinds with
  kubernetes-validate (strict), Strimzi's and KEDA's custom resources with their CRDs' schemas (deploy/schemas/);
  and a broken copy of each kind of file is refused, so the check bites. (The kustomization and the compose file go
  through their tools' own Go code: tests/integration/test_deploy_validators.py.)
- What they must say: Strimzi's Kafka (KRaft, 3 nodes, RF 3 / min ISR 2, SCRAM, ACLs) with the contract's topics
  exactly as shared/topics.py makes them and each process's user with exactly the ACLs of shared/kafka_security.py;
  each service (and the live figures) a Deployment with probes, resources, a disruption budget and autoscaling on
  its consumer groups' lag; the production profile with a secret, a database role, a signing key and a Kafka user
  per service; network policies that let only the front door in; compose running the same profile.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from deploy.validate import (
    COMPOSE, K8S, Problem, check_manifests, crd_schemas, documents, manifest_files,
)
from shared.kafka_security import DEFAULT_BRIDGES, SERVICES, acl_plan, bridge_principal
from shared.topics import Topics

BRIDGES = tuple(bridge_principal(b) for b in DEFAULT_BRIDGES)  # each reporting bridge its own user

pytestmark = pytest.mark.unit

COMPOSE_FILE = COMPOSE / "docker-compose.yml"
# Every process that consumes, with its Deployment's name, its Kafka user and its Secret.
PROCESSES = {
    "intake": ("intake", "wangge-intake"),
    "routing": ("routing", "wangge-routing"),
    "supervision": ("supervision", "wangge-supervision"),
    "notify": ("notify", "wangge-notify"),
    "supervision-live": ("supervision", "wangge-supervision"),
}
# The consumer groups each one's work comes through (shared/runtime.py group_id, each bootstrap's consume()).
WORK_GROUPS = {
    "intake": {("wangge-intake", "wangge.reports")},
    "routing": {("wangge-routing", "wangge.cases")},
    "supervision": {("wangge-supervision", "wangge.cases"), ("wangge-supervision-updates", "wangge.task-updates")},
    "notify": {("wangge-notify", "wangge.cases"), ("wangge-notify-contacts", "wangge.contacts")},
    "supervision-live": {("wangge-supervision-live", "wangge.cases")},
}


def objects(k8s: Path = K8S) -> list[tuple[Path, dict]]:
    return [(path, doc) for path in manifest_files(k8s) for doc in documents(path)]


def of_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in objects() if doc["kind"] == kind}


def container(deployment: dict) -> dict:
    [one] = deployment["spec"]["template"]["spec"]["containers"]
    return one


# --- the validators -------------------------------------------------------------------------------------------------

def test_every_object_in_deploy_k8s_is_valid_against_its_schema():
    found = objects()
    kinds = {doc["kind"] for _, doc in found}
    assert kinds >= {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "Kafka", "KafkaNodePool",
                     "KafkaTopic", "KafkaUser", "ScaledObject", "TriggerAuthentication"}
    assert check_manifests() == []


def test_the_custom_resources_are_checked_against_their_crds_schemas_not_waved_through():
    schemas = crd_schemas()
    for api_version, kind in [("kafka.strimzi.io/v1", "Kafka"), ("kafka.strimzi.io/v1", "KafkaNodePool"),
                              ("kafka.strimzi.io/v1", "KafkaTopic"), ("kafka.strimzi.io/v1", "KafkaUser"),
                              ("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")]:
        assert (api_version, kind) in schemas, (api_version, kind)


def broken_copy(tmp_path: Path, file: str, change) -> list[Problem]:
    """deploy/k8s copied, one object of `file` changed by `change(doc)`, the copy checked."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    docs = list(documents(copy / file))
    change(docs)
    (copy / file).write_text(yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return check_manifests(copy)


def first(docs: list[dict], kind: str) -> dict:
    return next(d for d in docs if d["kind"] == kind)


@pytest.mark.parametrize(("file", "change", "expected"), [
    # Kubernetes' own kinds (kubernetes-validate, strict)
    ("intake.yaml", lambda d: container(first(d, "Deployment")).update(livenessProbes={}),
     "'livenessProbes' was unexpected"),
    ("intake.yaml", lambda d: first(d, "Deployment")["spec"].update(replicas="two"), "'two' is not of type"),
    ("intake.yaml", lambda d: first(d, "PodDisruptionBudget")["spec"].update(minAvailabel=1),
     "'minAvailabel' was unexpected"),
    ("network-policies.yaml", lambda d: d[0]["spec"].update(policyTypes="Ingress"), "is not of type 'array'"),
    # Strimzi's (their CRDs' schemas)
    ("kafka-topics.yaml", lambda d: first(d, "KafkaTopic")["spec"].update(partitions="six"),
     "'six' is not of type 'integer'"),
    ("kafka-topics.yaml", lambda d: first(d, "KafkaTopic")["spec"].update(replicationFactor=3),
     "'replicationFactor' was unexpected"),
    ("kafka-users.yaml", lambda d: first(d, "KafkaUser")["spec"]["authentication"].update(type="scram-sha-1"),
     "'scram-sha-1' is not one of"),
    ("kafka-cluster.yaml", lambda d: first(d, "Kafka")["spec"]["kafka"]["listeners"][0].update(port="9092"),
     "'9092' is not of type 'integer'"),
    ("kafka-cluster.yaml", lambda d: first(d, "KafkaNodePool")["spec"].update(role=["broker"]),
     "'role' was unexpected"),
    ("kafka-cluster.yaml", lambda d: first(d, "Kafka")["metadata"].update(name="Wangge_Cluster"),
     "does not match"),
    # KEDA's
    ("routing.yaml", lambda d: first(d, "ScaledObject")["spec"].update(maxReplicas=6), "'maxReplicas' was unexpected"),
    ("routing.yaml", lambda d: first(d, "ScaledObject")["spec"]["triggers"][0]["metadata"].update(lagThreshold=500),
     "500 is not of type 'string'"),
    # A kind nobody has a schema for is an error, not a warning.
    ("live.yaml", lambda d: d.append({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "x"}}),
     "no schema for example.com/v1 Gadget"),
])
def test_a_broken_copy_is_refused(tmp_path, file, change, expected):
    problems = broken_copy(tmp_path, file, change)
    assert problems, f"{file}: the broken copy passed"
    assert any(expected in str(p) and p.file == file for p in problems), [str(p) for p in problems]


# --- Kafka: what Strimzi is given --------------------------------------------------------------------------------

def test_kafka_is_three_kraft_nodes_with_scram_acls_and_three_copies_of_everything():
    [pool] = of_kind("KafkaNodePool").values()
    assert pool["spec"]["replicas"] == 3 and set(pool["spec"]["roles"]) == {"controller", "broker"}
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == "wangge"
    kafka = of_kind("Kafka")["wangge"]["spec"]["kafka"]
    [listener] = kafka["listeners"]
    assert listener["authentication"]["type"] == "scram-sha-512" and listener["port"] == 9092
    assert kafka["authorization"] == {"type": "simple", "superUsers": ["admin"]}
    config = kafka["config"]
    assert config["default.replication.factor"] == 3 and config["min.insync.replicas"] == 2
    assert config["offsets.topic.replication.factor"] == 3 and config["transaction.state.log.min.isr"] == 2
    assert config["auto.create.topics.enable"] is False
    # The services' config points at that listener with that mechanism.
    data = of_kind("ConfigMap")["wangge-config"]["data"]
    assert data["WANGGE_KAFKA_BOOTSTRAP"] == "wangge-kafka-bootstrap.kafka.svc:9092"
    assert (data["WANGGE_KAFKA_SECURITY_PROTOCOL"], data["WANGGE_KAFKA_SASL_MECHANISM"]) == \
        ("SASL_PLAINTEXT", "SCRAM-SHA-512")


def test_the_contract_topics_are_those_shared_topics_creates_with_three_copies():
    declared = of_kind("KafkaTopic")
    expected = Topics("").fixed()
    assert sorted(declared) == sorted(spec.name for spec in expected)
    for spec in expected:
        topic = declared[spec.name]["spec"]
        assert topic["topicName"] == spec.name and topic["partitions"] == spec.partitions, spec.name
        assert topic["replicas"] == 3 and topic["config"]["min.insync.replicas"] == 2, spec.name
        configs = {k: str(v) for k, v in topic["config"].items() if k != "min.insync.replicas"}
        assert configs == spec.configs(), spec.name


def strimzi_rules(user: dict) -> set[tuple[str, str, str, str, str]]:
    """A KafkaUser's ACLs as (principal, resource type, name, pattern, operation), acl_plan's spelling."""
    rules = set()
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        kind = resource["type"].upper()
        name = resource.get("name", "kafka-cluster")
        pattern = {"literal": "LITERAL", "prefix": "PREFIXED"}[resource.get("patternType", "literal")]
        for op in acl["operations"]:
            operation = {"DescribeConfigs": "DESCRIBE_CONFIGS", "AlterConfigs": "ALTER_CONFIGS"}.get(op, op.upper())
            rules.add((user["metadata"]["name"], kind, name, pattern, operation))
    return rules


def test_each_process_has_its_kafka_user_with_exactly_the_acls_of_the_plan():
    users = of_kind("KafkaUser")
    plan = {(a.principal, a.resource, a.name, a.pattern, a.operation) for a in acl_plan("", [])}
    for principal in (*SERVICES, *BRIDGES):
        assert users[principal]["spec"]["authentication"]["type"] == "scram-sha-512"
        assert strimzi_rules(users[principal]) == {r for r in plan if r[0] == principal}, principal
    # KEDA only describes (reads lag); the administrator is the super user and needs none.
    assert {r[4] for r in strimzi_rules(users["keda"])} == {"DESCRIBE"}
    assert "authorization" not in users["admin"]["spec"]
    # Only notify reads residents' contacts.
    readers = {u for u, kind, name, _, op in set().union(*(strimzi_rules(users[p]) for p in (*SERVICES, *BRIDGES)))
               if name == "wangge.contacts" and op == "READ"}
    assert readers == {"notify"}


# --- the services -------------------------------------------------------------------------------------------------

def test_every_process_is_a_deployment_with_probes_resources_a_budget_and_lag_autoscaling():
    deployments, budgets, scalers = of_kind("Deployment"), of_kind("PodDisruptionBudget"), of_kind("ScaledObject")
    assert set(deployments) == set(PROCESSES)
    for name in PROCESSES:
        one = container(deployments[name])
        assert one["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert one["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert one["resources"]["requests"]["cpu"] and one["resources"]["limits"]["memory"], name
        labels = deployments[name]["spec"]["selector"]["matchLabels"]
        assert budgets[name]["spec"]["selector"]["matchLabels"] == labels, name
        scaler = scalers[name]["spec"]
        assert scaler["scaleTargetRef"]["name"] == name
        triggers = {(t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in scaler["triggers"]
                    if t["type"] == "kafka"}
        assert triggers == WORK_GROUPS[name], name
        for trigger in scaler["triggers"]:
            assert trigger["metadata"]["sasl"] == "scram_sha512"
            assert trigger["authenticationRef"]["name"] == "wangge-kafka-lag"
        # Never more members than the partitions of what it follows: a member beyond them would have none.
        partitions = max(Topics("").spec_for(topic).partitions for _, topic in WORK_GROUPS[name])
        assert scaler["maxReplicaCount"] <= partitions, name
    for name in ("intake", "routing", "supervision", "notify"):
        assert scalers[name]["spec"]["minReplicaCount"] >= 2, name  # one pod's loss never stops a service
        assert budgets[name]["spec"]["minAvailable"] == 1, name
    # The live figures stay one instance until any instance answers for every partition (issue 20 item 2).
    assert scalers["supervision-live"]["spec"]["maxReplicaCount"] == 1
    assert deployments["supervision-live"]["spec"]["strategy"]["type"] == "Recreate"


def test_the_production_profile_with_a_secret_a_role_a_key_and_a_kafka_user_per_process():
    config = of_kind("ConfigMap")["wangge-config"]["data"]
    assert config["WANGGE_PROFILE"] == "production"
    assert config["WANGGE_TRUSTED_PROXIES"] and "WANGGE_DATABASE_URL" not in config  # the owner's: setup only
    # The SMS gateway's addresses: notify requires them; the sms-callback Ingress's allow-list is copied from them.
    assert config["WANGGE_SMS_GATEWAY_ADDRESSES"] and " " not in config["WANGGE_SMS_GATEWAY_ADDRESSES"]
    assert "WANGGE_SIGNING_PUBLIC_KEYS" in config and not any(k.endswith("_SIGNING_KEY") for k in config)
    deployments = of_kind("Deployment")
    for name, (user, secret) in PROCESSES.items():
        one = container(deployments[name])
        secrets = [s["secretRef"]["name"] for s in one["envFrom"] if "secretRef" in s]
        assert secrets == [secret], name  # its own, and no one else's
        assert not any(s["secretRef"].get("optional") for s in one["envFrom"] if "secretRef" in s)
        env = {e["name"]: e for e in one["env"]}
        assert env["WANGGE_KAFKA_USERNAME"]["value"] == user, name
        assert env["WANGGE_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": user, "key": "password"}, name
    [setup] = of_kind("Job")["wangge-setup"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in setup["env"]}
    assert set(env) == {f"WANGGE_{s.upper()}_DATABASE_URL" for s in SERVICES} | \
        {"WANGGE_KAFKA_USERNAME", "WANGGE_KAFKA_PASSWORD"}
    assert env["WANGGE_KAFKA_USERNAME"]["value"] == "admin"


def test_only_the_front_door_reaches_the_services_and_only_they_reach_kafka_and_postgresql():
    policies = of_kind("NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    inbound = policies["services-from-the-front-door"]["spec"]
    assert set(inbound["podSelector"]["matchExpressions"][0]["values"]) == set(PROCESSES)
    peers = [peer["podSelector"]["matchLabels"] for rule in inbound["ingress"] for peer in rule["from"]]
    assert peers == [{"wangge.io/front-door": "true"}, {"wangge.io/scraper": "true"}]
    outbound = policies["services-to-kafka-and-postgresql"]["spec"]
    assert set(outbound["podSelector"]["matchExpressions"][0]["values"]) == {*PROCESSES, "wangge-setup"}
    assert sorted(p["port"] for rule in outbound["egress"] for p in rule["ports"]) == [5432, 9092]
    # No other policy opens a way in to the services: the only other way in is to the PostgreSQL members.
    assert [name for name, p in policies.items() if "Ingress" in p["spec"]["policyTypes"]] == \
        ["default-deny", "services-from-the-front-door", "postgres-from-the-services"]
    assert policies["postgres-from-the-services"]["spec"]["podSelector"] == \
        {"matchLabels": {"app.kubernetes.io/name": "wangge-postgres"}}
    # Kafka's listener admits only wangge's pods and KEDA's operator.
    [listener] = of_kind("Kafka")["wangge"]["spec"]["kafka"]["listeners"]
    namespaces = [p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                  for p in listener["networkPolicyPeers"]]
    assert namespaces == ["wangge", "keda"]


# --- compose ------------------------------------------------------------------------------------------------------

def test_compose_runs_the_production_profile_with_a_role_a_key_and_a_kafka_user_per_service():
    services = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]
    users = {"intake": "intake", "routing": "routing", "supervision": "supervision", "notify": "notify",
             "live": "supervision"}
    for name, user in users.items():
        env = services[name]["environment"]
        assert env["WANGGE_PROFILE"] == "production"
        assert (env["WANGGE_KAFKA_SECURITY_PROTOCOL"], env["WANGGE_KAFKA_SASL_MECHANISM"]) == \
            ("SASL_PLAINTEXT", "SCRAM-SHA-512")
        assert env["WANGGE_KAFKA_USERNAME"] == user, name
        assert env["WANGGE_KAFKA_PASSWORD"].startswith(f"${{WANGGE_KAFKA_{user.upper()}_PASSWORD:-"), name
        urls = {k: v for k, v in env.items() if k.endswith("DATABASE_URL")}
        assert list(urls) == [f"WANGGE_{user.upper()}_DATABASE_URL"], name  # its own, not the owner's
        assert urls[f"WANGGE_{user.upper()}_DATABASE_URL"].startswith(f"postgresql://wangge_{user}:")
        # Its own signing key and no one else's (shared/signing.py), every signer's public key.
        assert [k for k in env if k.endswith("_SIGNING_KEY")] == [f"WANGGE_{user.upper()}_SIGNING_KEY"], name
        assert env["WANGGE_SIGNING_PUBLIC_KEYS"]
    assert services["notify"]["environment"]["WANGGE_SMS_GATEWAY_ADDRESSES"]  # the production profile requires it
    setup = services["setup"]["environment"]
    assert not any(k.endswith("_SIGNING_KEY") for k in setup)
    assert setup["WANGGE_DATABASE_URL"].startswith("postgresql://wangge:") and setup["WANGGE_KAFKA_USERNAME"] == "admin"
    # Kafka: SCRAM users made at format, the ACLs applied before the setup (and so before any service).
    kafka_env = services["kafka"]["environment"]
    assert {f"WANGGE_KAFKA_{u.upper().replace('-', '_')}_PASSWORD" for u in ("admin", *SERVICES, *BRIDGES)} <= set(kafka_env)
    assert services["setup"]["depends_on"]["kafka-acls"]["condition"] == "service_completed_successfully"
    start = (COMPOSE / "kafka-start.sh").read_text(encoding="utf-8")
    assert "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer" in start
    assert "allow.everyone.if.no.acl.found=false" in start and "--add-scram" in start


def test_the_compose_acls_are_those_of_the_plan():
    lines = [line for line in (COMPOSE / "kafka-acls.tsv").read_text(encoding="utf-8").splitlines()
             if line and not line.startswith("#")]
    assert lines == [acl.line() for acl in acl_plan("", [])]
