"""The suggested category for a held report: the categories whose own words appear in the description."""
from __future__ import annotations

import pytest

from services.routing.domain.suggestion import Candidate, suggest, words
from shared.settings import Settings
from shared.street import load_street

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def categories() -> list[Candidate]:
    street = load_street(Settings().street_dir)
    return [Candidate(c.code, c.name, c.group) for c in street.categories.values()]


def test_words_are_the_two_character_runs_of_chinese_text():
    assert words("路灯不亮") == ["路灯", "灯不", "不亮"]
    assert words("垃圾箱 abc 损坏，垃圾") == ["垃圾", "圾箱", "损坏"]


@pytest.mark.parametrize("description, expected", [
    ("垃圾箱损坏，垃圾外溢", "CM04"),
    ("小区门口路灯不亮好几天了", "CM06"),
    ("楼上漏水，邻里纠纷", "MD01"),
    ("下水道堵塞，污水漫到路面", "CM07"),
    ("楼道里堆满杂物，消防通道堵塞", "AQ02"),
])
def test_the_category_whose_name_is_in_the_description_comes_first(categories, description, expected):
    best = suggest(description, categories)[0]
    assert best.code == expected
    assert best.matched and all(w in description for w in best.matched)
    assert "描述中出现" in best.why and best.name in best.why


def test_nothing_is_suggested_when_no_category_word_appears(categories):
    assert suggest("hello", categories) == []
    assert suggest("今天天气", categories) == []


def test_at_most_limit_suggestions_best_first(categories):
    found = suggest("道路破损，路灯不亮，垃圾箱损坏", categories, limit=2)
    assert len(found) == 2
    assert found[0].score >= found[1].score
