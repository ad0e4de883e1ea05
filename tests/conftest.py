"""Fixtures shared by the test tiers.

Integration and e2e tests talk to the real Kafka and PostgreSQL that `./dev test` starts. Each
test run gets its own topic prefix and schema prefix so runs (and tests) never collide. A missing
broker or database is a failure, not a skip.
"""
from __future__ import annotations

import asyncio
import re
import shutil
import socket
import uuid
from pathlib import Path
from typing import AsyncIterator

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from shared.settings import REPO_ROOT, Settings
from shared.street import Street, load_street, street_config_folder
from shared.topics import Topics, ensure_topics

DEMO_STREET = Path(REPO_ROOT.parent / "shared" / "data")


def _reachable(hostports: str) -> bool:
    """Whether one of the addresses answers (a comma list: a Kafka cluster's bootstrap)."""
    for hostport in hostports.split(","):
        host, port = hostport.strip().rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
            return True
        except OSError:
            continue
    return False


@pytest.fixture(scope="session")
def demo_street() -> Street:
    """The demo street (文化路街道) read from ../shared/data."""
    return load_street(Settings().street_dir)


@pytest.fixture(scope="session")
def run_id() -> str:
    """A short id unique to this test run."""
    return uuid.uuid4().hex[:8]


def _daytime_config(street_dir: Path, folder: Path) -> Path:
    """The street's configuration folder copied with no quiet hours: a test waiting for a progress SMS must not
    depend on the hour it runs at (22:00–08:00 would hold it till morning). The quiet-hours tests ask for the
    street's own folder."""
    source = street_config_folder(street_dir)
    shutil.copytree(source, folder, dirs_exist_ok=True)
    for config in folder.glob("*-config.toml"):
        config.write_text(re.sub(r"(?m)^quiet_hours\s*=.*$", "quiet_hours = []", config.read_text(encoding="utf-8")),
                          encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings from the environment, checked: Kafka and PostgreSQL must answer. No quiet hours (see above)."""
    settings = Settings()
    if settings.street_config_dir is None:
        folder = _daytime_config(settings.street_dir, tmp_path_factory.mktemp("street-config"))
        settings = settings.model_copy(update={"street_config_dir": folder})
    if not _reachable(settings.kafka_bootstrap):
        pytest.fail(f"Kafka is not reachable at {settings.kafka_bootstrap}: run the tests with ./dev test")
    dsn_host = settings.database_url.split("@", 1)[1].split("/", 1)[0]
    if not _reachable(dsn_host):
        pytest.fail(f"PostgreSQL is not reachable at {dsn_host}: run the tests with ./dev test")
    return settings


@pytest.fixture
def make_settings(base_settings: Settings, tmp_path_factory: pytest.TempPathFactory):
    """A factory of settings isolated from every other test: own topic prefix, schema prefix and photo folder."""

    def make(**overrides: object) -> Settings:
        tag = uuid.uuid4().hex[:8]
        values = {"topic_prefix": f"t{tag}.", "schema_prefix": f"t{tag}_", "outbox_poll_seconds": 0.2,
                  "media_dir": tmp_path_factory.mktemp(f"media-{tag}")}
        values.update(overrides)
        return base_settings.model_copy(update=values)

    return make


@pytest.fixture
async def isolated(make_settings) -> AsyncIterator[Settings]:
    """Settings of one test, with the contract's topics created under its own prefix; schemas dropped after."""
    settings = make_settings()
    await asyncio.wait_for(ensure_topics(settings.kafka_bootstrap, Topics(settings.topic_prefix).fixed()), 30)
    yield settings
    await drop_schemas(settings)
    await delete_topics(settings)


async def delete_topics(settings: Settings) -> None:
    """Remove the topics a test created (its prefix marks them), so runs do not pile up topics."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await asyncio.wait_for(admin.start(), 20)
    try:
        names = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        if names:
            await asyncio.wait_for(admin.delete_topics(names), 30)
    finally:
        await admin.close()
    forget_series(settings.topic_prefix)


def forget_series(prefix: str) -> None:
    """Drop the metric series labelled with a finished test's topics or groups. A production process serves one
    street's topics; the suite's one process would otherwise pile up series for a thousand tests' topics, and every
    later /metrics would render them all."""
    for collector in list(REGISTRY._collector_to_names):  # noqa: SLF001 — prometheus_client lists no collectors
        if not isinstance(collector, MetricWrapperBase) or not collector._labelnames:  # noqa: SLF001
            continue  # a custom collector (its series made at each scrape) or one without labels
        for labels in list(collector._metrics):  # noqa: SLF001
            if any(str(value).startswith(prefix) for value in labels):
                collector.remove(*labels)


async def drop_schemas(settings: Settings) -> None:
    """Remove the schemas a test created (its prefix marks them)."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        names = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", settings.schema_prefix.replace("_", r"\_") + "%"
        )
        for row in names:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{row["nspname"]}" CASCADE')
    finally:
        await conn.close()
