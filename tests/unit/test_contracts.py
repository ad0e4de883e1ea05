"""The envelope and event models of the public contract."""
from __future__ import annotations

import json

import pytest

from shared.contracts import Envelope, InvalidMessage, parse_event
from shared.contracts.reports import ReportSubmitted
from shared.contracts.registry import _upcasters, upcaster

pytestmark = pytest.mark.unit

REPORT = {"source": "hotline", "external_id": "12345-0001", "category": None, "description": "路灯不亮",
          "location": None, "address": "文化路街道市社家宿舍1号楼", "reporter": {"name": "张女士", "phone": "13800001234"},
          "coordinator": None, "media": [], "observed_at": "2026-11-27T09:00:00+08:00"}


def _envelope(data=REPORT, **fields) -> bytes:
    body = {"id": "e1", "type": "report.submitted", "version": 1, "case_id": None,
            "occurred_at": "2026-11-27T09:00:01+08:00", "source": "hotline", "data": data}
    body.update(fields)
    return json.dumps(body, ensure_ascii=False).encode()


def test_a_contract_message_parses_to_its_typed_model():
    event = parse_event(Envelope.from_json(_envelope()))
    assert isinstance(event, ReportSubmitted) and event.address.startswith("文化路")


def test_times_keep_their_offset_on_the_wire():
    envelope = Envelope.from_json(_envelope())
    assert json.loads(envelope.to_json())["occurred_at"] == "2026-11-27T09:00:01+08:00"


@pytest.mark.parametrize("raw, reason", [
    (b"not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (_envelope(occurred_at="2026-11-27T09:00:01"), "occurred_at"),  # no offset
    (_envelope(type="Report Submitted"), "type"),
])
def test_a_bad_envelope_says_why(raw, reason):
    with pytest.raises(InvalidMessage) as err:
        Envelope.from_json(raw)
    assert reason in err.value.reason


@pytest.mark.parametrize("change, reason", [
    ({"description": ""}, "description"),
    ({"location": None, "address": None}, "either location or address"),
    ({"source": "fax"}, "source"),
    ({"location": {"lon": 500, "lat": 1}}, "location.lon"),
])
def test_report_data_that_does_not_fit_says_which_field(change, reason):
    with pytest.raises(InvalidMessage) as err:
        parse_event(Envelope.from_json(_envelope({**REPORT, **change})))
    assert reason in err.value.reason


def test_an_unknown_type_or_future_version_is_refused():
    with pytest.raises(InvalidMessage, match="unknown event type"):
        parse_event(Envelope.from_json(_envelope(type="report.exploded")))
    with pytest.raises(InvalidMessage, match="newer"):
        parse_event(Envelope.from_json(_envelope(version=9)))


def test_old_versions_are_upcast_before_validation(monkeypatch):
    monkeypatch.setattr(ReportSubmitted, "VERSION", 2)

    @upcaster("report.submitted", 1)
    def rename(data):
        return {**data, "description": data["description"] + "（v2）"}

    try:
        event = parse_event(Envelope.from_json(_envelope()))
        assert event.description == "路灯不亮（v2）"
    finally:
        _upcasters.pop(("report.submitted", 1))


def test_json_schemas_are_exported_for_every_type(tmp_path):
    from shared.contracts.schemas import export

    written = export(tmp_path)
    names = {p.name for p in written}
    assert "report.submitted.v1.json" in names and "task.assigned.v1.json" in names
    schema = json.loads((tmp_path / "report.submitted.v1.json").read_text())
    assert "external_id" in schema["properties"]["data"]["properties"]


def test_the_published_schemas_match_the_code(tmp_path):
    """docs/contracts/ is what third parties read: regenerate it with python -m shared.contracts.schemas."""
    from shared.contracts.schemas import DEFAULT_DIR, export

    for path in export(tmp_path):
        published = DEFAULT_DIR / path.name
        assert published.exists(), f"{published} missing: run python -m shared.contracts.schemas"
        assert published.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), \
            f"{published} is stale: run python -m shared.contracts.schemas"
