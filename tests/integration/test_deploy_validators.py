"""deploy/ through its tools' own code (deploy/validate.py): the kustomization built by kustomize's builder and the
compose file loaded by compose-go, the loader of `docker compose` (tools/deploycheck, built with the machine's Go
into the state folder) — and broken copies refused by each, so the checks bite.

Integration tier: the first run fetches the Go modules from the module proxy and compiles them (a minute or two).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deploy.validate import COMPOSE, K8S, build_tool, check_compose, check_k8s, check_kustomization, main, run_tool

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def tool() -> Path:
    return build_tool()


def test_every_file_in_deploy_passes_both_validators(tool, capsys):
    assert check_k8s(K8S, tool) == []
    assert check_compose(COMPOSE, tool) == []
    # The command line says the same, and how much it checked.
    assert main([]) == 0
    said = capsys.readouterr().out
    assert " 0 error(s)" in said and "ERROR" not in said


def k8s_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    return copy


def test_kustomize_refuses_a_resource_that_is_not_there(tmp_path, tool):
    copy = k8s_copy(tmp_path)
    kustomization = copy / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("  - live.yaml\n", "  - live.yaml\n  - gone.yaml\n"))
    problems = check_kustomization(copy, tool)
    assert [p.what for p in problems] == ["kustomize build"] and "gone.yaml" in problems[0].message


def test_kustomize_refuses_one_object_twice(tmp_path, tool):
    copy = k8s_copy(tmp_path)
    (copy / "again.yaml").write_text((copy / "namespace.yaml").read_text())
    kustomization = copy / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("  - live.yaml\n", "  - live.yaml\n  - again.yaml\n"))
    problems = check_kustomization(copy, tool)
    assert len(problems) == 1 and "already registered" in problems[0].message, problems


def test_a_manifest_the_kustomization_leaves_out_is_an_error(tmp_path, tool):
    copy = k8s_copy(tmp_path)
    (copy / "forgotten.yaml").write_text((copy / "media-volume.yaml").read_text().replace("wangge-media", "other"))
    problems = check_kustomization(copy, tool)
    assert [str(p) for p in problems] == \
        ["kustomization.yaml: resources: forgotten.yaml is not listed: `kubectl apply -k` would leave it out"]


def test_the_sms_callbacks_ingress_takes_its_allow_list_from_notifys_setting(tmp_path, tool):
    """One list of the SMS gateway's addresses (issue 18, item 4): kustomize copies wangge-config's
    WANGGE_SMS_GATEWAY_ADDRESSES into the sms-callback Ingress's allow-list, whatever it is set to."""
    import yaml

    copy = k8s_copy(tmp_path)
    config = copy / "configmap.yaml"
    text = config.read_text(encoding="utf-8")
    assert text.count("WANGGE_SMS_GATEWAY_ADDRESSES: 192.0.2.20/32") == 1
    config.write_text(text.replace("WANGGE_SMS_GATEWAY_ADDRESSES: 192.0.2.20/32",
                                   "WANGGE_SMS_GATEWAY_ADDRESSES: 203.0.113.9/32,198.51.100.0/24"), encoding="utf-8")
    status, said = run_tool(tool, "kustomize", str(copy), "--yaml")
    assert status == 0, said
    built = [d for d in yaml.safe_load_all(said.split("\n", 1)[1]) if d]
    [ingress] = [d for d in built if d["kind"] == "Ingress"]
    assert ingress["metadata"]["name"] == "sms-callback"
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/allowlist-source-range"] == \
        "203.0.113.9/32,198.51.100.0/24"
    [path] = ingress["spec"]["rules"][0]["http"]["paths"]
    assert (path["path"], path["backend"]["service"]["name"]) == ("/api/v1/sms/", "notify")


def compose_copy(tmp_path: Path, old: str, new: str) -> Path:
    """deploy/compose copied with one change (the text `old`, found once, replaced by `new`)."""
    copy = tmp_path / "compose"
    shutil.copytree(COMPOSE, copy)
    path = copy / "docker-compose.yml"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


@pytest.mark.parametrize(("old", "new", "expected"), [
    # an unknown field (the Compose Specification's schema)
    ('    command: ["python", "-m", "services.routing"]\n',
     '    command: ["python", "-m", "services.routing"]\n    restartt: always\n', "restartt"),
    # a wrong type
    ("      retries: 24\n", "      retries: many\n", "retries"),
    # a service that depends on one that is not declared (consistency)
    ("      kafka-acls: {condition: service_completed_successfully}\n",
     "      kafka-acl: {condition: service_completed_successfully}\n", "kafka-acl"),
    # a named volume used but not declared
    ("  kafka-data:\n  etcd-data:\n", "  etcd-data:\n", "kafka-data"),
    # a broken interpolation
    ("${WANGGE_KAFKA_ADMIN_PASSWORD:-compose-kafka-admin-password}",
     "${WANGGE_KAFKA_ADMIN_PASSWORD:-compose-kafka-admin-password", "invalid interpolation format"),
])
def test_compose_go_refuses_a_broken_copy(tmp_path, tool, old, new, expected):
    problems = check_compose(compose_copy(tmp_path, old, new), tool)
    assert len(problems) == 1 and problems[0].what == "compose-go", problems
    assert expected in problems[0].message, problems[0].message
