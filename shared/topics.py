"""Topic names of the contract, and creating them with their partitions and retention.

Run `python -m shared.topics ensure` to create the contract's fixed topics; owners' task
topics are created by routing when it loads a street.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import ClusterAuthorizationFailedError, TopicAlreadyExistsError, TopicAuthorizationFailedError

from shared import kafka_security
from shared.settings import get_settings

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000


# The topics every case crosses: more partitions, more of a service's partitions handled side by side (each
# partition's messages one after another, for the order per case). A topic keeps the count it was created with:
# adding partitions later would move cases to other partitions and break their order while old messages drain.
HOT_PARTITIONS = 6


@dataclass(frozen=True)
class TopicSpec:
    """A topic with the partitions and retention it is created with."""

    name: str
    partitions: int = 3
    retention_ms: int = 30 * DAY_MS
    compacted: bool = False

    def configs(self) -> dict[str, str]:
        """The topic configs it is created with."""
        if self.compacted:
            # The registry keeps the latest record per key for good (an issued or revoked credential).
            return {"cleanup.policy": "compact", "retention.ms": "-1"}
        return {"retention.ms": str(self.retention_ms)}


class Topics:
    """The contract's topic names, optionally prefixed (tests give each run its own)."""

    def __init__(self, prefix: str = ""):
        self.prefix = prefix
        self.reports = f"{prefix}wangge.reports"
        self.reports_rejected = f"{prefix}wangge.reports.rejected"
        self.cases = f"{prefix}wangge.cases"
        self.task_updates = f"{prefix}wangge.task-updates"
        self.replies = f"{prefix}wangge.replies"
        self.credentials = f"{prefix}wangge.credentials"
        # Internal: residents' names and phone numbers, from intake to notify alone (DESIGN "Personal
        # data"). Nothing else reads it; the production profile enforces that with a Kafka ACL.
        self.contacts = f"{prefix}wangge.contacts"
        # Internal: the street's time rules in force, published by supervision (which owns them) for routing
        # and notify (shared/contracts/street.py).
        self.street_config = f"{prefix}wangge.street-config"

    def tasks(self, owner: str) -> str:
        """The task topic of one owner (a department code or a community's grid code)."""
        return f"{self.prefix}wangge.tasks.{owner}"

    def rejected_for(self, topic: str) -> str:
        """Where a message on `topic` goes when it cannot be accepted (wangge.reports → wangge.reports.rejected)."""
        return f"{topic}.rejected"

    def fixed(self) -> list[TopicSpec]:
        """The contract's fixed topics. The case log is kept for good: it is the history of every case."""
        return [
            TopicSpec(self.reports, partitions=HOT_PARTITIONS, retention_ms=30 * DAY_MS),
            TopicSpec(self.reports_rejected, partitions=1, retention_ms=90 * DAY_MS),
            TopicSpec(self.cases, partitions=HOT_PARTITIONS, retention_ms=-1),
            TopicSpec(self.rejected_for(self.cases), partitions=1, retention_ms=90 * DAY_MS),
            TopicSpec(self.task_updates, retention_ms=90 * DAY_MS),
            TopicSpec(self.rejected_for(self.task_updates), partitions=1, retention_ms=90 * DAY_MS),
            TopicSpec(self.replies, retention_ms=365 * DAY_MS),
            TopicSpec(self.credentials, partitions=1, compacted=True),
            # Contacts are kept only as long as notify may still be catching up on them: notify
            # holds its own copy (erased after the survey window), so the topic need not.
            TopicSpec(self.contacts, partitions=HOT_PARTITIONS, retention_ms=30 * DAY_MS),
            TopicSpec(self.rejected_for(self.contacts), partitions=1, retention_ms=30 * DAY_MS),
            # Compacted: the latest version is kept for good, so a service started years later still learns it.
            TopicSpec(self.street_config, partitions=1, compacted=True),
            TopicSpec(self.rejected_for(self.street_config), partitions=1, retention_ms=90 * DAY_MS),
        ]

    def spec_for(self, name: str) -> TopicSpec:
        """The spec a topic of this name is created with (a task topic, a fixed one, or the default)."""
        for spec in self.fixed():
            if spec.name == name:
                return spec
        task_prefix = self.tasks("")
        if name.startswith(task_prefix):
            return self.for_owner(name[len(task_prefix):])
        return TopicSpec(name)

    def for_owner(self, owner: str) -> TopicSpec:
        """The spec of an owner's task topic."""
        return TopicSpec(self.tasks(owner), partitions=1, retention_ms=90 * DAY_MS)


async def ensure_topics(bootstrap: str, specs: list[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **kafka_security.options(bootstrap))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return []
        replicas, min_insync = kafka_security.replication(bootstrap)
        new = [NewTopic(s.name, num_partitions=s.partitions, replication_factor=replicas,
                        topic_configs={**s.configs(), "min.insync.replicas": str(min_insync)}) for s in missing]
        try:
            await admin.create_topics(new)
        except TopicAlreadyExistsError:
            pass  # another process created them meanwhile: that is what we wanted
        except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError) as exc:
            # Under ACLs a principal does not see (so seems to miss) topics that are not its own; the
            # administrator creates those. Its own topics it may create, and the others it never uses.
            log.info("not allowed to create some of %s (%s): left to the administrator", [s.name for s in missing], exc)
        return [s.name for s in missing]
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    """Command line: create the contract's topics on the configured broker."""
    parser = argparse.ArgumentParser(
        prog="python -m shared.topics",
        description="Create wangge's contract topics (wangge.reports, wangge.cases, …) on the broker "
        "named by WANGGE_KAFKA_BOOTSTRAP. Existing topics are left as they are.",
    )
    parser.add_argument("command", choices=["ensure", "list"], help="ensure: create missing topics; list: show names")
    args = parser.parse_args(argv)
    settings = get_settings()
    kafka_security.use(settings)
    topics = Topics(settings.topic_prefix)
    if args.command == "list":
        for spec in topics.fixed():
            print(f"{spec.name}\tpartitions={spec.partitions}\tretention.ms={spec.retention_ms}")
        return 0
    try:
        created = asyncio.run(ensure_topics(settings.kafka_bootstrap, topics.fixed()))
    except Exception as exc:  # noqa: BLE001 — a CLI explains, it does not dump a trace
        print(f"could not reach Kafka at {settings.kafka_bootstrap}: {exc}. Is it running? Try ./dev infra", file=sys.stderr)
        return 1
    print(f"topics: {len(created)} created, {len(topics.fixed()) - len(created)} already there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
