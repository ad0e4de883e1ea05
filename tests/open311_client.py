"""An Open311 GeoReport v2 client written from the spec (https://wiki.open311.org/GeoReport_v2) and the service
request updates extension FixMyStreet speaks, the way a civic-report client uses them: XML, form posts with
api_key, W3C date-times. The tests drive wangge through it as FixMyStreet's Open311.pm would."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.etree import ElementTree

import httpx


@dataclass
class Answer:
    """An Open311 answer: the HTTP status, the entries (dicts of the item elements) or the errors."""

    status: int
    entries: list[dict[str, Any]]
    errors: list[dict[str, str]]
    headers: httpx.Headers
    root: str


def _entries(root: ElementTree.Element) -> list[dict[str, Any]]:
    return [{child.tag: (child.text if len(child) == 0 else child) for child in item} for item in root]


class Open311Client:
    """GET services, GET/POST requests, GET/POST servicerequestupdates — XML, as FixMyStreet asks."""

    def __init__(self, http: httpx.AsyncClient, api_key: str, base: str = "/open311/v2"):
        self.http, self.api_key, self.base = http, api_key, base

    async def _call(self, method: str, path: str, **kwargs: Any) -> Answer:
        response = await asyncio.wait_for(self.http.request(method, f"{self.base}/{path}", **kwargs), 20)
        assert response.headers["content-type"].startswith("application/xml"), (response.status_code, response.text)
        root = ElementTree.fromstring(response.content)  # well-formed, whatever the status
        if root.tag == "errors":
            errors = [{"code": e.findtext("code"), "description": e.findtext("description")} for e in root]
            return Answer(response.status_code, [], errors, response.headers, root.tag)
        return Answer(response.status_code, _entries(root), [], response.headers, root.tag)

    async def services(self) -> Answer:
        return await self._call("GET", "services.xml")

    async def definition(self, code: str) -> ElementTree.Element:
        response = await asyncio.wait_for(self.http.get(f"{self.base}/services/{code}.xml"), 20)
        return ElementTree.fromstring(response.content)

    async def post_request(self, **fields: str) -> Answer:
        return await self._call("POST", "requests.xml", data={"api_key": self.api_key, **fields})

    async def requests(self, **params: str) -> Answer:
        return await self._call("GET", "requests.xml", params={"api_key": self.api_key, **params})

    async def updates(self, start: datetime | None = None, end: datetime | None = None, **params: str) -> Answer:
        """fetch-comments: the updates between start_date and end_date (W3C date-times, both or neither)."""
        if start and end:
            params = {"start_date": start.isoformat(timespec="seconds"), "end_date": end.isoformat(timespec="seconds"),
                      **params}
        return await self._call("GET", "servicerequestupdates.xml", params={"api_key": self.api_key, **params})

    async def post_update(self, service_request_id: str, update_id: str, description: str, status: str = "OPEN",
                          files: dict | None = None, **fields: str) -> Answer:
        """A comment of the client's user on a request (first_name, last_name, email as FixMyStreet sends them)."""
        data = {"api_key": self.api_key, "service_request_id": service_request_id, "update_id": update_id,
                "description": description, "status": status, "updated_datetime": datetime.now().astimezone()
                .isoformat(timespec="seconds"), "first_name": "张", "last_name": "三", "email": "zhang@example.org",
                **fields}
        return await self._call("POST", "servicerequestupdates.xml", data=data, files=files)
