"""PostgreSQL that fails over, as deploy/ ships it (issue 20, items 3 and 5): what the files must say, held to each
other and to the local cluster (deploy/local/patroni.sh). The validators (deploy/validate.py: Kubernetes' schemas,
kustomize, compose-go) check their form: tests/unit/test_deploy_files.py, tests/integration/
test_deploy_validators.py; the Patroni configuration booted by Patroni itself: tests/integration/
test_patroni_config.py.

- compose: etcd and two Patroni members from an image built of Debian's packages, in synchronous mode as locally; every
  URL lists both members with target_session_attrs=read-write.
- Kubernetes: a StatefulSet of two Patroni members with Kubernetes as the DCS (a ServiceAccount whose Role reaches only
  its own ConfigMaps and pods), the primary's Service selected by Patroni's role label, probes on Patroni's REST API, a
  disruption budget, the passwords from one Secret; the services reach only the members, on 5432.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from deploy.validate import COMPOSE, K8S, documents, manifest_files
from shared.kafka_security import SERVICES
from shared.settings import REPO_ROOT

pytestmark = pytest.mark.unit

PATRONI_YML = COMPOSE / "patroni.yml"
LOCAL_PATRONI = REPO_ROOT / "deploy" / "local" / "patroni.sh"
MEMBERS_URL = re.compile(r"^postgresql://([a-z_]+):[^@]+@postgres-1:5432,postgres-2:5432/wangge"
                         r"\?target_session_attrs=read-write$")


def patroni() -> dict:
    return yaml.safe_load(PATRONI_YML.read_text(encoding="utf-8"))


def compose_services() -> dict:
    return yaml.safe_load((COMPOSE / "docker-compose.yml").read_text(encoding="utf-8"))["services"]


def k8s(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for path in manifest_files(K8S) for doc in documents(path)
            if doc["kind"] == kind}


def statefulset() -> dict:
    return k8s("StatefulSet")["wangge-postgres"]


def patroni_container() -> dict:
    [one] = statefulset()["spec"]["template"]["spec"]["containers"]
    return one


# --- the cluster's settings ----------------------------------------------------------------------------------------

def test_the_containers_cluster_is_synchronous_as_the_local_one():
    dcs = patroni()["bootstrap"]["dcs"]
    local = LOCAL_PATRONI.read_text(encoding="utf-8")
    for key in ("synchronous_mode", "synchronous_mode_strict", "synchronous_node_count", "primary_start_timeout",
                "maximum_lag_on_failover"):
        [said] = re.findall(rf"^ *{key}: (\S+)$", local, re.M)
        assert dcs[key] == yaml.safe_load(said), key
    assert dcs["synchronous_mode"] is True and dcs["synchronous_node_count"] == 1
    parameters = dcs["postgresql"]["parameters"]
    assert (parameters["fsync"], parameters["synchronous_commit"], parameters["full_page_writes"]) == ("on",) * 3
    assert dcs["postgresql"]["use_pg_rewind"] is True and dcs["postgresql"]["use_slots"] is True


def test_every_network_connection_needs_a_password():
    hba = patroni()["postgresql"]["pg_hba"]
    assert not any(" trust" in line for line in hba)
    assert all(line.endswith(" scram-sha-256") for line in hba if line.startswith("host"))
    assert [line for line in hba if line.startswith("local")] == ["local all postgres peer"]
    # The bootstrap makes the owner and one role per service, none a superuser, each with its own password.
    script = (COMPOSE / "postgres-bootstrap.sh").read_text(encoding="utf-8")
    assert patroni()["bootstrap"]["post_bootstrap"] == "/usr/local/lib/wangge/postgres-bootstrap.sh"
    assert "CREATE ROLE wangge LOGIN NOSUPERUSER" in script and "CREATE DATABASE wangge OWNER wangge" in script
    assert f"for svc in {' '.join(SERVICES)}; do" in script and "NOSUPERUSER NOCREATEDB NOCREATEROLE" in script


def test_the_image_is_built_from_debians_packages_at_the_versions_proved_here():
    dockerfile = (COMPOSE / "Dockerfile.postgres").read_text(encoding="utf-8")
    assert re.findall(r"^FROM (\S+)", dockerfile, re.M) == ["debian:bookworm-slim"]
    assert "ARG PATRONI_VERSION=3.0.2-1" in dockerfile and "ARG ETCD_VERSION=3.4.23-4+b4" in dockerfile
    assert '"patroni=${PATRONI_VERSION}"' in dockerfile and '"etcd-server=${ETCD_VERSION}"' in dockerfile
    assert "COPY patroni.yml /etc/wangge/patroni.yml" in dockerfile
    assert "postgresql-15" in dockerfile and patroni()["postgresql"]["bin_dir"] == "/usr/lib/postgresql/15/bin"


# --- compose --------------------------------------------------------------------------------------------------------

def test_compose_runs_etcd_and_two_patroni_members_of_that_image():
    services = compose_services()
    assert "postgres" not in services
    for name in ("etcd", "postgres-1", "postgres-2"):
        assert services[name]["image"] == "wangge-postgres:dev", name
        assert services[name]["build"] == {"context": ".", "dockerfile": "Dockerfile.postgres"}, name
    assert services["etcd"]["command"][0] == "etcd"
    for i in (1, 2):
        env = services[f"postgres-{i}"]["environment"]
        assert env["PATRONI_NAME"] == f"postgres-{i}" and env["PATRONI_ETCD3_HOSTS"] == "etcd:2379"
        assert env["PATRONI_POSTGRESQL_CONNECT_ADDRESS"] == f"postgres-{i}:5432"
        for var in ("PATRONI_SUPERUSER_PASSWORD", "PATRONI_REPLICATION_PASSWORD", "PATRONI_RESTAPI_PASSWORD",
                    "WANGGE_PG_OWNER_PASSWORD",
                    *(f"WANGGE_PG_{s.upper()}_PASSWORD" for s in SERVICES)):
            assert env[var].startswith("${"), (i, var)  # set from the environment, a development default otherwise
        assert services[f"postgres-{i}"]["depends_on"]["etcd"]["condition"] == "service_healthy"
        assert services["setup"]["depends_on"][f"postgres-{i}"]["condition"] == "service_healthy"


def test_every_compose_url_lists_both_members_and_asks_for_the_primary():
    services = compose_services()
    urls = {name: value for name, service in services.items()
            for key, value in (service.get("environment") or {}).items() if key.endswith("DATABASE_URL")}
    assert urls and all(MEMBERS_URL.match(url) for url in urls.values()), urls
    assert MEMBERS_URL.match(services["setup"]["environment"]["WANGGE_DATABASE_URL"]).group(1) == "wangge"
    for service in SERVICES:
        role = MEMBERS_URL.match(services[service]["environment"][f"WANGGE_{service.upper()}_DATABASE_URL"]).group(1)
        assert role == f"wangge_{service}"


# --- Kubernetes -----------------------------------------------------------------------------------------------------

def test_patroni_runs_as_a_statefulset_with_kubernetes_as_its_dcs():
    spec = statefulset()["spec"]
    assert spec["replicas"] == 2 and spec["podManagementPolicy"] == "Parallel"
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    env = {e["name"]: e for e in patroni_container()["env"]}
    assert env["PATRONI_KUBERNETES_USE_ENDPOINTS"]["value"] == "false"
    # Patroni finds its members by its labels plus its scope as cluster-name: the pods must carry both.
    patroni_labels = yaml.safe_load(env["PATRONI_KUBERNETES_LABELS"]["value"])
    assert patroni_labels.items() <= labels.items() and labels["cluster-name"] == patroni()["scope"]
    assert env["PATRONI_KUBERNETES_POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["PATRONI_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert not any(name.startswith("PATRONI_ETCD") for name in env)
    # One member per node.
    [term] = spec["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert spec["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_patronis_configmaps_are_its_own_and_its_role_reaches_nothing_else():
    scope = patroni()["scope"]
    own = {f"{scope}-{part}" for part in ("leader", "config", "sync", "failover")}
    # wangge-config is the services' settings: a scope of "wangge" would have made Patroni write its state into it.
    assert not own & set(k8s("ConfigMap")), own & set(k8s("ConfigMap"))
    role = k8s("Role")["wangge-postgres"]
    for rule in role["rules"]:
        assert set(rule["resources"]) <= {"configmaps", "pods"}, rule  # no Secret, no other kind
        if set(rule["verbs"]) & {"get", "patch", "update", "delete"}:
            names = set(rule["resourceNames"])
            assert names == own if rule["resources"] == ["configmaps"] else \
                names == {f"wangge-postgres-{i}" for i in range(statefulset()["spec"]["replicas"])}, rule
    binding = k8s("RoleBinding")["wangge-postgres"]
    assert binding["roleRef"]["name"] == "wangge-postgres"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "wangge-postgres", "namespace": "wangge"}]
    assert statefulset()["spec"]["template"]["spec"]["serviceAccountName"] == "wangge-postgres"
    assert "wangge-postgres" in k8s("ServiceAccount")


def test_the_primarys_service_selects_the_member_patroni_labels_leader():
    service = k8s("Service")["wangge-postgres"]["spec"]
    labels = statefulset()["spec"]["template"]["metadata"]["labels"]
    selector = dict(service["selector"])
    assert selector.pop("role") == "master"  # Patroni 3.0's label on the leader's pod
    assert selector.items() <= labels.items()
    assert [p["port"] for p in service["ports"]] == [5432]
    assert k8s("Service")["wangge-postgres-members"]["spec"]["clusterIP"] == "None"
    assert statefulset()["spec"]["serviceName"] == "wangge-postgres-members"


def test_probes_on_patronis_rest_api_resources_and_a_disruption_budget():
    container = patroni_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"postgresql": 5432, "patroni": 8008}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readiness", "port": "patroni"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/liveness", "port": "patroni"}
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    budget = k8s("PodDisruptionBudget")["wangge-postgres"]["spec"]
    assert budget["maxUnavailable"] == 1
    assert budget["selector"]["matchLabels"] == statefulset()["spec"]["selector"]["matchLabels"]


def test_every_password_comes_from_the_postgres_secret():
    env = {e["name"]: e for e in patroni_container()["env"]}
    expected = {"PATRONI_SUPERUSER_PASSWORD": "superuser-password", "PATRONI_REPLICATION_PASSWORD": "replication-password",
                "PATRONI_RESTAPI_PASSWORD": "restapi-password",
                "WANGGE_PG_OWNER_PASSWORD": "owner-password",
                **{f"WANGGE_PG_{s.upper()}_PASSWORD": f"{s}-password" for s in SERVICES}}
    for name, key in expected.items():
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "wangge-postgres", "key": key}, name
    assert not [e for e in env.values() if "PASSWORD" in e["name"] and "value" in e]


def test_the_services_reach_the_members_and_the_readme_points_them_at_the_primary():
    policies = k8s("NetworkPolicy")
    [to_postgres] = [rule for rule in policies["services-to-kafka-and-postgresql"]["spec"]["egress"]
                     if rule["ports"] == [{"protocol": "TCP", "port": 5432}]]
    assert to_postgres["to"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "wangge-postgres"}}}]
    readme = (REPO_ROOT / "deploy" / "README.md").read_text(encoding="utf-8")
    urls = re.findall(r"WANGGE_(?:[A-Z]+_)?DATABASE_URL=(postgresql://\S+)", readme)
    assert urls and all("@wangge-postgres.wangge.svc:5432/wangge" in url for url in urls), urls
    assert "kubectl -n wangge create secret generic wangge-postgres" in readme
