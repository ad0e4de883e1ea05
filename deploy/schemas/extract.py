"""Extract the openAPIV3Schema of each version of each CustomResourceDefinition in CRD files into
deploy/schemas/<folder>/<group>_<version>_<Kind>.json, which deploy/validate.py checks custom resources against.

    python -m deploy.schemas.extract strimzi "io.strimzi:api 1.2.0 (Maven Central), CRDs made by io.strimzi:crd-generator 1.2.0" CRD.yaml...

Each file is the schema as the CRD carries it (Kubernetes' OpenAPI v3 dialect), with its source in "$comment".
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def extract(folder: str, source: str, crd_files: list[Path]) -> list[Path]:
    """Write one JSON schema file per CRD version served; return the files written."""
    out = HERE / folder
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in crd_files:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                schema = dict(version["schema"]["openAPIV3Schema"])
                schema["$comment"] = (f"{spec['names']['kind']} {spec['group']}/{version['name']}: the openAPIV3Schema "
                                      f"of CRD {doc['metadata']['name']} from {source}. Apache-2.0.")
                target = out / f"{spec['group']}_{version['name']}_{spec['names']['kind']}.json"
                target.write_text(json.dumps(schema, indent=1, ensure_ascii=False, sort_keys=True) + "\n",
                                  encoding="utf-8")
                written.append(target)
    return written


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    for path in extract(argv[0], argv[1], [Path(p) for p in argv[2:]]):
        print(path.relative_to(HERE))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
