"""The live figures as pure functions: how one case event changes what the screen knows of a case,
and the street's figures from the cases and windows the faust tables hold. No I/O."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from shared.contracts.cases import FINAL_STATES, STATE_AFTER
from services.supervision.domain.overdue import clears_overdue, overdue_from
from services.supervision.domain.overdue import is_overdue as overdue_by_rule

HOUR = 3600.0
# The fields of a case event the screen may show: never the reporter, a phone or free text.
PUBLIC_FIELDS = ("category", "unit_grid", "owner", "owner_name", "due_at", "stage", "level")


@dataclass(frozen=True)
class Names:
    """What the screen calls the street's grids and categories, and which community holds each unit grid."""

    unit_grids: Mapping[str, str]
    communities: Mapping[str, str]
    community_of: Mapping[str, str]
    categories: Mapping[str, str]


def parse_time(text: object) -> datetime | None:
    """An ISO 8601 time with offset, or None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def fold(case: Mapping[str, Any] | None, event_type: str, data: Mapping[str, Any], occurred_at: str) -> dict[str, Any]:
    """What the screen keeps of a case after one more of its events (a plain dict: it goes to the changelog)."""
    facts: dict[str, Any] = dict(case or {})
    if data.get("case_no"):
        facts["case_no"] = data["case_no"]
    for name in ("category", "unit_grid"):
        if isinstance(data.get(name), str) and data[name]:
            facts[name] = data[name]
    state = STATE_AFTER.get(event_type)
    if state is not None:
        facts["state"] = state
    if event_type == "case.reported":
        facts.setdefault("reported_at", occurred_at)
    elif event_type == "case.accepted":
        facts.setdefault("accepted_at", occurred_at)
    elif event_type == "case.dispatched":
        # A new dispatch starts a new handling period: an old overdue mark belongs to the old one.
        facts["due_at"] = data.get("due_at")
        facts["overdue"] = False
    elif event_type in ("case.resumed", "case.extension-decided") and data.get("due_at"):
        facts["due_at"] = data["due_at"]
        # as the read model: only a deadline still ahead clears the mark (domain/overdue.py)
        given_at = parse_time(occurred_at)
        if given_at is None or clears_overdue(parse_time(data["due_at"]), given_at):
            facts["overdue"] = False
    elif event_type == "case.overdue" and data.get("stage", "handling") == "handling":
        facts["overdue"] = True
    elif event_type == "case.closed":
        facts["closed_at"] = data.get("closed_at") or occurred_at
    elif event_type == "case.reopened":
        facts.pop("closed_at", None)
        facts.pop("finished_at", None)
    if state in FINAL_STATES and "closed_at" not in facts:
        # When a case rejected or merged finished (a closed one's is its closed_at): see finished_at.
        facts["finished_at"] = occurred_at
    return facts


def is_open(case: Mapping[str, Any]) -> bool:
    """Not finished: reported and not yet rejected or merged, or accepted and not yet closed."""
    return case.get("state") is not None and case["state"] not in FINAL_STATES


def finished_at(case: Mapping[str, Any]) -> datetime | None:
    """When a finished case was closed, rejected or merged (None while it is open): the table forgets it some weeks
    later (forgetting.py). A row kept before rejections were dated has its acceptance or report instead: a rejected or
    merged case is never taken up again."""
    if case.get("state") not in FINAL_STATES:
        return None
    for name in ("closed_at", "finished_at", "accepted_at", "reported_at"):
        moment = parse_time(case.get(name))
        if moment is not None:
            return moment
    return None


def is_overdue(case: Mapping[str, Any], at: datetime) -> bool:
    """Overdue at `at` by the one rule of every screen and figure (domain/overdue.py), from what the screen keeps."""
    return overdue_by_rule(case.get("state"), parse_time(case.get("due_at")), bool(case.get("overdue")), at)


def overdue_since(case: Mapping[str, Any]) -> datetime | None:
    """From when the case the screen keeps is overdue while its facts hold (domain/overdue.overdue_from)."""
    return overdue_from(case.get("state"), parse_time(case.get("due_at")), bool(case.get("overdue")))


# Open and overdue cases per unit grid (None: the cases without one yet): [open, overdue].
OpenCounts = dict[str | None, list[int]]


def open_counts(cases: Iterable[Mapping[str, Any]], at: datetime) -> OpenCounts:
    """The open and the overdue cases at `at`, per unit grid, by asking every case (the instances' shares merged;
    one instance's own cases are counted as they change: live/open_index.py)."""
    counts: OpenCounts = {}
    for case in cases:
        if is_open(case):
            row = counts.setdefault(case.get("unit_grid") or None, [0, 0])
            row[0] += 1
            row[1] += is_overdue(case, at)
    return counts


def newly_accepted(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> bool:
    """Whether this event made the case a real case (立案) for the first time: it counts once in the windows."""
    return bool(after.get("accepted_at")) and not (before or {}).get("accepted_at") and bool(after.get("unit_grid"))


def counts_in_windows(before: Mapping[str, Any] | None, after: Mapping[str, Any], event_type: str) -> bool:
    """Whether this event writes the case's rows in the windows: when it makes the case a real case, and again each
    time the acceptance itself is followed (a redelivery writes the same rows: one per case, in the same window, as
    accepted_at is kept from the first). Again, because a member killed between its writes to the cases table and to
    the windows' changelogs leaves the next owner a case already accepted without its window rows, and it follows
    the acceptance again (its offset was not committed): judged by `before` alone, the rows would never be written."""
    if newly_accepted(before, after):
        return True
    return event_type == "case.accepted" and bool(after.get("accepted_at")) and bool(after.get("unit_grid"))


def screen_event(event_type: str, case_id: str | None, data: Mapping[str, Any], occurred_at: str,
                 case: Mapping[str, Any] | None, names: Names) -> dict[str, Any]:
    """One case event as the big screen shows it: number, type, place, category, time; no personal data."""
    unit_grid = data.get("unit_grid") or (case or {}).get("unit_grid")
    category = data.get("category") or (case or {}).get("category")
    shown: dict[str, Any] = {
        "case_no": data.get("case_no") or (case or {}).get("case_no"),
        "type": event_type,
        "unit_grid": unit_grid,
        "unit_grid_name": names.unit_grids.get(unit_grid) if unit_grid else None,
        "community": names.community_of.get(unit_grid) if unit_grid else None,
        "category": category,
        "category_name": names.categories.get(category) if category else None,
        "occurred_at": occurred_at,
        "state": (case or {}).get("state"),
    }
    for name in ("owner", "owner_name", "stage", "level"):
        if isinstance(data.get(name), str):
            shown[name] = data[name]
    return shown


def window_start(moment: datetime) -> float:
    """The epoch second at which the hour window holding this moment starts (faust's tumbling windows)."""
    stamp = moment.timestamp()
    return stamp - stamp % HOUR


def street_midnight(at: datetime, zone: Any) -> datetime:
    """The start of `at`'s day in street time."""
    return at.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)


def first_window_shown(at: datetime, zone: Any) -> float:
    """The start of the oldest window figures() reads at `at`: today's first hour, or the last hour's spikes when today
    is not an hour old. The tables keep two days of windows; reading only these keeps a scrape's cost to today's."""
    return min(street_midnight(at, zone).timestamp(), window_start(at) - HOUR)


def counted(windows: Iterable[tuple[str, float, Iterable[str]]]) -> list[tuple[str, float, int]]:
    """(key, window start, cases in it) of windows given with their case ids (a case listed twice counts once)."""
    return [(key, start, len(set(ids))) for key, start, ids in windows]


def figures(open_cases: OpenCounts, hourly: Iterable[tuple[str, float, int]],
            spikes: Iterable[tuple[str, float, int]], *, names: Names, at: datetime, zone: Any,
            spike_threshold: int) -> dict[str, Any]:
    """The street's live figures now: open and overdue (street and per unit grid, from open_counts or an
    OpenIndex at `at`), cases accepted per unit grid per hour of today, and the categories spiking in a community
    (in the current or the last hour); the windows given as (key, window start, cases in it)."""
    per_grid: dict[str, dict[str, int]] = {code: {"open": 0, "overdue": 0} for code in names.unit_grids}
    open_now = overdue_now = 0
    for grid, (opened, late) in open_cases.items():
        open_now += opened
        overdue_now += late
        if grid:
            row = per_grid.setdefault(grid, {"open": 0, "overdue": 0})
            row["open"] += opened
            row["overdue"] += late
    local = at.astimezone(zone)
    midnight = street_midnight(at, zone)
    today = {midnight.timestamp() + h * HOUR: h for h in range(24)}
    per_hour: dict[str, list[int]] = {}
    street_hours = [0] * 24
    for grid, start, cases in hourly:
        hour = today.get(start)
        if hour is None:
            continue
        counts = per_hour.setdefault(grid, [0] * 24)
        counts[hour] += cases
        street_hours[hour] += cases
    current = window_start(at)
    last_hour = {grid: counts[today[current]] if current in today else 0 for grid, counts in per_hour.items()}
    spiking = []
    for key, start, count in spikes:
        if count >= spike_threshold and start >= current - HOUR:
            community, _, category = key.partition("|")
            spiking.append({
                "community": community, "community_name": names.communities.get(community, community),
                "category": category, "category_name": names.categories.get(category, category),
                "window_start": datetime.fromtimestamp(start, timezone.utc).astimezone(zone).isoformat(),
                "window_end": datetime.fromtimestamp(start + HOUR, timezone.utc).astimezone(zone).isoformat(),
                "count": count, "threshold": spike_threshold,
            })
    spiking.sort(key=lambda s: (-s["count"], s["community"], s["category"]))
    return {
        "generated_at": local.isoformat(),
        "open_now": open_now,
        "overdue_now": overdue_now,
        "unit_grids": [{"unit_grid": code, "name": names.unit_grids.get(code, code),
                        "community": names.community_of.get(code), **row} for code, row in sorted(per_grid.items())],
        "today": {
            "date": local.date().isoformat(),
            "hours": [(midnight + timedelta(hours=h)).isoformat() for h in range(24)],
            "street": street_hours,
            "unit_grids": dict(sorted(per_hour.items())),
        },
        "cases_last_hour": dict(sorted(last_hour.items())),
        "spikes": spiking,
        "spike_threshold": spike_threshold,
    }


def merge_shares(shares: Iterable[Mapping[str, Any]], partitions: Mapping[str, int]) -> tuple[
        list[dict[str, Any]], list[tuple[str, float, list[str]]], list[tuple[str, float, list[str]]], dict[str, list[int]]]:
    """The live instances' shares (each its own table partitions' open cases and window rows) as one street's:
    (open cases, hourly windows, spike windows, the partitions of each table no share answered for). A partition
    two shares both claim (a rebalance seen half-way) counts once: cases by case id, windows by their case ids."""
    cases: dict[str, dict[str, Any]] = {}
    hourly: dict[tuple[str, float], set[str]] = {}
    spikes: dict[tuple[str, float], set[str]] = {}
    answered: dict[str, set[int]] = {name: set() for name in partitions}
    for share in shares:
        for name, held in (share.get("partitions") or {}).items():
            if name in answered:
                answered[name].update(int(p) for p in held)
        for case_id, row in (share.get("cases") or {}).items():
            cases.setdefault(case_id, row)
        for target, rows in ((hourly, share.get("hourly") or ()), (spikes, share.get("spikes") or ())):
            for key, start, ids in rows:
                target.setdefault((key, float(start)), set()).update(ids)
    missing = {name: sorted(set(range(count)) - answered[name]) for name, count in partitions.items()}
    return (list(cases.values()),
            [(key, start, sorted(ids)) for (key, start), ids in hourly.items()],
            [(key, start, sorted(ids)) for (key, start), ids in spikes.items()],
            {name: parts for name, parts in missing.items() if parts})
