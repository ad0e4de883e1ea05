"""Topic names of the contract, and creating them with their partitions and retention.

Run `python -m shared.topics ensure` to create the contract's fixed topics; owners' task
topics are created by routing when it loads a street.
"""
from __future__ import annotations

import re

import argparse
import asyncio
import logging
import sys
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    ClusterAuthorizationFailedError, KafkaError, TopicAlreadyExistsError, TopicAuthorizationFailedError, for_code,
)

from shared import kafka_security
from shared.replication import raise_or_report, replication_for, set_topic_configs, topic_config
from shared.settings import get_settings

log = logging.getLogger(__name__)

HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS
# Residents' phones on the topics their one reader takes them from (wangge.reports: intake; wangge.contacts: notify)
# stay only until that reader has committed them: it cuts the topic below its commit (shared/trim.py). The retention
# is the backstop for a reader that is away: a week, long enough for any outage to be noticed and mended (the
# consumer's lag and stall alerts fire within minutes), short enough that a phone never read does not stay a month.
PERSONAL_BACKSTOP_MS = 7 * DAY_MS
# Cut records leave the disk with their segment: a new segment every hour bounds how long their bytes outlive the cut.
PERSONAL_SEGMENT_MS = HOUR_MS


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
    cleanup_policy: str | None = None  # as given ("compact,delete": a windowed table's changelog), else the broker's
    # A new segment at least this often (the broker's default is 7 days): records cut from the log (shared/trim.py)
    # leave the broker's disk only with their segment, so a topic whose records are cut rolls its segments soon.
    segment_ms: int | None = None

    def configs(self) -> dict[str, str]:
        """The topic configs it is created with."""
        if self.compacted:
            # The registry keeps the latest record per key for good (an issued or revoked credential).
            return {"cleanup.policy": "compact", "retention.ms": "-1"}
        configs = {"retention.ms": str(self.retention_ms)}
        if self.cleanup_policy:
            configs = {"cleanup.policy": self.cleanup_policy, **configs}
        if self.segment_ms is not None:
            configs["segment.ms"] = str(self.segment_ms)
        return configs


# The topics systems outside wangge read (DESIGN.md "Users"): the owners' task topics and the hotline's replies.
_READ_OUTSIDE = re.compile(r"(?:^|\.)wangge\.(?:tasks\.[^.]+|replies)$")


def read_outside(topic: str) -> bool:
    """Whether systems outside wangge read this topic (an owner's task topic, the replies; any prefix)."""
    return _READ_OUTSIDE.search(topic) is not None


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
            # The reporter's name and phone: cut as soon as intake has the report (shared/trim.py), a week at most.
            TopicSpec(self.reports, partitions=HOT_PARTITIONS, retention_ms=PERSONAL_BACKSTOP_MS,
                      segment_ms=PERSONAL_SEGMENT_MS),
            TopicSpec(self.reports_rejected, partitions=1, retention_ms=90 * DAY_MS),
            TopicSpec(self.cases, partitions=HOT_PARTITIONS, retention_ms=-1),
            TopicSpec(self.rejected_for(self.cases), partitions=1, retention_ms=90 * DAY_MS),
            TopicSpec(self.task_updates, retention_ms=90 * DAY_MS),
            TopicSpec(self.rejected_for(self.task_updates), partitions=1, retention_ms=90 * DAY_MS),
            TopicSpec(self.replies, retention_ms=365 * DAY_MS),
            TopicSpec(self.credentials, partitions=1, compacted=True),
            # Contacts are kept only until notify has taken them (it cuts the topic below its commit, shared/trim.py),
            # a week at most if notify is away: notify holds its own copy (erased after the survey window).
            TopicSpec(self.contacts, partitions=HOT_PARTITIONS, retention_ms=PERSONAL_BACKSTOP_MS,
                      segment_ms=PERSONAL_SEGMENT_MS),
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


@dataclass(frozen=True)
class EnsuredTopics:
    """What the broker answered for each topic asked for: created now, there already, or not ours to create."""

    created: tuple[str, ...] = ()
    existing: tuple[str, ...] = ()
    not_allowed: tuple[str, ...] = ()
    # Of those there already: raised to the min.insync.replicas their copies call for; with fewer copies than a
    # new topic gets here (reported with the reassignment to run: shared/replication.py).
    min_insync_raised: tuple[str, ...] = ()
    fewer_copies: tuple[str, ...] = ()
    # Of those there already: given the segment.ms their spec names, which they had not (a refusal is warned of).
    segments_held: tuple[str, ...] = ()


async def cluster_replication(admin: AIOKafkaAdminClient, bootstrap: str) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) read from the cluster: the brokers its metadata lists now,
    bounded by WANGGE_KAFKA_REPLICATION_FACTOR (`kafka_security.max_replication`). A broker that is away is not
    listed: a topic created meanwhile gets the copies the brokers present can hold, not a refusal."""
    return replication_for(len(await _broker_ids(admin)), kafka_security.max_replication(bootstrap))


async def _broker_ids(admin: AIOKafkaAdminClient) -> list[int]:
    return [broker["node_id"] for broker in (await admin.describe_cluster()).get("brokers") or []]


async def read_replication(bootstrap: str) -> tuple[int, int]:
    """`cluster_replication` on a connection of its own (for a client that creates topics itself: faust)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **kafka_security.options(bootstrap))
    await admin.start()
    try:
        return await cluster_replication(admin, bootstrap)
    finally:
        await admin.close()


class TopicsNotVisible(TimeoutError):
    """Topics the broker said it created did not show in its metadata (with their leaders) in time."""


# How long a topic the controller created may take to show in the metadata a broker serves: moments, except on a
# broker that has just started and is still catching up with the metadata log.
VISIBLE_TIMEOUT = 20.0


async def ensure_topics(bootstrap: str, specs: list[TopicSpec], *, visible_timeout: float = VISIBLE_TIMEOUT) -> EnsuredTopics:
    """Create the topics that do not exist yet, and return only when those created are usable.

    The broker's topic list can lag behind a creation that just happened (a broker that started moments ago), so
    the list only spares a request: what decides is the create response, read topic by topic (created, already
    there, not allowed). Topics created are then waited for until every partition has a leader in the metadata,
    at most `visible_timeout` seconds (TopicsNotVisible). Any other refusal raises the broker's error.
    Each is created with the replication the cluster can hold (`cluster_replication`: 3 copies and
    min.insync.replicas 2 on three brokers or more, 1 and 1 on one). Those there already are held to the same:
    a lower min.insync.replicas is raised, fewer copies are warned of with the reassignment that would add them;
    and to the segment.ms their spec names (a topic created before its spec named one keeps the broker's week).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **kafka_security.options(bootstrap))
    await admin.start()
    try:
        listed = set(await admin.list_topics())
        wanted = {s.name: s for s in specs}
        missing = [s for name, s in wanted.items() if name not in listed]
        brokers = await _broker_ids(admin)
        replicas, min_insync = replication_for(len(brokers), kafka_security.max_replication(bootstrap))
        outcome = EnsuredTopics()
        if missing:
            outcome = await _create(admin, missing, replicas, min_insync)
            created = [wanted[name] for name in outcome.created]
            if created:
                await _wait_visible(admin, created, visible_timeout)
        existing = tuple(n for n in wanted if n in listed) + outcome.existing
        raised, short = await _check_existing(admin, bootstrap, existing, replicas, brokers)
        held = await _hold_segments(admin, bootstrap, [wanted[name] for name in existing if name in wanted])
        return EnsuredTopics(created=outcome.created, existing=existing, not_allowed=outcome.not_allowed,
                             min_insync_raised=raised, fewer_copies=short, segments_held=held)
    finally:
        await admin.close()


async def _create(admin: AIOKafkaAdminClient, missing: list[TopicSpec], replicas: int,
                  min_insync: int) -> EnsuredTopics:
    """Ask the broker to create these topics; its answer for each (created, already there, not allowed)."""
    new = [NewTopic(s.name, num_partitions=s.partitions, replication_factor=replicas,
                    topic_configs={**s.configs(), "min.insync.replicas": str(min_insync)}) for s in missing]
    try:
        response = await admin.create_topics(new)
    except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError):
        response = None  # refused as a whole: none of them is this principal's to create
    outcome = _read_create_response(response, missing)
    if outcome.not_allowed:
        # Under ACLs a principal does not see (so seems to miss) topics that are not its own; the
        # administrator creates those. Its own topics it may create, and the others it never uses.
        log.info("not allowed to create %s: left to the administrator", list(outcome.not_allowed))
    return outcome


async def _hold_segments(admin: AIOKafkaAdminClient, bootstrap: str, specs: list[TopicSpec]) -> tuple[str, ...]:
    """Set segment.ms on the existing topics whose spec names another. Why: a compacted or cut topic sheds records
    only from segments no longer written to, so a topic that keeps the broker's 7-day segment keeps every record a
    week (a table's changelog is read whole at each restart). A refusal (no right to alter the topic's configs) is
    warned of, with the command to run, and does not stop the topic's use; topics whose configs this principal may
    not read are left as they are."""
    wanted = {spec.name: str(spec.segment_ms) for spec in specs if spec.segment_ms is not None}
    if not wanted:
        return ()
    found = await topic_config(admin, list(wanted), "segment.ms")
    differ = {name: {"segment.ms": wanted[name]} for name, value in found.items()
              if name in wanted and value != wanted[name]}
    if not differ:
        return ()
    try:
        refused = await set_topic_configs(admin, differ)
    except KafkaError as exc:
        refused = {name: repr(exc) for name in differ}
    for name, reason in refused.items():
        log.warning("topic %s keeps its segment.ms (%s): its old records stay on the broker until a segment rolls. "
                    "Run: kafka-configs.sh --bootstrap-server %s --alter --entity-type topics --entity-name %s "
                    "--add-config segment.ms=%s", name, reason, bootstrap, name, wanted[name])
    held = tuple(name for name in differ if name not in refused)
    for name in held:
        log.info("topic %s: segment.ms set to %s", name, wanted[name])
    return held


async def _check_existing(admin: AIOKafkaAdminClient, bootstrap: str, names: tuple[str, ...], replicas: int,
                          brokers: list[int]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Topics that were there already, held to the replication a new one gets (shared/replication.py). Advisory:
    a cluster that cannot answer this now does not stop the topics from being used."""
    try:
        return await raise_or_report(admin, bootstrap, list(names), replicas, brokers)
    except KafkaError as exc:
        log.warning("could not check the replication of the existing topics %s: %r", list(names), exc)
        return (), ()


_ALREADY_EXISTS = TopicAlreadyExistsError.errno
_NOT_ALLOWED = {TopicAuthorizationFailedError.errno, ClusterAuthorizationFailedError.errno}


def _read_create_response(response: Any, asked: list[TopicSpec]) -> EnsuredTopics:
    """Each topic's answer in a CreateTopics response; the first other error is raised as the broker's error."""
    if response is None:
        return EnsuredTopics(not_allowed=tuple(s.name for s in asked))
    created, existing, not_allowed = [], [], []
    answers = {entry[0]: entry for entry in response.topic_errors}
    for spec in asked:
        entry = answers.get(spec.name)
        if entry is None:
            raise KafkaError(f"the broker did not answer for topic {spec.name!r} in its CreateTopics response")
        code = entry[1]
        message = entry[2] if len(entry) > 2 else None
        if code == 0:
            created.append(spec.name)
        elif code == _ALREADY_EXISTS:
            existing.append(spec.name)  # created meanwhile by another process, or the list above lagged
        elif code in _NOT_ALLOWED:
            not_allowed.append(spec.name)
        else:
            raise for_code(code)(f"creating topic {spec.name!r}: {message or 'refused'}")
    return EnsuredTopics(tuple(created), tuple(existing), tuple(not_allowed))


async def _wait_visible(admin: AIOKafkaAdminClient, specs: list[TopicSpec], timeout: float) -> None:
    """Until every partition of these topics has a leader in the broker's metadata.

    Only topics that exist are described: a metadata request naming a missing topic would have the broker
    auto-create it (with its default partitions) where auto-creation is on.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    pending = {s.name: s.partitions for s in specs}
    delay = 0.05
    while True:
        listed = set(await admin.list_topics())
        named = [name for name in pending if name in listed]
        if named:
            for topic in await admin.describe_topics(named):
                partitions = topic.get("partitions") or []
                leaders = [p for p in partitions if p.get("leader", -1) >= 0]
                if topic.get("error_code", 0) == 0 and len(leaders) >= pending.get(topic["topic"], 1):
                    pending.pop(topic["topic"], None)
        if not pending:
            return
        if asyncio.get_running_loop().time() >= deadline:
            raise TopicsNotVisible(f"the broker created {sorted(pending)} but they had no leader in its metadata "
                                   f"after {timeout:g} s: is the broker overloaded, or still starting?")
        await asyncio.sleep(delay)
        delay = min(1.0, delay * 2)


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
    except TopicsNotVisible as exc:
        print(f"topics not ready: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 — a CLI explains, it does not dump a trace
        print(f"could not reach Kafka at {settings.kafka_bootstrap}: {exc}. Is it running? Try ./dev infra", file=sys.stderr)
        return 1
    line = f"topics: {len(created.created)} created, {len(created.existing)} already there"
    if created.not_allowed:
        line += f", {len(created.not_allowed)} left to the administrator (not allowed to create them)"
    if created.min_insync_raised:
        line += f", min.insync.replicas raised on {', '.join(created.min_insync_raised)}"
    if created.fewer_copies:
        line += (f"; FEWER COPIES than this cluster gives: {', '.join(created.fewer_copies)} "
                 "(the warnings above say what to run)")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
