"""PostgreSQL: one pool per service, bound to the schema it owns, and that schema's migrations."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

from shared.clock import street_zone
# Errors after which the same work may succeed when retried are classified in one place, shared/errors.py.
from shared.errors import TRANSIENT_DB_ERRORS  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

PLUMBING_SQL = Path(__file__).parent / "sql"


_PG_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def _encode_timestamptz(moment: datetime) -> tuple[int]:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every time in wangge carries an offset")
    return ((moment - _PG_EPOCH) // _MICROSECOND,)


def _decode_timestamptz(value: tuple[int]) -> datetime:
    # asyncpg would hand back UTC; views and events speak the street's offset (+08:00).
    return (_PG_EPOCH + timedelta(microseconds=value[0])).astimezone(street_zone())


def dsn_for_people(dsn: str) -> str:
    """A connection string fit for a message or a log: its password replaced by ***."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("timestamptz", encoder=_encode_timestamptz, decoder=_decode_timestamptz,
                              schema="pg_catalog", format="tuple")
    await conn.set_type_codec("jsonb", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog")


# How long anything waits for a connection of a pool, and to hand one back (asyncpg waits for ever by default).
# A pool whose connections are all held by stuck work then answers with a timeout, which every loop takes for an
# outage: it retries from a clean state instead of waiting unseen.
ACQUIRE_TIMEOUT = 30.0
# Each statement (asyncpg's command_timeout): a query on a connection the server no longer serves gives up.
COMMAND_TIMEOUT = 30.0


class Connection(asyncpg.Connection):
    """A pooled connection that knows whether its next release may skip asyncpg's reset query.

    asyncpg resets every connection handed back to its pool with one more round trip (`SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`, four statements and an implicit transaction): a
    consumer's batch paid it after its COMMIT. A unit of work (shared/uow.py) changes no session state — its writes
    and locks end with its transaction — so it marks its connection before giving it back; everything else (the
    outbox relay's LISTEN, SET and session lock) still gets the full reset."""

    __slots__ = ("_transaction_only",)

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._transaction_only = False

    def ended_transaction_only(self) -> None:
        """Everything done on this connection since it was acquired ended with its transaction (committed or rolled
        back): its release needs no reset query."""
        self._transaction_only = True


def ended_clean(conn: Any) -> None:
    """Mark a connection whose use left no session state (see Connection) as needing no reset on release."""
    mark = getattr(conn, "ended_transaction_only", None)
    if mark is not None:
        mark()


async def _reset(conn: asyncpg.Connection) -> None:
    """The pool's reset on release (asyncpg has already rolled back any open transaction and dropped listeners)."""
    if getattr(conn, "_transaction_only", False):
        conn._transaction_only = False  # type: ignore[attr-defined]
        return
    query = conn.get_reset_query()
    if query:
        await conn.execute(query)


class BoundedPool(asyncpg.Pool):
    """An asyncpg pool on which no wait is unbounded: acquire — and so every pool.fetch, pool.execute… — gives up
    after ACQUIRE_TIMEOUT unless told otherwise, and the connection's release (its reset) after as long."""

    def acquire(self, *, timeout: float | None = None):  # type: ignore[no-untyped-def]
        return super().acquire(timeout=ACQUIRE_TIMEOUT if timeout is None else timeout)

    # The pool's own reads (a credential looked up for each HTTP request, a health check) run one query outside any
    # transaction and change no session state — the rule, as for a unit of work: no SET, set_config, session lock or
    # LISTEN through them (pool.execute and an acquired connection are still reset). So their release skips the
    # reset's round trip and four statements.
    async def fetch(self, query: str, *args: Any, timeout: float | None = None,
                    record_class: Any = None) -> list[Any]:
        async with self.acquire() as conn:
            rows = await conn.fetch(query, *args, timeout=timeout, record_class=record_class)
            ended_clean(conn)
            return rows

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None, record_class: Any = None) -> Any:
        async with self.acquire() as conn:
            row = await conn.fetchrow(query, *args, timeout=timeout, record_class=record_class)
            ended_clean(conn)
            return row

    async def fetchval(self, query: str, *args: Any, column: int = 0, timeout: float | None = None) -> Any:
        async with self.acquire() as conn:
            value = await conn.fetchval(query, *args, column=column, timeout=timeout)
            ended_clean(conn)
            return value


def session_attrs(dsn: str) -> dict[str, str]:
    """What a service's connection asks of the server: one that accepts writes, unless the URL says otherwise.

    With a failover cluster the URL lists every member (deploy/local/patroni.sh); asyncpg tries them in order and
    keeps the first that is not a read-only standby, so a connection the old primary's death cut is replaced by one
    to the promoted standby. Said here too, so that a URL listing members without the parameter still never lands
    a service on a standby (on one server it costs nothing: PostgreSQL reports both settings at connect)."""
    query = urlsplit(dsn).query if "://" in dsn else ""
    return {} if "target_session_attrs" in query else {"target_session_attrs": "read-write"}


# How long a connection keeps a prepared statement (asyncpg's cache; its default is 300 s). A unit of work runs its
# statements on generic plans (shared/uow.py), made at a statement's first run and kept until its table is analyzed:
# on a fresh system that first run meets empty tables and plans seq scans, which would outlive the tables' growth by
# minutes. Prepared again every 20 s, a plan follows the tables' size (no analyze needed), for a few dozen parses and
# plans a connection each time. Not autovacuum more often instead: under sustained writes it then analyzes every hot
# table each round, which costs far more (docs/ARCHITECTURE.md, "What a batch costs PostgreSQL").
STATEMENT_LIFETIME_SECONDS = 20.0


async def create_pool(dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections see the service's own schema first; jsonb comes back as Python.

    After a failover it heals by itself: a connection the dead primary cut is closed, and the next acquire connects
    again through the URL — to whichever member accepts writes now (session_attrs). A unit of work that held the
    cut connection fails with a transient error (shared/errors.py) and is retried whole."""
    pool = BoundedPool(
        dsn,
        **session_attrs(dsn),
        min_size=min_size,
        max_size=max_size,
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        max_cached_statement_lifetime=STATEMENT_LIFETIME_SECONDS,
        init=_init_connection,
        loop=None,
        connection_class=Connection,
        reset=_reset,
        record_class=asyncpg.Record,
        # jit off: the services run short statements, and the figures' one statement spent 2.9 of its 4.2 s
        # compiling itself (a day of a city, 1M cases; bench/stats.py). Set here, so a user's server needs no tuning.
        server_settings={"search_path": f'"{schema}",public', "timezone": "Asia/Shanghai", "jit": "off"},
        command_timeout=COMMAND_TIMEOUT,
        # Connecting to a server that accepts the socket and never answers (stopping, restarting) gives up too.
        timeout=10,
    )
    return await pool


class SchemaNotMigrated(RuntimeError):
    """A service connecting as its own role (which may not change its schema) found migrations not yet applied."""


def _migration_files(folders: list[Path]) -> list[tuple[str, Path]]:
    """(recorded name, file) of every migration, in the order they are applied."""
    return [(f"{folder.name}/{path.name}" if folder != PLUMBING_SQL else f"plumbing/{path.name}", path)
            for folder in folders for path in sorted(folder.glob("*.sql"))]


async def _may_migrate(conn: asyncpg.Connection, schema: str) -> bool:
    """Whether the connected role may change `schema`: it owns it (or is a member of its owner), or it does not
    exist yet and the role may create schemas. A service's own role may do neither (shared/db_roles.py)."""
    return bool(await conn.fetchval(
        """SELECT CASE WHEN n.oid IS NULL THEN has_database_privilege(current_database(), 'CREATE')
                       ELSE pg_has_role(n.nspowner, 'USAGE') END
           FROM (SELECT 1) AS one LEFT JOIN pg_namespace n ON n.nspname = $1""", schema))


async def _check_migrated(conn: asyncpg.Connection, schema: str, folders: list[Path]) -> list[str]:
    """As a role that may not migrate: every migration must already be applied (by the owner), else say so."""
    try:
        done = {r["name"] for r in await conn.fetch(f'SELECT name FROM "{schema}".schema_migrations')}
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError, asyncpg.InsufficientPrivilegeError) as exc:
        raise SchemaNotMigrated(
            f"schema {schema} is not migrated or not granted to this role ({exc}): run `python -m shared.migrate` "
            "as the database owner (WANGGE_DATABASE_URL) with this service's WANGGE_<SERVICE>_DATABASE_URL set") from None
    pending = [name for name, _ in _migration_files(folders) if name not in done]
    if pending:
        raise SchemaNotMigrated(
            f"schema {schema} lacks {', '.join(pending)}, and this service's own role may not apply them: "
            "run `python -m shared.migrate` as the database owner (WANGGE_DATABASE_URL)")
    return []


async def migrate(conn: asyncpg.Connection, schema: str, folders: list[Path]) -> list[str]:
    """Apply the numbered .sql files of each folder, once each, in order; returns what was applied. Connected as a
    service's own role (not the schema's owner), only checks that the owner has applied them all."""
    if not await _may_migrate(conn, schema):
        return await _check_migrated(conn, schema, folders)
    applied: list[str] = []
    async with conn.transaction():
        # Two instances starting together must not migrate twice: serialise on the schema's name.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for name, path in _migration_files(folders):
            if name in done:
                continue
            log.info("migrating %s: %s", schema, name)
            await conn.execute(path.read_text(encoding="utf-8"))
            await conn.execute("INSERT INTO schema_migrations(name) VALUES ($1)", name)
            applied.append(name)
    return applied
