"""Open311 GeoReport v2 as intake speaks it: services from the street's categories, requests from
cases, JSON or XML (https://wiki.open311.org/GeoReport_v2). Pure: no I/O.

What the public reads of a request is what any passer-by could see: the category, the place and the
description with phone numbers masked, open or closed — never who reported it, and only once the report
was taken as a case (held and rejected reports are not public).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping
from xml.etree import ElementTree

from shared.contracts.cases import FINAL_STATES
from shared.personal_data import mask_personal

STATUS_NOTES = {"reported": "已受理，待指挥中心分类或定位", "accepted": "已立案，正在处置", "closed": "已办结",
                "rejected": "不予立案", "merged": "与其他案件合并办理"}
NOTICE = "已受理，案件编号即服务请求编号；处理进展将短信告知"


@dataclass(frozen=True)
class Service:
    """One Open311 service: a case category of the street."""

    code: str
    name: str
    group: str


class Open311Error(ValueError):
    """A request Open311 refuses, with the HTTP status the spec uses (400, 403, 404)."""

    def __init__(self, status: int, description: str):
        super().__init__(description)
        self.status = status
        self.description = description


def services_list(services: Iterable[Service]) -> list[dict[str, Any]]:
    """GET services: every category, as a realtime service without extra attributes."""
    return [{"service_code": s.code, "service_name": s.name, "description": f"{s.group}：{s.name}",
             "metadata": False, "type": "realtime", "keywords": s.group, "group": s.group} for s in services]


def service_definition(service: Service) -> dict[str, Any]:
    """GET services/{code}: no attributes beyond the standard fields."""
    return {"service_code": service.code, "attributes": []}


def report_fields(form: Mapping[str, str], services: Mapping[str, Service]) -> dict[str, Any]:
    """POST requests: the fields of report.submitted from the spec's form fields, or Open311Error."""
    code = (form.get("service_code") or "").strip()
    if code not in services:
        raise Open311Error(400, f"service_code {code!r} is not a service of this street (see services.json)")
    description = (form.get("description") or "").strip()
    if not description:
        raise Open311Error(400, "description is required (1 to 2000 characters)")
    location = None
    if form.get("lat") or form.get("long"):
        try:
            location = {"lat": float(form.get("lat", "")), "lon": float(form.get("long", ""))}
        except ValueError:
            raise Open311Error(400, "lat and long must both be decimal degrees (WGS84)") from None
    address = (form.get("address_string") or "").strip() or None
    if location is None and address is None:
        raise Open311Error(400, "a location is required: lat and long, or address_string")
    name = " ".join(part for part in (form.get("first_name", "").strip(), form.get("last_name", "").strip()) if part)
    phone = (form.get("phone") or "").strip()
    email = (form.get("email") or "").strip()
    if email and ("@" not in email or any(c.isspace() for c in email) or len(email) > 254):
        raise Open311Error(400, "email is not an e-mail address (电子邮箱格式不正确)")
    media = (form.get("media_url") or "").strip()
    if media and not media.lower().startswith(("http://", "https://")):
        # Open311 clients host their own photos: wangge's /media/<id> is for its own terminals and pages.
        raise Open311Error(400, "media_url must be an absolute http(s) URL (照片地址须为完整的http(s)地址)")
    return {"category": code, "description": description[:2000], "location": location, "address": address,
            "reporter": {"name": name or None, "phone": phone or None, "email": email or None}
            if (name or phone or email) else None,
            "media": [media] if media else []}


def request_view(row: Mapping[str, Any], services: Mapping[str, Service]) -> dict[str, Any]:
    """One service request as the public reads it (every free-text field masked)."""
    state, code = row["state"], row["category"]
    return {
        "service_request_id": row["case_no"],
        "status": "closed" if state in FINAL_STATES else "open",
        "status_notes": mask_personal(row.get("reject_reason") or "") or STATUS_NOTES.get(state, ""),
        "service_name": services[code].name if code in services else None,
        "service_code": code,
        "description": mask_personal(row["description"]),
        "agency_responsible": "街道网格化社会管理指挥中心",
        "service_notice": None,
        "requested_datetime": _iso(row["received_at"]),
        "updated_datetime": _iso(row.get("acted_at") or row["received_at"]),
        "expected_datetime": None,
        # Free text too: a resident may type a number into it ("文化路12号，电话139…").
        "address": mask_personal(row["address"]) if row.get("address") else row.get("address"),
        "address_id": None,
        "zipcode": None,
        "lat": row.get("lat"),
        "long": row.get("lon"),
        "media_url": (row.get("media") or [None])[0],
    }


def created_view(case_no: str) -> list[dict[str, Any]]:
    """POST requests: the new request's id."""
    return [{"service_request_id": case_no, "service_notice": NOTICE, "account_id": None}]


def errors_view(status: int, description: str) -> list[dict[str, Any]]:
    """The spec's error list."""
    return [{"code": status, "description": description}]


def to_xml(root: str, item: str, entries: list[dict[str, Any]]) -> bytes:
    """The spec's XML: <services><service>…</service></services>, <service_requests><request>…, <errors><error>…"""
    top = ElementTree.Element(root)
    for entry in entries:
        node = ElementTree.SubElement(top, item)
        for key, value in entry.items():
            child = ElementTree.SubElement(node, key)
            if isinstance(value, list):
                for sub in value:
                    ElementTree.SubElement(child, "attribute").text = str(sub)
            elif value is not None:
                child.text = str(value).lower() if isinstance(value, bool) else str(value)
    return b'<?xml version="1.0" encoding="utf-8"?>' + ElementTree.tostring(top, encoding="unicode").encode()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
