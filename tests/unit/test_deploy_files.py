"""The shipped deployment files: Kubernetes manifests valid against the Kubernetes API's schemas (strict: an
unknown field is an error), and both Kubernetes and compose running the production profile with a secret and a
database role per service, and network policies that let only the front door reach the services."""
from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from shared.settings import REPO_ROOT

pytestmark = pytest.mark.unit

K8S = REPO_ROOT / "deploy" / "k8s"
COMPOSE = REPO_ROOT / "deploy" / "compose" / "docker-compose.yml"
SERVICES = ("intake", "routing", "supervision", "notify")
KUBERNETES_VERSION = "1.33.0"


def manifests() -> list[tuple[Path, dict]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    docs = []
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")):
            if doc:
                docs.append((K8S / name, doc))
    return docs


def of_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in manifests() if doc["kind"] == kind}


def test_every_manifest_is_valid_against_the_kubernetes_schemas():
    found = manifests()
    assert {path.name for path, _ in found} >= {"network-policies.yaml", "intake.yaml", "configmap.yaml"}
    for path, doc in found:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name}: {doc['kind']} {doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_kubernetes_runs_the_production_profile_with_a_secret_per_service():
    config = of_kind("ConfigMap")["wangge-config"]["data"]
    assert config["WANGGE_PROFILE"] == "production"
    assert config["WANGGE_KAFKA_SECURITY_PROTOCOL"] in ("SASL_PLAINTEXT", "SASL_SSL")
    assert config["WANGGE_TRUSTED_PROXIES"] and "WANGGE_DATABASE_URL" not in config  # the owner's: setup only
    deployments = of_kind("Deployment")
    for service in SERVICES:
        [container] = deployments[service]["spec"]["template"]["spec"]["containers"]
        secrets = [s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s]
        assert secrets == [f"wangge-{service}"], service  # its own, and no one else's
        assert not any(s["secretRef"].get("optional") for s in container["envFrom"] if "secretRef" in s)
    [setup] = of_kind("Job")["wangge-setup"]["spec"]["template"]["spec"]["containers"]
    assert {e["name"] for e in setup["env"]} == {f"WANGGE_{s.upper()}_DATABASE_URL" for s in SERVICES}


def test_only_the_front_door_reaches_the_services_and_only_they_reach_kafka_and_postgresql():
    policies = of_kind("NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    inbound = policies["services-from-the-front-door"]["spec"]
    assert set(inbound["podSelector"]["matchExpressions"][0]["values"]) == set(SERVICES)
    peers = [peer["podSelector"]["matchLabels"] for rule in inbound["ingress"] for peer in rule["from"]]
    assert peers == [{"wangge.io/front-door": "true"}, {"wangge.io/scraper": "true"}]
    outbound = policies["services-to-kafka-and-postgresql"]["spec"]
    assert set(outbound["podSelector"]["matchExpressions"][0]["values"]) == {*SERVICES, "wangge-setup"}
    assert sorted(p["port"] for rule in outbound["egress"] for p in rule["ports"]) == [5432, 9092]
    # No other policy opens a way in to the services.
    assert [name for name, p in policies.items() if "Ingress" in p["spec"]["policyTypes"]] == \
        ["default-deny", "services-from-the-front-door"]


def test_compose_runs_the_production_profile_with_a_role_per_service():
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    for service in SERVICES:
        env = services[service]["environment"]
        assert env["WANGGE_PROFILE"] == "production"
        urls = {k: v for k, v in env.items() if k.endswith("DATABASE_URL")}
        assert list(urls) == [f"WANGGE_{service.upper()}_DATABASE_URL"], service  # its own, not the owner's
        assert urls[f"WANGGE_{service.upper()}_DATABASE_URL"].startswith(f"postgresql://wangge_{service}:")
        # Its own signing key and no one else's (shared/signing.py), every signer's public key.
        assert [k for k in env if k.endswith("_SIGNING_KEY")] == [f"WANGGE_{service.upper()}_SIGNING_KEY"], service
        assert env["WANGGE_SIGNING_PUBLIC_KEYS"]
    assert not any(k.endswith("_SIGNING_KEY") for k in services["setup"]["environment"])
    setup = services["setup"]["environment"]
    assert setup["WANGGE_DATABASE_URL"].startswith("postgresql://wangge:")
    assert "POSTGRES_HOST_AUTH_METHOD" not in services["postgres"]["environment"]  # passwords, not trust
    assert any("postgres-roles.sh" in v for v in services["postgres"]["volumes"])
