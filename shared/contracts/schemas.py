"""Publish the contract: a JSON Schema per event type and version, and an AsyncAPI document.

`python -m shared.contracts.schemas [DIR]` writes them (default: docs/contracts/); a test checks
that the committed copies match the code.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shared.contracts.envelope import Envelope
from shared.contracts.registry import EventModel, registered_types
from shared.contracts.tasks import UPDATE_TYPES
from shared.settings import REPO_ROOT

DEFAULT_DIR = REPO_ROOT / "docs" / "contracts"

# Which topic carries which event types (the DESIGN's Kafka contract).
CHANNELS: dict[str, tuple[str, str, list[str]]] = {
    "wangge.reports": ("the source's report id", "terminals, hotline bridge", ["report.submitted"]),
    "wangge.reports.rejected": ("same as the report", "intake", ["message.rejected"]),
    "wangge.cases": ("case id", "the services", [t for t in registered_types() if t.startswith("case.")]),
    "wangge.tasks.{owner}": ("case id", "routing, supervision",
                             ["task.assigned", "task.urged", "task.recalled", "task.extension-decided",
                              "task.update-refused", "task.commented"]),
    "wangge.task-updates": ("case id", "owners", list(UPDATE_TYPES)),
    "wangge.credentials": ("the credential's token hash (compacted)", "the credentials CLI",
                           ["credential.issued", "credential.revoked"]),
    "wangge.replies": ("case id", "notify", ["reply.issued"]),
    # Internal (not part of DESIGN's public table): residents' contacts, read by notify alone.
    "wangge.contacts": ("case id", "intake (read by notify alone; an ACL in production)", ["contact.recorded"]),
    # Internal: the street's time rules in force, for routing and notify.
    "wangge.street-config": ('"street" (compacted)', "supervision", ["street.config-changed"]),
}


def event_schema(model: type[EventModel]) -> dict[str, Any]:
    """The JSON Schema of a whole message (envelope + data) of one type at its current version."""
    schema = Envelope.model_json_schema()
    data = model.model_json_schema(mode="serialization")
    defs = {**schema.pop("$defs", {}), **data.pop("$defs", {})}
    schema["properties"]["type"] = {"const": model.TYPE}
    schema["properties"]["version"] = {"const": model.VERSION}
    schema["properties"]["data"] = data
    schema.update({"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{model.TYPE}.v{model.VERSION}",
                   "title": model.TYPE, "description": (model.__doc__ or "").strip()})
    if defs:
        schema["$defs"] = defs
    return schema


def asyncapi() -> dict[str, Any]:
    """An AsyncAPI 3.0 document of the topics and their messages."""
    types = registered_types()
    messages = {t: {"name": t, "title": t, "summary": (m.__doc__ or "").strip(), "contentType": "application/json",
                    "payload": {"$ref": f"./{t}.v{m.VERSION}.json"}} for t, m in types.items()}
    channels = {
        name.replace(".", "_").replace("{", "").replace("}", ""): {
            "address": name,
            "description": f"key: {key}; written by {writers}",
            "messages": {t: {"$ref": f"#/components/messages/{t}"} for t in kinds},
        }
        for name, (key, writers, kinds) in CHANNELS.items()
    }
    return {"asyncapi": "3.0.0", "info": {"title": "wangge events", "version": "1.0.0",
            "description": "Every message is one JSON envelope {id, type, version, case_id, occurred_at, source, data}."},
            "channels": channels, "components": {"messages": messages}}


def export(folder: Path) -> list[Path]:
    """Write every schema and the AsyncAPI document into folder; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for model in registered_types().values():
        path = folder / f"{model.TYPE}.v{model.VERSION}.json"
        path.write_text(json.dumps(event_schema(model), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    path = folder / "asyncapi.json"
    path.write_text(json.dumps(asyncapi(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    parser = argparse.ArgumentParser(prog="python -m shared.contracts.schemas",
                                     description="Write the JSON Schemas of every event type and an AsyncAPI document.")
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_DIR, help=f"where (default {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    written = export(args.folder)
    print(f"{len(written)} files written to {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
