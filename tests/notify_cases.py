"""A case's events as intake, routing and supervision publish them, for the tests of notify's replies (and of those
that read them): residents' phones, a case closed with its survey sent, and waiting for replies on wangge.replies."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Callable

from shared.clock import now
from shared.contracts import Envelope
from shared.contracts.cases import (
    CaseAccepted,
    CaseClosed,
    CaseDispatched,
    CaseExplained,
    CaseExtensionDecided,
    CaseMerged,
    CaseRejected,
    CaseReopened,
    CaseReported,
    CaseSigned,
)
from shared.contracts.common import Reporter, TimeLimit
from tests.notify_running import Notify
from tests.support import TopicReader

A_PHONE, B_PHONE, C_PHONE = "13900001001", "13900002002", "13900003003"


class Case:
    """One case's events, as intake, routing and supervision would publish them."""

    def __init__(self, phone: str | None):
        self.id = str(uuid.uuid4())
        self.no = f"20261127-{uuid.uuid4().int % 100000:05d}"
        self.phone = phone

    def _env(self, event, source: str = "supervision") -> Envelope:
        return event.envelope(source=source, case_id=self.id)

    def reported(self) -> Envelope:
        return self._env(CaseReported(
            case_no=self.no, source="hotline", external_id=f"h-{self.id[:8]}", description="路灯不亮",
            address="文化路12号", reporter=Reporter(name="张先生", phone=self.phone) if self.phone else None,
            observed_at=now()), "intake")

    def accepted(self) -> Envelope:
        return self._env(CaseAccepted(case_no=self.no, category="street-light", unit_grid="U001",
                                      description="路灯不亮"), "intake")

    def rejected(self, reason: str) -> Envelope:
        return self._env(CaseRejected(case_no=self.no, reason=reason, by="operator:值班员甲"), "intake")

    def merged(self, into: "Case") -> Envelope:
        return self._env(CaseMerged(case_no=self.no, into_case_id=into.id, into_case_no=into.no), "intake")

    def dispatched(self) -> Envelope:
        return self._env(CaseDispatched(
            case_no=self.no, owner="shizheng", category="street-light", unit_grid="U001", priority="normal",
            time_limit=TimeLimit(value=2, unit="work_days"), dispatched_at=now(), due_at=now() + timedelta(days=2),
        ), "routing")

    def signed(self) -> Envelope:
        return self._env(CaseSigned(case_no=self.no, owner="shizheng", update_id=str(uuid.uuid4())))

    def extension(self, approved: bool, due: datetime) -> Envelope:
        return self._env(CaseExtensionDecided(case_no=self.no, owner="shizheng", approved=approved, due_at=due,
                                              by="operator:值班员甲"))

    def explained(self, text: str) -> Envelope:
        return self._env(CaseExplained(case_no=self.no, owner="shizheng", explanation=text,
                                       update_id=str(uuid.uuid4())))

    def closed(self, outcome: str = "resolved", result: str = "已更换灯泡，恢复照明。",
               at: datetime | None = None) -> Envelope:
        return self._env(CaseClosed(case_no=self.no, owner="shizheng", outcome=outcome, result=result,
                                    by="operator:值班员甲", closed_at=at or now(), on_time=True))

    def reopened(self) -> Envelope:
        return self._env(CaseReopened(case_no=self.no, owner="shizheng", reason="居民不满意", by="resident"))


def of_case(*cases: Case, type_: str = "reply.issued") -> Callable[[dict], bool]:
    numbers = {c.no for c in cases}
    return lambda m: m.get("type") == type_ and m.get("data", {}).get("case_no") in numbers


async def at_least(reader: TopicReader, n: int, predicate: Callable[[dict], bool], timeout: float = 30) -> list[dict]:
    """Wait until `n` messages matching predicate were seen; all of them."""
    async def enough() -> list[dict]:
        while True:
            found = [m[2] for m in reader.seen if predicate(m[2])]
            if len(found) >= n:
                return found
            try:
                await reader.wait_for(lambda _m: False, timeout=0.3)
            except asyncio.TimeoutError:
                pass
    return await asyncio.wait_for(enough(), timeout)


async def closed_case(notify: Notify, replies: TopicReader, phone: str, *, at: datetime | None = None,
                      outcome: str = "resolved") -> Case:
    case = Case(phone)
    await notify.cases(case.reported(), case.accepted(), case.closed(outcome=outcome, at=at))
    await replies.wait_for(lambda m: of_case(case)(m) and m["data"]["kind"] == "survey", timeout=20)
    return case
