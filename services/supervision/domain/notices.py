"""The Chinese texts of urge notices (催办 / 督办). Pure."""
from __future__ import annotations

from datetime import datetime


def _when(moment: datetime) -> str:
    """11月27日15:30 (the moment must already be in the street's zone)."""
    return f"{moment.month}月{moment.day}日{moment:%H:%M}"


def reminder_text(case_no: str, category_label: str, due_at: datetime) -> str:
    """催办: the limit is 75% used."""
    return f"【催办】案件{case_no}（{category_label}）将于{_when(due_at)}到期，请抓紧处置。"


LEVEL_NAMES = {"community": "社区", "command_center": "指挥中心", "leadership": "街道领导"}


def overdue_text(case_no: str, category_label: str, due_at: datetime, level: str) -> str:
    """督办: the limit has passed and the case went up to `level`."""
    up = LEVEL_NAMES.get(level, level)
    return f"【督办】案件{case_no}（{category_label}）已于{_when(due_at)}超期，已报{up}督办，请立即处置并反馈。"


def escalation_reason(due_at: datetime) -> str:
    """Why a case went one level up."""
    return f"处置时限已于{_when(due_at)}届满，案件未办结"
