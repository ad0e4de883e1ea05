"""pytest plugin: no full phone number in any log line of the whole test run.

Every log record of the run (services, shared plumbing, libraries) is passed through the handler
the services log with (shared.logs.log_handler: its filter, then its formatter), exactly as a
service process would write it, and the line is scanned for a mainland mobile number in full. A
test during which such a line was written fails (at teardown, naming the logger and the line with
the number masked); a line written outside any test fails the session.

The root logger is set to INFO for the run (the services' level, and what `./dev up` logs), with
aiokafka and httpx at WARNING as configure_logging sets them, so the lines checked are the lines
production writes.

Registered globally from tests/integration/conftest.py (pytest_configure), so a whole-suite run
scans every test, unit, integration and e2e alike.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import pytest

from shared.logs import log_handler
from shared.personal_data import mask_personal

# A mainland mobile in full: 11 digits from 1[3-9], spaces or dashes allowed between them, +86 or not.
_MOBILE = re.compile(r"(?<!\d)1[3-9]\d(?:[ \-]?\d){8}(?!\d)")
# Event, update and survey ids: their digits (across a UUID's dashes, or in 32 hex) can spell a mobile number.
_IDS = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
                  r"|(?<![0-9A-Za-z])[0-9a-fA-F]{32}(?![0-9A-Za-z])")


class _FullMobile:
    """A full mainland mobile number in a text (spaced or dashed), ids aside: a UUID that happens to hold
    1[3-9] and nine more digits is not a resident's phone (the scan failed about one run in fifty on one)."""

    pattern = _MOBILE.pattern

    def search(self, text: str) -> re.Match | None:
        return _MOBILE.search(_IDS.sub(" ", text))


FULL_MOBILE = _FullMobile()


@dataclass(frozen=True)
class Leak:
    logger: str
    line: str


class PhoneScan(logging.Handler):
    """Formats every record as the services do and keeps those lines that still hold a full mobile."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self._service = log_handler("test")
        self.leaks: list[Leak] = []
        self.scanned = 0

    def emit(self, record: logging.LogRecord) -> None:
        # A copy: the services' filter rewrites the record, and pytest's own handlers must see the original.
        copy = logging.makeLogRecord(record.__dict__)
        try:
            if not self._service.filter(copy):
                return
            line = self._service.format(copy)
        except Exception:  # noqa: BLE001 — a record that cannot be formatted is the logging module's report
            return
        self.scanned += 1
        if FULL_MOBILE.search(line):
            self.leaks.append(Leak(record.name, line))


_scan = PhoneScan()
_saved_levels: dict[str, int] = {}


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger()
    if _scan in root.handlers:
        return
    for name in ("", "aiokafka", "httpx"):
        _saved_levels[name] = logging.getLogger(name).level
    root.addHandler(_scan)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))
    for noisy in ("aiokafka", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def pytest_unconfigure(config: pytest.Config) -> None:
    logging.getLogger().removeHandler(_scan)
    for name, level in _saved_levels.items():
        logging.getLogger(name).setLevel(level)


def _report(leaks: list[Leak]) -> str:
    shown = "\n".join(f"  {leak.logger}: {mask_personal(leak.line)[:300]}" for leak in leaks[:10])
    return f"{len(leaks)} log line(s) held a full phone number (shown masked here):\n{shown}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    item.stash[_mark] = len(_scan.leaks)
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    result = yield  # the test's fixtures are torn down (services stopped) first: their lines count too
    start = item.stash.get(_mark, len(_scan.leaks))
    leaks = _scan.leaks[start:]
    item.stash[_mark] = len(_scan.leaks)
    if leaks:
        _blamed.update(range(start, start + len(leaks)))
        pytest.fail(_report(leaks), pytrace=False)
    return result


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stray = [leak for i, leak in enumerate(_scan.leaks) if i not in _blamed]
    if stray:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("privacy: " + _report(stray), red=True)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    terminalreporter.write_line(f"privacy: {_scan.scanned} log lines scanned for full phone numbers, "
                                f"{len(_scan.leaks)} found")


_mark = pytest.StashKey[int]()
_blamed: set[int] = set()
