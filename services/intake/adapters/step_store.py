"""The public steps of a batch of cases, set-based: the cases read and locked in one statement, their steps worked out
in memory in the partition's order, then written in one statement per table.

The rules: a step's time never goes back behind one already recorded for its case; the request's
updated time, state code and note follow each step (a comment or a reply changes no note); an update already
recorded (its update_id) is not written again. A step's time never going back matters because the replies to the
resident come on their own topic and may be recorded before the case event they follow, and a client that keeps the
time of the last update it took (FixMyStreet's lastupdate) ignores a state change dated before it."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.intake.domain.open311 import Step

# Steps whose note is not a status (a resident's comment, a reply to the resident): the request's note stays.
NOT_A_STATUS = ("case.commented", "reply.issued")


@dataclass
class CaseView:
    """What the steps of one case read and move (reports' row, and the time of its latest recorded step)."""

    case_id: uuid.UUID
    case_no: str
    state: str
    public_state: str | None
    public_note: str | None
    updated_at: datetime          # coalesce(updated_at, received_at)
    last_step_at: datetime | None
    changed: bool = False         # state, updated time, public state or note moved
    stepped: bool = False         # a step was recorded (its updated time moved)
    forget_residents: bool = False

    @property
    def reply_state(self) -> str:
        """The state code a reply to the resident is recorded under (repository.reply_state): '' for a held report."""
        if self.state == "reported":
            return ""
        return self.public_state if self.public_state is not None else self.state


class CaseSteps:
    """The cases of one batch, locked (in case_id order, so intake's two readers and two instances never deadlock)
    until the batch commits."""

    def __init__(self, cases: dict[uuid.UUID, CaseView], recorded: set[str]):
        self._cases = cases
        self._recorded = recorded  # update_ids in case_updates (and those recorded in this batch)
        self._updates: list[tuple[str, uuid.UUID, str, str, datetime, str, str, str, str | None]] = []

    @classmethod
    async def read(cls, conn: asyncpg.Connection, case_ids: list[uuid.UUID], update_ids: list[str]) -> "CaseSteps":
        """The cases, locked; then (a statement of its own, so that it sees what a transaction that held a lock
        before committed) the time of each one's latest step and which of these updates are recorded already."""
        if not case_ids:
            return cls({}, set())
        ids = sorted(set(case_ids))
        rows = await conn.fetch(
            """SELECT case_id, case_no, state, public_state, public_note, coalesce(updated_at, received_at) AS updated_at
                 FROM reports WHERE case_id = ANY($1::uuid[]) ORDER BY case_id FOR UPDATE""", ids)
        cases = {r["case_id"]: CaseView(**dict(r), last_step_at=None) for r in rows}
        recorded: set[str] = set()
        for r in await conn.fetch(
                """SELECT case_id, max(occurred_at) AS last, NULL AS update_id FROM case_updates
                    WHERE case_id = ANY($1::uuid[]) GROUP BY case_id
                   UNION ALL
                   SELECT NULL, NULL, update_id FROM case_updates WHERE update_id = ANY($2::text[])""",
                [i for i in ids if i in cases], sorted(set(update_ids))):
            if r["update_id"] is not None:
                recorded.add(r["update_id"])
            else:
                cases[r["case_id"]].last_step_at = r["last"]
        return cls(cases, recorded)

    def get(self, case_id: uuid.UUID) -> CaseView | None:
        return self._cases.get(case_id)

    def has_update(self, update_id: str) -> bool:
        return update_id in self._recorded

    def follow_lifecycle(self, case_id: uuid.UUID, *, closed: bool) -> None:
        """An accepted case closed (or a closed one reopened): what Open311 readers and merges see."""
        case = self._cases.get(case_id)
        old, new = ("accepted", "closed") if closed else ("closed", "accepted")
        if case is not None and case.state == old:
            case.state, case.changed = new, True

    def forget(self, case_id: uuid.UUID) -> None:
        """The case's residents' data was erased (notify): the ids of who reported it go too."""
        case = self._cases.get(case_id)
        if case is not None:
            case.forget_residents = case.changed = True

    def record(self, case: CaseView, update_id: str, event_type: str, at: datetime, step: Step) -> None:
        """One public step of the case, in the batch's order."""
        if case.last_step_at is not None:
            at = max(at, case.last_step_at)
        case.updated_at = max(case.updated_at, at)
        if step.state is not None:
            case.public_state = step.state
        if event_type not in NOT_A_STATUS:
            case.public_note = step.note
        case.changed = case.stepped = True
        if update_id in self._recorded:
            return
        self._recorded.add(update_id)
        case.last_step_at = at
        self._updates.append((update_id, case.case_id, case.case_no, event_type, at, step.status, step.code, step.note,
                              step.media_url))

    async def write(self, conn: asyncpg.Connection) -> None:
        """The batch's steps in one statement, and the cases they moved in another."""
        if self._updates:
            await conn.execute(
                """INSERT INTO case_updates (update_id, case_id, case_no, event_type, occurred_at, status,
                                             external_status_code, description, media_url)
                   SELECT update_id, case_id, case_no, event_type, occurred_at, status, code, description, media_url
                     FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
                                 $7::text[], $8::text[], $9::text[]) WITH ORDINALITY
                          AS v(update_id, case_id, case_no, event_type, occurred_at, status, code, description,
                               media_url, n)
                    ORDER BY n  -- seq follows the batch's order, as it followed the events one by one
                   ON CONFLICT (update_id) DO NOTHING""",
                *(list(column) for column in zip(*self._updates)))
        changed = [c for c in self._cases.values() if c.changed]
        if changed:
            await conn.execute(
                """UPDATE reports r
                      SET state = v.state,
                          updated_at = CASE WHEN v.stepped THEN v.updated_at ELSE r.updated_at END,
                          public_state = v.public_state, public_note = v.public_note,
                          resident_keys = CASE WHEN v.forget THEN '{}' ELSE r.resident_keys END
                     FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::bool[], $5::text[], $6::text[],
                                 $7::bool[]) AS v(case_id, state, updated_at, stepped, public_state, public_note, forget)
                    WHERE r.case_id = v.case_id""",
                [c.case_id for c in changed], [c.state for c in changed], [c.updated_at for c in changed],
                [c.stepped for c in changed], [c.public_state for c in changed], [c.public_note for c in changed],
                [c.forget_residents for c in changed])
