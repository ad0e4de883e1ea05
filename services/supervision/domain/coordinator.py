"""What a coordinator's screen shows of a case: its state and outcome in Chinese. Pure."""
from __future__ import annotations

from typing import Any, Mapping

from services.supervision.domain.decisions import STATE_NAMES

OUTCOME_LABELS = {"fixed_on_the_spot": "自行处置", "resolved": "已解决", "explained": "已解释说明",
                  "rejected": "不予受理", "merged": "已合并"}


def state_label(state: str | None) -> str:
    """The state as people read it (待受理 while supervision has no state for it yet)."""
    return STATE_NAMES.get(state or "reported", state or "待受理")


def outcome(row: Mapping[str, Any]) -> str | None:
    """How a finished case ended (null while it is open): fixed_on_the_spot, resolved, explained, rejected, merged."""
    if row["on_the_spot"]:
        return "fixed_on_the_spot"
    if row["state"] == "closed":
        return row["close_outcome"]
    if row["state"] in ("rejected", "merged"):
        return row["state"]
    return None


def outcome_label(row: Mapping[str, Any]) -> str | None:
    """The outcome in Chinese, with the reason of a rejection or the case a duplicate follows."""
    found = outcome(row)
    if found is None:
        return None
    label = OUTCOME_LABELS.get(found, found)
    if found == "rejected" and row["rejection_reason"]:
        return f"{label}：{row['rejection_reason']}"
    if found == "merged" and row["merged_into_case_no"]:
        return f"{label}至 {row['merged_into_case_no']}"
    return label
