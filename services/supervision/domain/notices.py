"""The Chinese texts of urge notices (催办 / 督办). Pure."""
from __future__ import annotations

from datetime import datetime


def _when(moment: datetime) -> str:
    """11月27日15:30 (the moment must already be in the street's zone)."""
    return f"{moment.month}月{moment.day}日{moment:%H:%M}"


STAGE_NAMES = {"handling": "处置", "dispatch": "受理派遣", "sign": "签收", "check": "核查"}
_STAGE_ASKS = {"handling": "请抓紧处置", "dispatch": "请抓紧受理派遣", "sign": "请及时签收", "check": "请及时核查"}


def reminder_text(case_no: str, category_label: str, due_at: datetime, stage: str = "handling") -> str:
    """催办: the limit (of the handling clock, or of a stage: 签收, 核查 …) is 75% used."""
    if stage == "handling":
        return f"【催办】案件{case_no}（{category_label}）将于{_when(due_at)}到期，请抓紧处置。"
    name = STAGE_NAMES.get(stage, stage)
    return f"【催办】案件{case_no}（{category_label}）{name}时限将于{_when(due_at)}到期，{_STAGE_ASKS.get(stage, '请抓紧办理')}。"


LEVEL_NAMES = {"community": "社区", "command_center": "指挥中心", "leadership": "街道领导"}


def overdue_text(case_no: str, category_label: str, due_at: datetime, level: str) -> str:
    """督办: the limit has passed and the case went up to `level`."""
    up = LEVEL_NAMES.get(level, level)
    return f"【督办】案件{case_no}（{category_label}）已于{_when(due_at)}超期，已报{up}督办，请立即处置并反馈。"


def escalation_reason(due_at: datetime, stage: str = "handling") -> str:
    """Why a case went one level up."""
    return f"{STAGE_NAMES.get(stage, stage)}时限已于{_when(due_at)}届满，案件未办结"


def escalated_text(case_no: str, category_label: str, due_at: datetime, level: str, stage: str = "handling") -> str:
    """督办 up the ladder (task.escalated): who now supervises the overdue case."""
    up = LEVEL_NAMES.get(level, level)
    return (f"【督办】案件{case_no}（{category_label}）{STAGE_NAMES.get(stage, stage)}时限已于{_when(due_at)}届满，"
            f"已升级至{up}督办。")


def urged_text(case_no: str, category_label: str, due_at: datetime, note: str, overdue: bool) -> str:
    """督办 by hand (task.urged with the operator's note): the note, and where the deadline stands."""
    deadline = f"已于{_when(due_at)}超期" if overdue else f"期限{_when(due_at)}"
    return f"【督办】指挥中心督办案件{case_no}（{category_label}，{deadline}）：{note}"


def commented_text(case_no: str, comment: str, photos: int) -> str:
    """A resident's comment on a case the owner holds (task.commented)."""
    extra = f"（附照片{photos}张）" if photos else ""
    return f"【居民留言】案件{case_no}：{comment}{extra}"
