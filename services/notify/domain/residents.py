"""What residents see and answer: their case's state, the survey's rules, guessing limits. Pure, no I/O."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.contracts.cases import SurveyVerdict


# How a resident reads each state: plain words, not the command center's jargon.
STATE_LABELS: dict[str, str] = {
    "reported": "已接收，待受理",
    "accepted": "已受理",
    "rejected": "不予受理",
    "merged": "已合并办理",
    "dispatched": "已派遣至责任单位",
    "returned": "正在重新派遣",
    "in_progress": "处置中",
    "suspended": "暂缓处置",
    "resolved": "已处置，待核查",
    "explained": "已作解释说明，待核查",
    "rework": "返工处置中",
    "closed": "已办结",
    "reopened": "已重新交办",
}

VERDICT_LABELS: dict[str, str] = {"satisfied": "满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意"}

# What a resident may text back to the survey SMS. 基本满意 before 满意: both end in 满意.
_SMS_VERDICTS: dict[str, SurveyVerdict] = {
    "1": "satisfied", "满意": "satisfied", "非常满意": "satisfied",
    "2": "basically_satisfied", "基本满意": "basically_satisfied", "一般": "basically_satisfied",
    "3": "unsatisfied", "不满意": "unsatisfied",
}
# Spaces and the punctuation people add around a one-character answer ("3。", "【1】").
_SMS_NOISE = re.compile(r"[\s\.,!?;:，。！？；：、'\"“”‘’()（）\[\]【】<>《》~\-]+")

# Guessing limits, counted per client (its address as shared/proxies.py finds it), never per case alone: a
# stranger's failures must not lock a resident out. A few typos on one case; a few more across cases, so that
# one phone cannot be tried against a run of sequential case numbers.
LOOKUP_WINDOW = timedelta(minutes=15)
LOOKUP_MAX_FAILURES = 5
LOOKUP_MAX_FAILURES_PER_CLIENT = 10


def state_label(state: str) -> str:
    """The Chinese label of a state code (the code itself if it is new to this table)."""
    return STATE_LABELS.get(state, state)


def parse_sms_verdict(text: str) -> SurveyVerdict | None:
    """The verdict in a resident's SMS reply: 1/2/3 (full-width too) or 满意/基本满意/不满意; None otherwise."""
    compact = _SMS_NOISE.sub("", unicodedata.normalize("NFKC", text or ""))
    return _SMS_VERDICTS.get(compact)


@dataclass(frozen=True)
class SurveyState:
    """A survey as the answer rules need it."""

    closes_at: datetime
    answered_at: datetime | None


def survey_refusal(survey: SurveyState | None, now: datetime, case_state: str | None = None) -> str | None:
    """Why an answer cannot be taken now (for the resident, in Chinese and English), or None if it can."""
    if survey is None:
        return "the case is not closed yet: there is no survey to answer (案件尚未办结，暂无回访)"
    if survey.answered_at is not None:
        if case_state is not None and case_state != "closed":
            return ("the case is being handled again; it is surveyed again once closed "
                    "(案件已重新交办，办结后将再次回访)")
        return "this survey was already answered (该案件的回访已评价)"
    if now >= survey.closes_at:
        return "the survey window has closed (回访评价期限已过)"
    return None


def survey_closes_at(closed_at: datetime, window_days: float) -> datetime:
    """The end of the survey window: the closing moment plus the configured days."""
    return closed_at + timedelta(days=window_days)


def lockout_seconds(failure_times: list[datetime], now: datetime, *, max_failures: int = LOOKUP_MAX_FAILURES,
                    window: timedelta = LOOKUP_WINDOW) -> int:
    """Seconds a caller must wait before another look-up (0: may go on), given its recent failures."""
    recent = sorted(t for t in failure_times if now - t < window)
    if len(recent) < max_failures:
        return 0
    # Free again once enough of the failures have aged out of the window to fall under the limit.
    freed_at = recent[len(recent) - max_failures] + window
    return max(1, int((freed_at - now).total_seconds() + 0.999))
