"""Loading a street into routing: its task topics, then its reference tables."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import asyncpg

from shared import kafka_security
from shared.db import PLUMBING_SQL, create_pool, migrate
from shared.settings import Settings
from shared.street import Street, StreetDataError, load_street
from shared.topics import Topics, TopicSpec, ensure_topics
from services.routing.adapters import street_store
from services.routing.adapters.street_store import LoadSummary

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE = "routing"
KAFKA_TIMEOUT = 30


@dataclass(frozen=True)
class LoadResult:
    """What a load did: the street's counts, its task topics, how many of those were new."""

    summary: LoadSummary
    task_topics: int
    topics_created: int
    written: bool

    def line(self) -> str:
        """The summary line: the street's counts and its task topics."""
        return f"{self.summary.line()}; {self.task_topics} task topics"


def read_street(folder: Path) -> Street:
    """Read a street folder and check what routing needs beyond the format: a command center."""
    street = load_street(folder)
    if not any(d.kind == "command_center" for d in street.departments.values()):
        raise StreetDataError(f"{folder}: no department of kind command_center: routing needs one to dispatch by hand")
    return street


def task_topic_specs(topics: Topics, street: Street) -> list[TopicSpec]:
    """One task topic per department and per community grid."""
    owners = sorted(street.departments) + sorted(g.code for g in street.level("community"))
    return [topics.for_owner(code) for code in owners]


async def load_into(
    settings: Settings, street: Street, folder: Path, *, only_if_empty: bool = False,
    say: Callable[[str], None] = lambda _m: None,
) -> LoadResult:
    """Create the street's topics, migrate routing's schema and replace its reference tables."""
    topics = Topics(settings.topic_prefix)
    kafka_security.use(settings)
    owner_specs = task_topic_specs(topics, street)
    schema = settings.schema(SERVICE)
    pool = await create_pool(settings.database_url, schema, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            applied = await migrate(conn, schema, [PLUMBING_SQL, MIGRATIONS])
            if applied:
                say(f"schema {schema}: applied {', '.join(applied)}")
            if only_if_empty and await street_store.street_loaded(conn):
                return LoadResult(street_store.summarise(street), len(owner_specs), 0, written=False)
            # Topics before tables: once a running service can see an owner, its topic must exist
            # (otherwise the broker would auto-create it with the wrong partitions and retention).
            say(f"ensuring {len(owner_specs)} task topics and the contract topics on {settings.kafka_bootstrap}")
            created = await asyncio.wait_for(
                ensure_topics(settings.kafka_bootstrap, topics.fixed() + owner_specs), KAFKA_TIMEOUT
            )
            say(f"replacing the reference tables in schema {schema}")
            written = await street_store.replace_street(conn, street, folder, schema, only_if_empty=only_if_empty)
    finally:
        await pool.close()
    owner_names = {s.name for s in owner_specs}
    return LoadResult(street_store.summarise(street), len(owner_specs), len(owner_names & set(created.created)), written)


async def ensure_street_loaded(settings: Settings) -> None:
    """At service start: load the street from settings.street_dir if routing has none yet."""
    schema = settings.schema(SERVICE)
    conn = await asyncpg.connect(settings.service_database_url(SERVICE), server_settings={"search_path": f'"{schema}",public'})
    try:
        await migrate(conn, schema, [PLUMBING_SQL, MIGRATIONS])
        if await street_store.street_loaded(conn):
            return
    finally:
        await conn.close()
    folder = Path(settings.street_dir)
    log.info("routing has no street loaded: loading it from %s", folder)
    try:
        street = read_street(folder)
    except StreetDataError as exc:
        raise StreetDataError(f"routing has no street loaded and cannot load WANGGE_STREET_DIR: {exc}") from None
    # As routing's own role (its rows only: the schema is already migrated by the owner).
    own = settings.model_copy(update={"database_url": settings.service_database_url(SERVICE)})
    result = await load_into(own, street, folder, only_if_empty=True, say=log.info)
    if result.written:
        log.info("loaded street %s", result.line())
