"""A resident's comment on their case: from the resident's page (/my/) or an Open311 client (POST
servicerequestupdates). Intake records it once per sender's key and publishes case.commented on wangge.cases;
supervision folds it into the history and forwards it to the case's holder as task.commented.

    comment = await add_comment(runtime, case_no="20261206-0001", text="还没修好", media=["/media/<id>"],
                                channel="web", sender_key="my:<session>:<client id>", clock=intake_clock)
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from services.intake.adapters import media as media_sql
from shared.clock import Clock
from shared.contracts.cases import CaseCommented
from shared.personal_data import mask_personal
from shared.runtime import ServiceRuntime

SOURCE = "intake"
MAX_TEXT = 2000
MAX_PHOTOS = 9
# A comment is for a case still being handled, or just closed (the resident says it is not fixed): a rejected
# or merged report has nobody to read it (a merged one: comment on the case it follows).
_CLOSED_TO_COMMENTS = {"rejected": "the report was not taken as a case (不予立案，无法留言)",
                       "merged": "the report was merged into {into}: comment on that case (已合并至{into}，请在该案件留言)"}


class CommentRefused(ValueError):
    """The comment cannot be added; status says how (404 unknown case, 400 bad text, 409 finished case)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Comment:
    """A recorded comment (duplicate: the same sender_key had already been recorded, nothing new was sent)."""

    comment_id: str
    case_no: str
    created_at: object
    duplicate: bool


async def add_comment(runtime: ServiceRuntime, *, case_no: str, text: str, media: list[str], channel: str,
                      sender_key: str, clock: Clock, reopen: bool = False, legacy_key: str | None = None) -> Comment:
    """Record a resident's comment and publish case.commented, once per sender_key (the same key again answers
    the first comment). Raises CommentRefused. Photos must be stored by wangge (/media/<id>) or absolute URLs.
    `reopen`: the resident says the closed case is not solved (supervision reopens it within the survey window).
    `legacy_key`: the key the same comment had under an earlier format, if it was recorded on this case then (a
    client retrying across the change gets its comment back, not a second one). `clock`: intake's (its reception's),
    the comment's time."""
    text = (text or "").strip()
    if not text and not media:
        raise CommentRefused(400, "the comment is empty: write a description or add a photo (留言内容不能为空)")
    if len(text) > MAX_TEXT:
        raise CommentRefused(400, f"the comment is longer than {MAX_TEXT} characters (留言不能超过{MAX_TEXT}字)")
    if len(media) > MAX_PHOTOS:
        raise CommentRefused(400, f"at most {MAX_PHOTOS} photos per comment (每条留言最多{MAX_PHOTOS}张照片)")
    async with runtime.uow() as uow:
        known = await _by_key(uow.conn, sender_key, legacy_key, case_no)
        if known is not None:
            return known
        missing = await media_sql.not_stored(uow.conn, media)
        if missing:
            raise CommentRefused(400, media_sql.not_stored_reason(missing[0]))
        row = await uow.conn.fetchrow(
            """SELECT r.case_id, r.state, m.case_no AS into_no FROM reports r
                 LEFT JOIN reports m ON m.case_id = r.merged_into WHERE r.case_no = $1 FOR UPDATE OF r""", case_no)
        # A held report (not yet vetted) is not public either: the same answer as an unknown number.
        if row is None or row["state"] == "reported":
            raise CommentRefused(404, f"no case {case_no!r} (案件不存在)")
        if row["state"] in _CLOSED_TO_COMMENTS:
            raise CommentRefused(409, _CLOSED_TO_COMMENTS[row["state"]].format(into=row["into_no"]))
        comment_id = str(uuid.uuid4())
        at = clock.now()
        masked = mask_personal(text) or "（照片）"
        try:
            async with uow.savepoint():
                await uow.conn.execute(
                    """INSERT INTO case_comments (comment_id, sender_key, case_id, case_no, channel, text, media,
                                                  created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
                    comment_id, sender_key, row["case_id"], case_no, channel, text, list(media), at)
        except asyncpg.UniqueViolationError:
            # The same comment posted twice at once: the other request recorded it.
            pass
        else:
            event = CaseCommented(case_no=case_no, comment_id=comment_id, text=masked, media=list(media),
                                  channel=channel, reopen=reopen)  # type: ignore[arg-type]
            uow.emit(runtime.topics.cases, event.envelope(source=SOURCE, case_id=str(row["case_id"]), occurred_at=at))
            await uow.commit()
            return Comment(comment_id, case_no, at, duplicate=False)
    async with runtime.uow() as uow:
        known = await _by_key(uow.conn, sender_key)
    assert known is not None
    return known


async def _by_key(conn: asyncpg.Connection, sender_key: str, legacy_key: str | None = None,
                  case_no: str | None = None) -> Comment | None:
    row = await conn.fetchrow(
        """SELECT comment_id, case_no, created_at FROM case_comments
            WHERE sender_key = $1 OR (sender_key = $2 AND case_no = $3) ORDER BY sender_key = $1 DESC LIMIT 1""",
        sender_key, legacy_key, case_no)
    return Comment(row["comment_id"], row["case_no"], row["created_at"], duplicate=True) if row else None
