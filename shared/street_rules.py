"""The street's time rules in force, for the services that do not own them (routing, notify).

Supervision owns the configuration (its street_config table, PUT /api/v1/admin/street-config) and publishes
every version on wangge.street-config. A follower consumes that topic into its own `street_config_learnt`
table (shared/sql/003) with apply_street_config_event, and reads the rules through StreetRules: the
version learnt last, or, until one is learnt, the street's configuration file — the same file supervision
seeds its table from. So the work periods routing counts a task's due_at in, and the survey window notify
keeps open, are the ones supervision's clocks use and its admin API shows.
"""
from __future__ import annotations

import logging
from typing import Any

import asyncpg

from shared.contracts import Envelope, InvalidMessage, parse_event
from shared.contracts.street import STREET_CONFIG_KEY, StreetConfigChanged
from shared.settings import Settings
from shared.street import street_config_folder
from shared.street_config import StreetConfig, StreetConfigError, from_folder, from_mapping
from shared.topics import Topics
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

STREET_CONFIG_TYPES = frozenset({StreetConfigChanged.TYPE})
CONSUMER_SUFFIX = "-street-config"


def street_file_config(settings: Settings) -> StreetConfig:
    """The street's configuration file (`<name>-config.toml` in its configuration folder, WANGGE_STREET_CONFIG_DIR):
    what supervision seeds its table from, and what a follower uses until it has learnt a version."""
    return from_folder(street_config_folder(settings.street_dir, settings.street_config_dir))[0]


def announce(topics: Topics, uow: UnitOfWork, *, version: int, config: dict[str, Any], changed_by: str,
             source: str) -> None:
    """Queue a version of the configuration for wangge.street-config, in the caller's transaction (supervision)."""
    event = StreetConfigChanged(street_version=version, config=config, changed_by=changed_by)
    uow.emit(topics.street_config, event.envelope(source=source), key=STREET_CONFIG_KEY)


async def apply_street_config_event(envelope: Envelope, uow: UnitOfWork) -> None:
    """Keep a newer version of the configuration; an older or replayed one changes nothing. A configuration
    that does not parse goes to wangge.street-config.rejected with every reason, and the rules stay as they were."""
    event = parse_event(envelope)
    if not isinstance(event, StreetConfigChanged):
        raise InvalidMessage(f"wangge.street-config carries street.config-changed only, not {envelope.type!r}")
    try:
        from_mapping(event.config, f"street configuration version {event.street_version}")
    except StreetConfigError as exc:
        raise InvalidMessage(str(exc)) from None
    learnt = await uow.conn.fetchval(
        """INSERT INTO street_config_learnt (version, config, changed_by) VALUES ($1, $2::jsonb, $3)
           ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, config = EXCLUDED.config,
               changed_by = EXCLUDED.changed_by, learnt_at = now()
           WHERE street_config_learnt.version < EXCLUDED.version
           RETURNING version""",
        event.street_version, event.config, event.changed_by,
    )
    if learnt is not None:
        uow.after_commit(lambda: log.info("street configuration version %d in force (by %s)", learnt,
                                          event.changed_by))


async def learnt_version(conn: asyncpg.Connection) -> int:
    """The version this service has learnt (0: none yet)."""
    return await conn.fetchval("SELECT version FROM street_config_learnt") or 0


class StreetRules:
    """The configuration in force as this service knows it, cached and reloaded when the learnt version moved
    (one cheap read per use, in the caller's transaction)."""

    def __init__(self, until_learnt: StreetConfig):
        # The street's file (shared/street_config.from_folder): what supervision seeds its table from.
        self._config = until_learnt
        self._version = 0

    async def current(self, conn: asyncpg.Connection) -> StreetConfig:
        """The street's time rules in force."""
        version = await learnt_version(conn)
        if version != self._version:
            row = await conn.fetchrow("SELECT version, config FROM street_config_learnt")
            if row is not None:
                # Checked before it was stored: a stored configuration parses.
                self._config = from_mapping(row["config"], f"street configuration version {row['version']}")
                self._version = row["version"]
        return self._config
