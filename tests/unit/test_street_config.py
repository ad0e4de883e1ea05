"""The street's time rules: the shipped file, defaults, every reason a configuration is refused; the ladder."""
from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.supervision.domain import clocks
from services.supervision.domain.policy import StreetPolicy
from shared.street_config import Limit, StreetConfig, StreetConfigError, from_mapping, parse_toml
from shared import worktime
from shared.street import read_calendar_overrides, street_config_folder
from shared.worktime import WorkCalendar

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
Z = ZoneInfo("Asia/Shanghai")


def test_the_demo_streets_file_is_designs_defaults_and_round_trips():
    config = parse_toml((REPO / "streets/wenhualu/wenhualu-config.toml").read_text(encoding="utf-8"))
    assert config == StreetConfig()
    assert config.sign == Limit(2.0, "work_hours") and config.check == Limit(1.0, "work_days")
    assert from_mapping(config.to_dict()) == config
    assert parse_toml("") == StreetConfig()  # every key has its default


def test_every_reason_is_given():
    with pytest.raises(StreetConfigError) as caught:
        from_mapping({"stages": {"sign": {"value": 0, "unit": "weeks"}}, "escalation": {"ladder": ["leadership", "community"]},
                      "calendar": {"periods": [["13:30", "12:00"]]}, "reminder": {"fraction": 1.5}, "extra": {}})
    reasons = " | ".join(caught.value.reasons)
    for part in ("unknown section 'extra'", "stages.sign.value", "stages.sign.unit", "escalation.ladder",
                 "calendar.periods[0]", "reminder.fraction"):
        assert part in reasons
    with pytest.raises(StreetConfigError, match="not TOML"):
        parse_toml("[stages\n")


def test_the_ladder_goes_up_each_level_once():
    ladder = ("command_center", "leadership")
    assert clocks.escalation_level("huanwei", {"zhzx"}, ladder) == "command_center"
    assert clocks.escalation_level("zhzx", {"zhzx"}, ladder) == "leadership"
    assert clocks.next_level("command_center", ladder) == "leadership"
    assert clocks.next_level("leadership", ladder) is None
    policy = StreetPolicy(calendar=WorkCalendar(), command_centers=frozenset({"zhzx"}))
    assert policy.escalation_level("zhzx", own_stage=True) == "leadership"


def test_the_policy_follows_a_new_configuration():
    policy = StreetPolicy(calendar=WorkCalendar())
    changed = policy.with_config(from_mapping({"reminder": {"fraction": 0.5},
                                               "calendar": {"periods": [["09:00", "17:00"]]}}), 2)
    assert changed.version == 2 and changed.warn_fraction == 0.5
    assert changed.calendar.periods == ((time(9), time(17)),)
    start = datetime(2026, 11, 26, 9, 0, tzinfo=Z)
    warn, due = changed.stage_due("sign", start)
    assert (warn, due) == (datetime(2026, 11, 26, 10, 0, tzinfo=Z), datetime(2026, 11, 26, 11, 0, tzinfo=Z))


def test_an_unknown_year_is_assumed_unless_the_override_table_has_it():
    assert worktime.knows(2026) and not worktime.knows(2099)
    calendar = WorkCalendar()
    assert calendar.assumed_between(datetime(2026, 12, 31, 17, 0, tzinfo=Z), datetime(2099, 1, 4, 9, 0, tzinfo=Z))
    assert not calendar.assumed_between(datetime(2026, 1, 5, tzinfo=Z), datetime(2026, 1, 6, tzinfo=Z))
    assert WorkCalendar(overrides={date(2099, 1, 1): False}).knows(2099)


def test_the_shipped_calendar_file_is_read_and_claims_no_unpublished_year():
    folder = street_config_folder(Path("/work/shared/data"))
    assert folder == REPO / "streets" / "wenhualu"
    assert read_calendar_overrides(folder) == {}  # 2027 not published yet: no rows, only the header comment


def test_the_check_command_warns_and_exits_0(capsys, tmp_path):
    (tmp_path / "x-calendar.csv").write_text("# comment\ndate,workday,note\n2098-01-01,0,元旦\n")
    assert worktime.main(["check", "--street", str(tmp_path), "--config-dir", str(tmp_path), "--year", "2098"]) == 0
    err = capsys.readouterr().err
    assert "2099" in err and "2098" not in err
