"""One place for each rule (docs/ARCHITECTURE.md, "Where each rule lives"): the final states, phone numbers and
their masking, and 超期 now are each written once; every other module imports them. A second copy is what let
them disagree before (issue 17)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for folder in ("services", "shared") for p in (ROOT / folder).rglob("*.py"))


def _holding(pattern: str) -> set[str]:
    found = re.compile(pattern, re.MULTILINE)
    return {str(p.relative_to(ROOT)) for p in SOURCES if found.search(p.read_text(encoding="utf-8"))}


def test_the_final_states_are_listed_once():
    assert _holding(r"^\s*FINAL_STATES\s*(?::[^=\n]*)?=") == {"shared/contracts/cases.py"}
    # …and not spelled out again under another name
    spelled = r"""["'](?:rejected|merged|closed)["'],\s*["'](?:rejected|merged|closed)["'],\s*["'](?:rejected|merged|closed)["']"""
    assert _holding(spelled) == {"shared/contracts/cases.py"}


def test_phone_numbers_are_recognised_and_masked_in_one_module():
    assert _holding(r"1\[3-9\]") == {"shared/personal_data.py"}
    assert _holding(r"\bdef _?mask_") == {"shared/personal_data.py"}


def test_overdue_now_is_worked_out_in_one_module():
    # The earlier copies' shape (a suspended case's mark, in SQL) is nowhere: overdue_sql writes it.
    assert _holding(r"state\s*=\s*'suspended'\s+AND\s+\w*\.?overdue_at") == set()
    assert _holding(r"def overdue_sql\(") == {"services/supervision/domain/overdue.py"}
    # …and judged at the service's clock, never at the database's own moment
    assert _holding(r"""overdue_sql\(\s*f?["'][^"']*now\(\)""") == set()
    assert _holding(r"def is_overdue\(") == {"services/supervision/domain/overdue.py",
                                             "services/supervision/live/figures.py"}  # the latter calls the former
    live = (ROOT / "services/supervision/live/figures.py").read_text(encoding="utf-8")
    assert "from services.supervision.domain.overdue import" in live


def test_supervision_s_http_answers_read_the_clock_the_service_was_built_with():
    # Not the process-wide now(): a test moves the built clock (build(clock=…)) and the answers follow it
    # (tests/integration/test_supervision_http_clock.py).
    answering = {"services/supervision/entrypoints/http.py", "services/supervision/entrypoints/stats.py",
                 "services/supervision/entrypoints/public.py", "services/supervision/entrypoints/search.py",
                 "services/supervision/figures.py"}
    assert answering & _holding(r"^from shared\.clock import [^\n]*\bnow\b") == set()


def test_every_service_reads_the_clock_it_was_built_with():
    # Sessions, sign-in guards, surveys, quiet hours, erasure, Open311's windows and comments: the clock handed to
    # build(clock=…), not the process-wide now() (tests/integration/test_people_clock.py, test_notify_clock.py,
    # test_open311_clock.py move it).
    built = {"services/supervision/people.py", "services/notify/residents.py", "services/notify/commands.py",
             "services/notify/worker.py", "services/notify/entrypoints/residents.py",
             "services/intake/entrypoints/open311.py", "services/intake/comments.py"}
    process_wide = _holding(r"^from shared\.clock import [^\n]*\bnow\b|\bshared\.clock\.now\(")
    assert built & process_wide == set()
    # What still reads it, each for its reason: a webhook's signature time is checked against the receiver's own
    # clock (a moved one would make it look forged); the live figures app is faust's, built apart from the services.
    assert {p for p in process_wide if p.startswith("services/")} == {
        "services/notify/adapters/webhooks.py", "services/supervision/live/streams.py"}
