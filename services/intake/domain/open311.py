"""Open311 GeoReport v2 as intake speaks it: services from the street's categories, requests from
cases, JSON or XML (https://wiki.open311.org/GeoReport_v2). Pure: no I/O.

What the public reads of a request is what any passer-by could see: the category, the place and the
description with phone numbers masked, open or closed — never who reported it, and only once the command center
decided on the report: a held report (not yet vetted) is not public. A rejected one (不予立案) is listed closed with
the reason, as servicerequestupdates tells it, but without what its sender wrote or where (it was "not a case":
out of the area, empty, abuse).
"""
from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping
from xml.etree import ElementTree

from shared.clock import to_street_time
from shared.contracts.cases import FINAL_STATES
from shared.media import media_id_of
from shared.personal_data import mask_personal

STATUS_NOTES = {"reported": "已受理，待指挥中心分类或定位", "accepted": "已立案，正在处置", "closed": "已办结",
                "rejected": "不予立案", "merged": "与其他案件合并办理"}
NOTICE = "已受理，案件编号即服务请求编号；处理进展将短信告知"
# What a rejected request shows instead of its sender's text: the report was not taken as a case.
REJECTED_DESCRIPTION = "（不予立案，原报告内容不公开）"


@dataclass(frozen=True)
class Service:
    """One Open311 service: a case category of the street (urgency: the street's low … urgent)."""

    code: str
    name: str
    group: str
    urgency: str = "normal"

    @property
    def attributes(self) -> list[dict[str, Any]]:
        """The extra questions this category asks: an urgent or high one asks whether anyone is in danger now, so
        the command center sees it at once (answer attribute[danger]=yes|no)."""
        if self.urgency not in ("urgent", "high"):
            return []
        return [{"variable": True, "code": "danger", "datatype": "singlevaluelist", "required": False,
                 "datatype_description": "yes 或 no", "order": 1, "description": "现场是否危及人身安全？",
                 "values": [{"key": "yes", "name": "是，有安全危险"}, {"key": "no", "name": "否"}]}]


# ---- photos an anonymous Open311 client can fetch ------------------------------------------------------------
# A photo's /media/<id> is for who may see its case (a credential or a session): FixMyStreet's add_media fetches a
# media_url without one. Open311 answers carry instead <public_url>/open311/v2/media/<public id>.jpg, the photo's
# thumbnail: the public id is a keyed hash of the media id (128 bits; unguessable, and it does not give away the
# media id, which is the SHA-256 of the photo), and it is served only once the photo was in a public step of a case
# (intake's open311_photos, migration 007). Photos hosted elsewhere (absolute URLs) are passed on as they are.
PUBLIC_PHOTO_ID = re.compile(r"^[0-9a-f]{32}$")


def public_photo_id(key: bytes, media_id: str) -> str:
    return hmac.new(key, b"open311-photo:" + media_id.encode(), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class PublicPhotos:
    """How a photo URL of a case reads in an Open311 answer."""

    key: bytes
    base_url: str  # where residents reach the front door (settings.public_url)

    def id_of(self, media: str | None) -> tuple[str, str] | None:
        """(public id, media id) of a photo wangge stores, None for any other URL."""
        media_id = media_id_of(media or "")
        return (public_photo_id(self.key, media_id), media_id) if media_id else None

    def url(self, media: str | None) -> str | None:
        ids = self.id_of(media)
        if ids is None:
            return media or None
        return f"{self.base_url.rstrip('/')}/open311/v2/media/{ids[0]}.jpg"


class Open311Error(ValueError):
    """A request Open311 refuses, with the HTTP status the spec uses (400, 403, 404)."""

    def __init__(self, status: int, description: str):
        super().__init__(description)
        self.status = status
        self.description = description


def services_list(services: Iterable[Service]) -> list[dict[str, Any]]:
    """GET services: every category, as a realtime service without extra attributes."""
    return [{"service_code": s.code, "service_name": s.name, "description": f"{s.group}：{s.name}",
             "metadata": bool(s.attributes), "type": "realtime", "keywords": s.group, "group": s.group}
            for s in services]


def service_definition(service: Service) -> dict[str, Any]:
    """GET services/{code}: the category's extra questions (attributes), if it asks any."""
    return {"service_code": service.code, "attributes": service.attributes}


def definition_xml(definition: dict[str, Any]) -> bytes:
    """<service_definition><service_code/><attributes><attribute>…<values><value><key/><name/></value>…"""
    top = ElementTree.Element("service_definition")
    ElementTree.SubElement(top, "service_code").text = definition["service_code"]
    attributes = ElementTree.SubElement(top, "attributes")
    for attribute in definition["attributes"]:
        node = ElementTree.SubElement(attributes, "attribute")
        for key, value in attribute.items():
            child = ElementTree.SubElement(node, key)
            if key == "values":
                for item in value:
                    entry = ElementTree.SubElement(child, "value")
                    ElementTree.SubElement(entry, "key").text = str(item["key"])
                    ElementTree.SubElement(entry, "name").text = str(item["name"])
            else:
                child.text = str(value).lower() if isinstance(value, bool) else str(value)
    return _document(top)


def report_fields(form: Mapping[str, str], services: Mapping[str, Service],
                  photos: list[str] | None = None) -> dict[str, Any]:
    """POST requests: the fields of report.submitted from the spec's form fields (and the /media/<id> of photos
    posted as multipart `media`), or Open311Error."""
    code = (form.get("service_code") or "").strip()
    if code not in services:
        raise Open311Error(400, f"service_code {code!r} is not a service of this street (see services.json)")
    description = (form.get("description") or "").strip()
    if not description:
        raise Open311Error(400, "description is required (1 to 2000 characters) (请填写问题描述)")
    danger = (form.get("attribute[danger]") or "").strip().lower()
    if danger and danger not in ("yes", "no"):
        raise Open311Error(400, "attribute[danger] must be yes or no (是否危及安全：yes 或 no)")
    if danger == "yes" and "danger" in {a["code"] for a in services[code].attributes}:
        description = f"【现场有安全危险】{description}"
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
            "media": ([media] if media else []) + list(photos or [])}


def request_view(row: Mapping[str, Any], services: Mapping[str, Service], photos: PublicPhotos) -> dict[str, Any]:
    """One service request as the public reads it (every free-text field masked; a photo as its public URL).

    A rejected request (不予立案) is closed and says why, as its update (NOT_COUNCILS_RESPONSIBILITY) does; what its
    sender wrote, the place and the photo stay unpublished: it was not a case (out of the area, empty, abuse), and
    without lat/long a client that imports requests onto its map (FixMyStreet's fetch-reports, which reads a bare
    `closed` as fixed) leaves it out."""
    state, code = row["state"], row["category"]
    rejected = state == "rejected"
    return {
        "service_request_id": row["case_no"],
        "status": "closed" if state in FINAL_STATES else "open",
        # The latest public step's note (a merged or explained case says so: closed is not always fixed).
        "status_notes": status_notes(row),
        "service_name": services[code].name if code in services else None,
        "service_code": code,
        "description": REJECTED_DESCRIPTION if rejected else mask_personal(row["description"]),
        "agency_responsible": "街道网格化社会管理指挥中心",
        "service_notice": None,
        "requested_datetime": _iso(row["received_at"]),
        "updated_datetime": _iso(max(m for m in (row.get("updated_at"), row.get("acted_at"), row["received_at"]) if m)),
        "expected_datetime": None,
        # Free text too: a resident may type a number into it ("文化路12号，电话139…").
        "address": None if rejected else mask_personal(row["address"]) if row.get("address") else row.get("address"),
        "address_id": None,
        "zipcode": None,
        "lat": None if rejected else row.get("lat"),
        "long": None if rejected else row.get("lon"),
        "media_url": None if rejected else photos.url((row.get("media") or [None])[0]),
    }


def status_notes(row: Mapping[str, Any]) -> str:
    """What happened to the request, in the words of its latest public step (masked). A rejected or merged request
    not yet given its step by intake's reader of wangge.cases says it from intake's own row, as the step will."""
    if row.get("public_note"):
        return mask_personal(row["public_note"])
    if row["state"] == "rejected":
        return step_of("case.rejected", {"reason": row.get("reject_reason") or ""}, None).note  # type: ignore[union-attr]
    if row["state"] == "merged" and row.get("into_case_no"):
        return step_of("case.merged", {"into_case_no": row["into_case_no"]}, None).note  # type: ignore[union-attr]
    return STATUS_NOTES.get(row["state"], "")


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
    return _document(top)


def _document(top: ElementTree.Element) -> bytes:
    return b'<?xml version="1.0" encoding="utf-8"?>' + ElementTree.tostring(top, encoding="unicode").encode()


def _iso(moment: datetime | None) -> str | None:
    """ISO 8601 in the street's time (+08:00), as every other answer of wangge gives it."""
    return to_street_time(moment).isoformat() if moment else None


# ---- servicerequestupdates: what happened to a request after it was taken ---------------------------------
# Open311's own status is open or closed; the updates extension FixMyStreet reads (its fetch-comments) takes the
# finer statuses below and maps them to its own states (Open311.pm map_state: lower case, "_" → " "; "fixed" →
# fixed, "not councils responsibility" → not responsible, "no further action" → unable to fix, "open" →
# confirmed, and a bare "closed" → fixed unless the body is set up for extended statuses). So only a case that
# was really fixed reads FIXED: a rejected report is NOT_COUNCILS_RESPONSIBILITY, a merged one DUPLICATE, an
# explained one NO_FURTHER_ACTION; external_status_code carries wangge's own state for clients that map it.

@dataclass(frozen=True)
class Step:
    """One public step of a case: the updates' status, wangge's own state code and the note a client shows."""

    status: str
    code: str
    note: str
    media_url: str | None = None
    state: str | None = None  # wangge's state after this step (None: a note, the state stays)


UPDATE_TYPES = frozenset({
    "case.accepted", "case.rejected", "case.merged", "case.dispatched", "case.signed", "case.progress-reported",
    "case.returned", "case.suspended", "case.resumed", "case.resolved", "case.explained", "case.reworked",
    "case.closed", "case.reopened", "case.commented", "case.extension-decided",
})
# The updates' status while a case is in each state (a comment keeps the status its case has).
STATUS_OF_STATE = {"accepted": "OPEN", "dispatched": "ACTION_SCHEDULED", "in_progress": "IN_PROGRESS",
                   "suspended": "IN_PROGRESS", "resolved": "IN_PROGRESS", "rework": "IN_PROGRESS",
                   "returned": "INVESTIGATING", "explained": "NO_FURTHER_ACTION", "reopened": "OPEN",
                   "rejected": "NOT_COUNCILS_RESPONSIBILITY", "merged": "DUPLICATE", "closed-resolved": "FIXED",
                   "closed-explained": "NO_FURTHER_ACTION", "closed": "FIXED"}


def _first(media: Any) -> str | None:
    return str(media[0]) if isinstance(media, list) and media else None


def step_of(event_type: str, data: Mapping[str, Any], current: str | None) -> Step | None:
    """The public step an event on wangge.cases makes (None: not one a resident sees). `current` is the case's
    state code before it (for a comment, which changes no state). Texts are masked again: they are public."""
    text = {key: mask_personal(str(value)) for key, value in data.items() if isinstance(value, str)}

    def moved(code: str, note: str, media: Any = None) -> Step:
        return Step(STATUS_OF_STATE[code], code, note, _first(media), code)

    if event_type == "case.accepted":
        return moved("accepted", "已立案，等待派遣处置")
    if event_type == "case.rejected":
        return moved("rejected", f"不予立案（问题未处理）：{text.get('reason', '')}")
    if event_type == "case.merged":
        return moved("merged", f"与案件{text.get('into_case_no', '')}为同一问题，已合并办理，请关注该案件进展")
    if event_type == "case.dispatched":
        whom = text.get("owner_name") or "责任单位"
        again = {"rework": "返工，", "reopen": "重新处置，", "manual": "改派，"}.get(str(data.get("occasion")), "")
        return moved("dispatched", f"{again}已派遣至{whom}处置")
    if event_type == "case.signed":
        return moved("in_progress", "责任单位已签收，正在处置")
    if event_type == "case.progress-reported":
        return Step(STATUS_OF_STATE.get(current or "", "IN_PROGRESS"), current or "in_progress",
                    f"处置进展：{text.get('note', '')}", _first(data.get("media")))
    if event_type == "case.returned":
        return moved("returned", "责任单位申请退回，指挥中心重新派遣")
    if event_type == "case.suspended":
        return moved("suspended", f"暂停处置：{text.get('reason', '')}")
    if event_type == "case.resumed":
        return moved("in_progress", "恢复处置")
    if event_type == "case.resolved":
        return moved("resolved", f"责任单位报告处置完成，待现场核查：{text.get('result', '')}", data.get("media"))
    if event_type == "case.explained":
        return moved("explained", f"暂时无法解决，解释说明：{text.get('explanation', '')}")
    if event_type == "case.reworked":
        return moved("rework", "现场核查未通过，返工处置")
    if event_type == "case.closed":
        if data.get("outcome") == "explained":
            return moved("closed-explained", f"已结案（问题暂未解决，已解释说明）：{text.get('result', '')}",
                         data.get("media"))
        return moved("closed-resolved", f"已办结：{text.get('result', '')}", data.get("media"))
    if event_type == "case.reopened":
        return moved("reopened", "居民反映问题未解决，案件重新处置")
    if event_type == "case.extension-decided":
        # Only an approved extension is news to the resident (a denied one changes nothing they were told).
        if data.get("approved") is not True:
            return None
        return Step(STATUS_OF_STATE.get(current or "", "IN_PROGRESS"), current or "in_progress",
                    f"处置需要更多时间，经批准延期，预计{_street_time(data.get('due_at'))}前办结")
    if event_type == "case.commented":
        said = "居民反映问题未解决" if data.get("reopen") is True else "居民留言"
        return Step(STATUS_OF_STATE.get(current or "", "OPEN"), current or "accepted",
                    f"{said}：{text.get('text', '')}", _first(data.get("media")))
    return None


# What notify told the resident (reply.issued on wangge.replies) is a public step too: the street's own words. Only the
# replies to residents (not the leadership's escalation notices), and not a failed one (nobody was told). A reply's
# text holds no name or number of the resident (the templates get none: services/notify/domain/templates.py), but a
# survey invitation carries the resident's own signed link, and an owner's words quoted in it may hold a number:
# links are cut and numbers masked.
UNCHANGED = "UNCHANGED"
RESIDENT_REPLY_KINDS = frozenset({"acknowledgement", "progress", "resolution", "explanation", "survey", "rejection"})
_LINK = re.compile(r"\s*https?://\S+")


def reply_step(kind: Any, state: Any, text: Any, current: str | None) -> Step | None:
    """The public step a reply to the resident makes (None: not a resident's reply, a failed one, or one on a case
    with no public step yet — a held report is not public). Its status is UNCHANGED (FixMyStreet's map_state keeps
    the problem's state for it): a reply arrives on its own topic, possibly before intake has recorded the state
    change it follows, so the state it would carry could be the one before — and a client would move back to it."""
    if kind not in RESIDENT_REPLY_KINDS or state == "failed" or not current or not isinstance(text, str):
        return None
    said = mask_personal(_LINK.sub("（链接已发给居民）", text)).strip()
    if not said:
        return None
    return Step(UNCHANGED, current, f"答复居民：{said}")


def reply_update_id(case_id: uuid.UUID, event_id: Any, kind: Any, text: Any) -> str:
    """The update_id of a reply to the resident: one per reply — the case event it answers and its words — shared by
    its copies (the reporter's, each follower's, a resend). A reply that names no event (issued before reply.issued
    carried event_id) keeps the key it had then (the case and the words)."""
    if event_id:
        return str(uuid.uuid5(case_id, f"reply:{event_id}:{kind}:{text}"))
    return str(uuid.uuid5(case_id, f"reply:{kind}:{text}"))


def _street_time(value: Any) -> str:
    """11月27日15:30 in the moment's own offset (supervision writes deadlines in street time)."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return f"{moment.month}月{moment.day}日{moment:%H:%M}"


def update_view(row: Mapping[str, Any], photos: PublicPhotos) -> dict[str, Any]:
    """One service request update as servicerequestupdates answers it (no one's name or number; a photo as its
    public URL)."""
    return {"update_id": row["update_id"], "service_request_id": row["case_no"], "status": row["status"],
            "external_status_code": row["external_status_code"], "description": row["description"],
            "updated_datetime": _iso(row["occurred_at"]), "media_url": photos.url(row.get("media_url"))}


def comment_created_view(update_id: str) -> list[dict[str, Any]]:
    """POST servicerequestupdates: the update's id."""
    return [{"update_id": update_id}]
