"""One street's time rules: work periods, the reminder fraction, stage limits, the escalation ladder and
its interval, the survey window, the replies' quiet hours. Parsed from TOML text or a JSON mapping, with every reason it is refused
(pure, but for from_folder, which reads the file). The file is `<name>-config.toml` (streets/<name>/ in
the repo, or the street folder itself); missing keys take the defaults, which are DESIGN.md's "Time limits".

Supervision owns the configuration in force (its street_config table, edited through the admin API) and
publishes every version on wangge.street-config; routing and notify learn it from there
(shared/street_rules.py). Every service reads the rules through this one parser."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any, Mapping

LIMIT_UNITS = ("work_hours", "work_days", "hours")
LEVELS = ("community", "command_center", "leadership")
STAGES = ("dispatch", "sign", "check")


class StreetConfigError(ValueError):
    """A configuration that cannot be used; `reasons` lists every problem found."""

    def __init__(self, reasons: list[str], source: str = "street configuration"):
        self.reasons = reasons
        super().__init__(f"{source}: " + "; ".join(reasons))


@dataclass(frozen=True)
class Limit:
    """A time limit: `value` of `unit` (work_hours, work_days or hours)."""

    value: float
    unit: str

    def as_tuple(self) -> tuple[float, str]:
        return self.value, self.unit


@dataclass(frozen=True)
class StreetConfig:
    """The time rules of one street (defaults: DESIGN.md "Time limits")."""

    periods: tuple[tuple[time, time], ...] = ((time(8, 30), time(12, 0)), (time(13, 30), time(17, 30)))
    warn_fraction: float = 0.75
    dispatch: Limit = Limit(1.0, "work_hours")
    sign: Limit = Limit(2.0, "work_hours")
    check: Limit = Limit(1.0, "work_days")
    ladder: tuple[str, ...] = ("command_center", "leadership")
    escalation_interval: Limit = Limit(1.0, "work_days")
    survey_window_days: float = 7.0
    # 免打扰时段: non-urgent SMS to residents wait from the first time until the second (22:00–08:00, across
    # midnight when the first is later); None: no quiet hours at all (`replies.quiet_hours = []`).
    quiet_hours: tuple[time, time] | None = (time(22, 0), time(8, 0))

    def stage_limit(self, stage: str) -> Limit:
        """The limit of a stage clock: dispatch, sign or check."""
        return {"dispatch": self.dispatch, "sign": self.sign, "check": self.check}[stage]

    def to_dict(self) -> dict[str, Any]:
        """The JSON (and TOML) shape: what GET answers and PUT takes."""
        return {
            "calendar": {"periods": [[f"{a:%H:%M}", f"{b:%H:%M}"] for a, b in self.periods]},
            "reminder": {"fraction": self.warn_fraction},
            "stages": {name: {"value": self.stage_limit(name).value, "unit": self.stage_limit(name).unit}
                       for name in STAGES},
            "escalation": {"ladder": list(self.ladder),
                           "interval": {"value": self.escalation_interval.value,
                                        "unit": self.escalation_interval.unit}},
            "survey": {"window_days": self.survey_window_days},
            "replies": {"quiet_hours": [f"{t:%H:%M}" for t in self.quiet_hours] if self.quiet_hours else []},
        }


def parse_toml(text: str, source: str = "street configuration") -> StreetConfig:
    """A configuration from TOML text; StreetConfigError with every reason if it cannot be used."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StreetConfigError([f"not TOML: {exc}"], source) from None
    return from_mapping(data, source)


def from_folder(folder: Path) -> tuple[StreetConfig, str]:
    """The street's `<name>-config.toml` in its configuration folder and where it came from (the defaults,
    "defaults", if there is none)."""
    found = sorted(Path(folder).glob("*-config.toml"))
    if not found:
        return StreetConfig(), "defaults"
    return parse_toml(found[0].read_text(encoding="utf-8"), str(found[0])), str(found[0])


def from_mapping(data: Any, source: str = "street configuration") -> StreetConfig:
    """A configuration from the JSON/TOML shape of to_dict(); missing sections and keys keep the defaults."""
    reasons: list[str] = []
    default = StreetConfig()
    if not isinstance(data, Mapping):
        raise StreetConfigError(["must be an object with sections calendar, reminder, stages, escalation, survey, "
                                 "replies"],
                                source)
    known = {"calendar": {"periods"}, "reminder": {"fraction"}, "stages": set(STAGES),
             "escalation": {"ladder", "interval"}, "survey": {"window_days"}, "replies": {"quiet_hours"}}
    sections: dict[str, Mapping[str, Any]] = {}
    for name, value in data.items():
        if name not in known:
            reasons.append(f"unknown section {name!r} (known: {', '.join(known)})")
        elif not isinstance(value, Mapping):
            reasons.append(f"{name}: must be a table/object")
        else:
            sections[name] = value
            reasons.extend(f"{name}.{key}: unknown key (known: {', '.join(sorted(known[name]))})"
                           for key in value if key not in known[name])

    periods = default.periods
    if "periods" in sections.get("calendar", {}):
        periods = _periods(sections["calendar"]["periods"], reasons)
    fraction = default.warn_fraction
    if "fraction" in sections.get("reminder", {}):
        fraction = sections["reminder"]["fraction"]
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            reasons.append(f"reminder.fraction: {fraction!r} must be a number between 0 and 1 (exclusive)")
            fraction = default.warn_fraction
    stages = {name: default.stage_limit(name) for name in STAGES}
    for name in STAGES:
        if name in sections.get("stages", {}):
            stages[name] = _limit(sections["stages"][name], f"stages.{name}", reasons) or stages[name]
    ladder = default.ladder
    interval = default.escalation_interval
    escalation = sections.get("escalation", {})
    if "ladder" in escalation:
        ladder = _ladder(escalation["ladder"], reasons)
    if "interval" in escalation:
        interval = _limit(escalation["interval"], "escalation.interval", reasons) or interval
    window = default.survey_window_days
    if "window_days" in sections.get("survey", {}):
        window = sections["survey"]["window_days"]
        if isinstance(window, bool) or not isinstance(window, (int, float)) or not 0 < window <= 366:
            reasons.append(f"survey.window_days: {window!r} must be a number of days above 0, at most 366")
            window = default.survey_window_days
    quiet = default.quiet_hours
    if "quiet_hours" in sections.get("replies", {}):
        quiet = _quiet_hours(sections["replies"]["quiet_hours"], reasons)
    if reasons:
        raise StreetConfigError(reasons, source)
    return StreetConfig(quiet_hours=quiet, periods=periods, warn_fraction=float(fraction), dispatch=stages["dispatch"],
                        sign=stages["sign"], check=stages["check"], ladder=ladder, escalation_interval=interval,
                        survey_window_days=float(window))


def _limit(value: Any, where: str, reasons: list[str]) -> Limit | None:
    if not isinstance(value, Mapping) or set(value) != {"value", "unit"}:
        reasons.append(f"{where}: must be {{value = <number>, unit = \"{'|'.join(LIMIT_UNITS)}\"}}")
        return None
    number, unit = value["value"], value["unit"]
    ok = True
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 < number <= 10000:
        reasons.append(f"{where}.value: {number!r} must be a number above 0, at most 10000")
        ok = False
    if unit not in LIMIT_UNITS:
        reasons.append(f"{where}.unit: {unit!r} is not one of {', '.join(LIMIT_UNITS)}")
        ok = False
    return Limit(float(number), unit) if ok else None


def _quiet_hours(value: Any, reasons: list[str]) -> tuple[time, time] | None:
    if value is None or value == []:
        return None
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, str) for v in value):
        reasons.append('replies.quiet_hours: must be ["HH:MM", "HH:MM"] (from, until) or [] for none')
        return StreetConfig().quiet_hours
    try:
        start, end = (time.fromisoformat(v) for v in value)
    except ValueError:
        reasons.append(f"replies.quiet_hours: {value!r} are not HH:MM times")
        return StreetConfig().quiet_hours
    if start == end:
        reasons.append("replies.quiet_hours: from and until are the same time (use [] for no quiet hours)")
    return start, end


def _ladder(value: Any, reasons: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        reasons.append(f"escalation.ladder: must be a non-empty list of levels from {', '.join(LEVELS)}")
        return StreetConfig().ladder
    bad = [v for v in value if v not in LEVELS]
    if bad:
        reasons.append(f"escalation.ladder: {', '.join(map(repr, bad))} not among {', '.join(LEVELS)}")
    elif [LEVELS.index(v) for v in value] != sorted({LEVELS.index(v) for v in value}):
        reasons.append("escalation.ladder: levels must go up, each once (community → command_center → leadership)")
    elif value[-1] != "leadership":
        reasons.append("escalation.ladder: must end with leadership (the street's top)")
    return tuple(value)


def _periods(value: Any, reasons: list[str]) -> tuple[tuple[time, time], ...]:
    default = StreetConfig().periods
    if not isinstance(value, list) or not value:
        reasons.append('calendar.periods: must be a non-empty list of ["HH:MM", "HH:MM"] pairs')
        return default
    periods: list[tuple[time, time]] = []
    for i, pair in enumerate(value):
        if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(p, str) for p in pair):
            reasons.append(f'calendar.periods[{i}]: must be ["HH:MM", "HH:MM"]')
            continue
        try:
            start, end = (time.fromisoformat(p) for p in pair)
        except ValueError:
            reasons.append(f"calendar.periods[{i}]: {pair!r} are not HH:MM times")
            continue
        if start >= end:
            reasons.append(f"calendar.periods[{i}]: starts at {pair[0]}, not before its end {pair[1]}")
        elif periods and start < periods[-1][1]:
            reasons.append(f"calendar.periods[{i}]: overlaps or precedes the period before it")
        else:
            periods.append((start, end))
    return tuple(periods) if len(periods) == len(value) else default
