"""A suggested category for a held report: which categories' own words appear in its description.

Deliberately simple so an operator can see why: each category's name (split at "/", e.g. 垃圾箱损坏/暴露垃圾)
and its group (城市管理) are cut into two-character words; a category scores the share of one name part's
words found in the description (the best part counts), plus a little for its group's words. The answer
names the words that matched. No I/O.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# Words of the group alone are weak evidence (城市管理 fits half the street): a small bonus, never a suggestion.
GROUP_WEIGHT = 0.25
_NOT_HAN = re.compile(r"[^\u4e00-\u9fff]+")


@dataclass(frozen=True)
class Candidate:
    """A category as the suggestion needs it."""

    code: str
    name: str
    group: str


@dataclass(frozen=True)
class Suggestion:
    """One suggested category, its score (0–1.25) and the words of its name or group found in the text."""

    code: str
    name: str
    group: str
    score: float
    matched: tuple[str, ...]

    @property
    def why(self) -> str:
        """The reason in the operator's words."""
        return f"描述中出现「{'」「'.join(self.matched)}」（类别“{self.name}”的用词）"


def words(text: str) -> list[str]:
    """The two-character words of a text's Chinese runs, in order, without repeats (路灯不亮 → 路灯, 灯不, 不亮)."""
    found: list[str] = []
    for run in _NOT_HAN.split(text):
        for i in range(len(run) - 1):
            if run[i:i + 2] not in found:
                found.append(run[i:i + 2])
        if len(run) == 1 and run not in found:
            found.append(run)  # a one-character name part (rare) is its own word
    return found


def _share(part: str, text: str) -> tuple[float, list[str]]:
    """The share of a name part's words found in the text, and those words."""
    part_words = words(part)
    hits = [w for w in part_words if w in text]
    return (len(hits) / len(part_words) if part_words else 0.0), hits


def suggest(description: str, categories: list[Candidate], limit: int = 3) -> list[Suggestion]:
    """The categories whose name words appear in the description, best first (ties: by code); at most `limit`."""
    ranked: list[Suggestion] = []
    for category in categories:
        best, best_hits = 0.0, []
        for part in category.name.split("/"):
            share, hits = _share(part, description)
            if share > best:
                best, best_hits = share, hits
        if best == 0.0:
            continue
        group_share, group_hits = _share(category.group, description)
        matched = tuple(dict.fromkeys(best_hits + group_hits))
        ranked.append(Suggestion(category.code, category.name, category.group,
                                 round(best + GROUP_WEIGHT * group_share, 4), matched))
    ranked.sort(key=lambda s: (-s.score, s.code))
    return ranked[:limit]
