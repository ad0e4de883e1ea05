"""notify's reply rules, pure: quiet hours (免打扰), the channel chosen for a resident, the templates' checks."""
from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from services.notify.domain.quiet import hold_until, quiet_until
from shared.street_config import StreetConfig, StreetConfigError, from_mapping

SH = ZoneInfo("Asia/Shanghai")
NIGHT = (time(22, 0), time(8, 0))


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=SH)


def test_the_night_holds_until_eight_the_same_or_next_morning():
    assert quiet_until(at(6, 23, 30), NIGHT) == at(7, 8)
    assert quiet_until(at(7, 3, 0), NIGHT) == at(7, 8)
    assert quiet_until(at(6, 22, 0), NIGHT) == at(7, 8)
    assert quiet_until(at(7, 8, 0), NIGHT) is None
    assert quiet_until(at(7, 21, 59), NIGHT) is None
    assert quiet_until(at(6, 23, 0), None) is None
    # A window inside one day (a street that keeps lunch quiet).
    assert quiet_until(at(7, 12, 30), (time(12, 0), time(14, 0))) == at(7, 14)
    assert quiet_until(at(7, 14, 0), (time(12, 0), time(14, 0))) is None


def test_urgent_kinds_and_other_channels_are_never_held():
    night = at(6, 23)
    assert hold_until(kind="progress", channel="sms", moment=night, quiet=NIGHT) == at(7, 8)
    assert hold_until(kind="survey", channel="sms", moment=night, quiet=NIGHT) == at(7, 8)
    assert hold_until(kind="escalation", channel="sms", moment=night, quiet=NIGHT) is None
    assert hold_until(kind="acknowledgement", channel="sms", moment=night, quiet=NIGHT) is None
    assert hold_until(kind="progress", channel="email", moment=night, quiet=NIGHT) is None
    assert hold_until(kind="progress", channel="webhook", moment=night, quiet=NIGHT) is None


def test_quiet_hours_are_part_of_the_street_configuration():
    assert StreetConfig().quiet_hours == NIGHT
    config = from_mapping({"replies": {"quiet_hours": ["21:30", "07:00"]}})
    assert config.quiet_hours == (time(21, 30), time(7, 0))
    assert from_mapping(config.to_dict()) == config
    assert from_mapping({"replies": {"quiet_hours": []}}).quiet_hours is None
    assert from_mapping(from_mapping({"replies": {"quiet_hours": []}}).to_dict()).quiet_hours is None
    for bad in (["25:00", "07:00"], ["22:00"], "22:00-08:00", ["08:00", "08:00"]):
        with pytest.raises(StreetConfigError, match="replies.quiet_hours"):
            from_mapping({"replies": {"quiet_hours": bad}})


def test_every_default_template_passes_the_checks_an_edited_one_must():
    from services.notify.adapters.templates import load_template_sources
    from services.notify.domain.templates import ALL, MAX_CHARS, check

    defaults = load_template_sources()
    assert set(ALL) == set(defaults)  # a new template file is declared with its variables
    for name, source in defaults.items():
        assert 0 < len(check(name, source)) <= MAX_CHARS, name


def test_the_channel_follows_how_the_resident_came_in_and_what_they_gave():
    from services.notify.domain.replies import choose_route

    mail = "li.si@example.cn"
    assert choose_route(phone="13900001001", email=mail, source="web")[:3] == ("email", mail, "pending")
    assert choose_route(phone="13900001001", email=mail, source="hotline")[:3] == ("sms", "13900001001", "pending")
    assert choose_route(phone="13900001001", source="web")[:3] == ("sms", "13900001001", "pending")
    assert choose_route(phone="010-62345678", email=mail, source="hotline")[:2] == ("email", mail)
    assert choose_route(phone="", email=mail, source="terminal")[:2] == ("email", mail)
    channel, _, state, why = choose_route(phone="010-62345678", source="hotline")
    assert (channel, state) == ("sms", "held") and "mobile" in why  # the hotline calls them back
