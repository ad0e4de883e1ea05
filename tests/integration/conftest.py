"""Integration tier: registers the privacy plugin (tests/privacy.py) for the whole run.

Registered from here rather than with `pytest_plugins` (only the root conftest may use that): a
plugin registered through the plugin manager applies to every test of the session, unit and e2e
included, as long as this directory is part of the run (as it is in `./dev test`).
"""
from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    import tests.privacy as privacy

    if not config.pluginmanager.is_registered(privacy):
        config.pluginmanager.register(privacy, "wangge-privacy")
