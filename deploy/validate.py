"""deploy/'s files checked by their tools' validators, on a machine with neither Docker nor Kubernetes.

    .venv/bin/python -m deploy.validate            # deploy/k8s and deploy/compose; exit 1 on any error
    .venv/bin/python -m deploy.validate --k8s DIR --compose FILE   # another copy (the tests' broken ones)

- Kubernetes' own kinds (Deployment, Service, NetworkPolicy, PodDisruptionBudget, …): kubernetes-validate's JSON
  schemas of the Kubernetes API (KUBERNETES_VERSION), strict: an unknown field is an error, as it is for
  `kubectl apply`'s server-side field validation.
- Strimzi's (Kafka, KafkaNodePool, KafkaTopic, KafkaUser) and KEDA's (ScaledObject, TriggerAuthentication) custom
  resources: the openAPIV3Schema of their CRDs, kept in deploy/schemas/ with their source and version
  (deploy/schemas/README.md), checked the way the API server checks a structural schema: unknown fields refused
  unless the schema preserves them, `nullable`, `x-kubernetes-int-or-string`.
- A kind with no schema is an error, not a warning: nothing in deploy/k8s goes unchecked.
- The kustomization: kustomize's own builder (tools/deploycheck `kustomize`): every file it names read and parsed,
  no object twice; and every manifest in the folder named by it.
- Compose: compose-go's loader, the one `docker compose` uses (tools/deploycheck `compose`): interpolation, the
  Compose Specification's schema, normalisation, consistency.

tools/deploycheck is a Go program (compose-go v2.16.2, kustomize api v0.21.2); it is built once per source into
$WANGGE_STATE_DIR/bin (or <repo>/.local/bin) with the machine's `go`, fetching its modules from the Go module proxy
the first time.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "deploy" / "k8s"
COMPOSE = REPO / "deploy" / "compose"
SCHEMAS = REPO / "deploy" / "schemas"
TOOL = REPO / "tools" / "deploycheck"
# The Kubernetes API the manifests are checked against (kubernetes-validate ships its schemas).
KUBERNETES_VERSION = "1.33.0"
# How long building the Go tool may take the first time (its modules fetched, compiled on two cores).
BUILD_TIMEOUT = 900
RUN_TIMEOUT = 120


class ToolUnavailable(RuntimeError):
    """The Go tool could not be built (no `go`, or its modules could not be fetched): the reason."""


@dataclass(frozen=True)
class Problem:
    """One error a validator found: in which file, which object, what."""

    file: str
    what: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.what}: {self.message}"


# --- custom resources: the CRDs' schemas -------------------------------------------------------------------------

def structural(schema: Any) -> Any:
    """A CRD's OpenAPI v3 schema as a JSON Schema (draft 4) that refuses what the API server refuses: an object's
    unknown fields (unless x-kubernetes-preserve-unknown-fields), null where not `nullable`, and that takes an
    int-or-string as either."""
    if isinstance(schema, list):
        return [structural(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: structural(v) for k, v in schema.items()
           if k not in ("nullable", "x-kubernetes-int-or-string", "description")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in schema:
        out["properties"] = {name: structural(sub) for name, sub in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@lru_cache(maxsize=1)
def crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) → the validating schema, for every CRD schema kept in deploy/schemas/."""
    found = {}
    for path in sorted(SCHEMAS.glob("*/*.json")):
        group, version, kind = path.stem.split("_", 2)
        schema = structural(json.loads(path.read_text(encoding="utf-8")))
        # The API server checks metadata itself (ObjectMeta), whatever the CRD says: the same checks here.
        schema.setdefault("properties", {})["metadata"] = {"$ref": "#/definitions/ObjectMeta"}
        schema["definitions"] = {"ObjectMeta": object_meta()}
        schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
        found[(f"{group}/{version}", kind)] = schema
    return found


# What the API server checks of any object's metadata (ObjectMeta), custom resources' too: a name that is a DNS
# subdomain, a namespace that is a DNS label, string labels and annotations, no unknown field.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def object_meta() -> dict:
    """The metadata a manifest of a custom resource may carry, as the API server checks it."""
    strings = {"type": "object", "additionalProperties": {"type": "string"}}
    return {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "maxLength": 253, "pattern": DNS_SUBDOMAIN},
            "namespace": {"type": "string", "maxLength": 63, "pattern": DNS_LABEL},
            "labels": strings,
            "annotations": strings,
            "finalizers": {"type": "array", "items": {"type": "string"}},
        },
    }


def check_custom(doc: dict, schema: dict) -> list[str]:
    """Every way `doc` fails its CRD's schema (each with its path)."""
    validator = jsonschema.Draft4Validator(schema)
    return [f"{'.'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
            for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]


# --- Kubernetes manifests -------------------------------------------------------------------------------------------

def manifest_files(k8s: Path) -> list[Path]:
    """Every YAML file of a deploy/k8s folder but the kustomization."""
    return sorted(p for p in [*k8s.glob("*.yaml"), *k8s.glob("*.yml")] if p.name != "kustomization.yaml")


def documents(path: Path) -> Iterator[dict]:
    """The non-empty YAML documents of a file."""
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if doc:
            yield doc


def check_manifest(path: Path, doc: dict) -> list[Problem]:
    """One object against its kind's schema (Kubernetes' own, or its CRD's)."""
    if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
        return [Problem(path.name, "?", "not a Kubernetes object (no apiVersion and kind)")]
    what = f"{doc['kind']} {(doc.get('metadata') or {}).get('name', '?')}"
    schema = crd_schemas().get((doc["apiVersion"], doc["kind"]))
    if schema is not None:
        return [Problem(path.name, what, message) for message in check_custom(doc, schema)]
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path) or "(top)"
        return [Problem(path.name, what, f"{where}: {exc.message}")]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [Problem(path.name, what, f"no schema for {doc['apiVersion']} {doc['kind']}: {exc.message} "
                                         "(a custom resource's CRD schema belongs in deploy/schemas/)")]
    return []


def check_manifests(k8s: Path = K8S) -> list[Problem]:
    """Every object of every manifest in the folder against its kind's schema."""
    problems: list[Problem] = []
    for path in manifest_files(k8s):
        try:
            docs = list(documents(path))
        except yaml.YAMLError as exc:
            problems.append(Problem(path.name, "YAML", str(exc)))
            continue
        for doc in docs:
            problems += check_manifest(path, doc)
    return problems


def check_kustomization(k8s: Path = K8S, tool: Path | None = None) -> list[Problem]:
    """Every manifest named by the kustomization, and the kustomization built by kustomize itself."""
    problems = []
    kustomization = yaml.safe_load((k8s / "kustomization.yaml").read_text(encoding="utf-8")) or {}
    listed = set(kustomization.get("resources") or [])
    for path in manifest_files(k8s):
        if path.name not in listed:
            problems.append(Problem("kustomization.yaml", "resources", f"{path.name} is not listed: "
                                    "`kubectl apply -k` would leave it out"))
    code, out = run_tool(tool or build_tool(), "kustomize", str(k8s))
    if code != 0:
        problems.append(Problem("kustomization.yaml", "kustomize build", out.strip()))
    return problems


def check_k8s(k8s: Path = K8S, tool: Path | None = None) -> list[Problem]:
    """Both checks of a deploy/k8s folder."""
    return check_manifests(k8s) + check_kustomization(k8s, tool)


# --- compose ------------------------------------------------------------------------------------------------------

def compose_files(compose: Path = COMPOSE) -> list[Path]:
    """The compose files of a folder (or the one file given)."""
    if compose.is_file():
        return [compose]
    return sorted(p for p in [*compose.glob("*compose*.yml"), *compose.glob("*compose*.yaml")])


def check_compose(compose: Path = COMPOSE, tool: Path | None = None) -> list[Problem]:
    """Each compose file loaded by compose-go, as `docker compose` loads it."""
    problems = []
    files = compose_files(compose)
    if not files:
        return [Problem(str(compose), "compose", "no compose file found")]
    for path in files:
        code, out = run_tool(tool or build_tool(), "compose", str(path))
        if code != 0:
            problems.append(Problem(path.name, "compose-go", out.strip()))
    return problems


# --- the Go tool --------------------------------------------------------------------------------------------------

def state_dir() -> Path:
    """Where built things are kept: WANGGE_STATE_DIR, else <repo>/.local."""
    return Path(os.environ.get("WANGGE_STATE_DIR") or REPO / ".local")


def build_tool() -> Path:
    """tools/deploycheck built once per source (its hash names the binary); raise ToolUnavailable if it cannot be."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((TOOL / name).read_bytes())
    binary = state_dir() / "bin" / f"deploycheck-{digest.hexdigest()[:16]}"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise ToolUnavailable("`go` is not on PATH: tools/deploycheck (compose-go, kustomize) needs Go 1.26 or newer")
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_suffix(".building")
    # -mod=readonly: go.sum decides every module's content; -trimpath: the same binary from any checkout.
    result = subprocess.run([go, "build", "-mod=readonly", "-trimpath", "-o", str(partial), "."], cwd=TOOL,
                            capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    if result.returncode != 0:
        raise ToolUnavailable(f"go build of tools/deploycheck failed: {result.stderr.strip()[-2000:]}")
    partial.replace(binary)
    return binary


def run_tool(tool: Path, *args: str) -> tuple[int, str]:
    """(exit status, what it printed) of one deploycheck run. Only the variables compose interpolates from the
    environment are those of deploy's own defaults: this process's WANGGE_* are left out, so a developer's
    environment does not change what is checked."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANGGE_")}
    result = subprocess.run([str(tool), *args], capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env)
    return result.returncode, result.stdout + result.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.validate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--k8s", type=Path, default=K8S, help="a deploy/k8s folder (default: this repo's)")
    parser.add_argument("--compose", type=Path, default=COMPOSE, help="a compose file or folder (default: this repo's)")
    args = parser.parse_args(argv)
    try:
        tool = build_tool()
    except ToolUnavailable as exc:
        print(f"deploy.validate: {exc}", file=sys.stderr)
        return 2
    problems = check_k8s(args.k8s, tool) + check_compose(args.compose, tool)
    for problem in problems:
        print(f"ERROR {problem}")
    objects = sum(len(list(documents(p))) for p in manifest_files(args.k8s))
    print(f"{objects} Kubernetes objects in {len(manifest_files(args.k8s))} files, "
          f"{len(compose_files(args.compose))} compose file(s): {len(problems)} error(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
