"""How many copies of a topic the cluster keeps, and what is done about a topic that exists with fewer.

A topic is created with the replication the cluster can hold (`replication_for`). A topic that exists already may
have been created with less: on a single broker before the cluster grew, by hand, or while a broker was away.
Kafka lets a client raise its min.insync.replicas (IncrementalAlterConfigs), which `raise_or_report` does; its
replication factor only changes by reassigning its partitions, which moves data between brokers and is the
operator's call, so it is reported with the command and the plan that would do it.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    ClusterAuthorizationFailedError, KafkaError, TopicAuthorizationFailedError, for_code,
)
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Int8, Int16, Int32, Schema, String

log = logging.getLogger(__name__)

# Three copies of every partition where the cluster has three brokers or more: one broker may be lost (killed,
# restarted, upgraded) with nothing lost and nothing stopped, and a second loss stops writes rather than lose them.
REPLICATION_CAP = 3


def replication_for(brokers: int, upper: int = REPLICATION_CAP) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for a topic created on a cluster of `brokers` brokers.

    The factor is min(3, brokers, upper); min.insync.replicas is 2 for a factor of 3 (a write acknowledged with
    acks=all is on two brokers, and one broker's loss still takes writes), the factor less one above that
    (majority), and 1 below (a single copy, or two of which one may be away).
    """
    factor = max(1, min(REPLICATION_CAP, upper, brokers))
    min_insync = max(1, min(factor - 1, factor // 2 + 1))
    return factor, min_insync


@dataclass(frozen=True)
class TopicReplication:
    """An existing topic's replication as the cluster reports it."""

    name: str
    replicas: dict[int, list[int]]  # partition → its replicas (broker ids), the preferred leader first
    min_insync: int | None  # None: the broker did not say (not allowed to read the topic's configs)

    @property
    def factor(self) -> int:
        """The fewest copies any partition has: what one broker's loss is measured against."""
        return min((len(r) for r in self.replicas.values()), default=0)


@dataclass(frozen=True)
class Verdict:
    """What to do about one existing topic on a cluster whose new topics get `factor` copies."""

    raise_min_insync_to: int | None = None  # alter min.insync.replicas to this
    short_of: int | None = None  # the topic has fewer copies than this: reassign its partitions


def judge(topic: TopicReplication, factor: int) -> Verdict:
    """The verdict for `topic` where new topics get `factor` copies (pure).

    min.insync.replicas is raised to what the copies the topic has call for (never above: a topic with one copy and
    min.insync.replicas 2 would refuse every acks=all write), and never lowered (an operator may have set it higher).
    """
    has = topic.factor
    wanted_min_insync = replication_for(min(has, factor))[1]
    raise_to = wanted_min_insync if topic.min_insync is not None and topic.min_insync < wanted_min_insync else None
    return Verdict(raise_min_insync_to=raise_to, short_of=factor if 0 < has < factor else None)


def reassignment_plan(topic: TopicReplication, factor: int, brokers: list[int]) -> dict[str, Any]:
    """kafka-reassign-partitions' plan giving every partition `factor` copies: its own replicas kept (its preferred
    leader first), the others added from `brokers` in turn, so the new copies spread over the cluster."""
    ordered = sorted(brokers)
    partitions = []
    for partition, replicas in sorted(topic.replicas.items()):
        wanted = list(replicas)
        for step in range(len(ordered)):
            if len(wanted) >= factor:
                break
            candidate = ordered[(partition + step) % len(ordered)]
            if candidate not in wanted:
                wanted.append(candidate)
        partitions.append({"topic": topic.name, "partition": partition, "replicas": wanted})
    return {"version": 1, "partitions": partitions}


# IncrementalAlterConfigs (KIP-339), version 0: aiokafka 0.14 has only the older AlterConfigs, which replaces every
# config a topic has set (its retention, its cleanup policy) with the ones given. This one changes only those named.
class IncrementalAlterConfigsResponse_v0(Response):
    API_KEY = 44
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("responses", Array(("error_code", Int16), ("error_message", String("utf-8")), ("resource_type", Int8),
                            ("resource_name", String("utf-8")))),
    )


class IncrementalAlterConfigsRequest_v0(RequestStruct):
    API_KEY = 44
    API_VERSION = 0
    RESPONSE_TYPE = IncrementalAlterConfigsResponse_v0
    SCHEMA = Schema(
        ("resources", Array(("resource_type", Int8), ("resource_name", String("utf-8")),
                            ("configs", Array(("name", String("utf-8")), ("config_operation", Int8),
                                              ("value", String("utf-8")))))),
        ("validate_only", Boolean),
    )


class IncrementalAlterConfigsRequest(Request[IncrementalAlterConfigsRequest_v0]):
    API_KEY = 44

    def __init__(self, resources: list[Any]):
        self._resources = resources

    def build(self, request_struct_class: type[IncrementalAlterConfigsRequest_v0]) -> IncrementalAlterConfigsRequest_v0:
        return request_struct_class(self._resources, False)


_SET = 0  # IncrementalAlterConfigs' operation SET
_NOT_ALLOWED = {TopicAuthorizationFailedError.errno, ClusterAuthorizationFailedError.errno}


async def describe(admin: AIOKafkaAdminClient, names: list[str]) -> list[TopicReplication]:
    """The replicas of every partition of these (existing) topics, and their min.insync.replicas where the broker
    lets this principal read it."""
    described = await admin.describe_topics(names)
    min_insync = {name: int(value) for name, value in (await topic_config(admin, names, "min.insync.replicas")).items()}
    return [TopicReplication(t["topic"], {p["partition"]: list(p["replicas"]) for p in t.get("partitions") or []},
                             min_insync.get(t["topic"]))
            for t in described if t.get("error_code", 0) == 0]


async def topic_config(admin: AIOKafkaAdminClient, names: list[str], key: str) -> dict[str, str]:
    """One config of each of these topics, as the broker has it; the topics it would not tell left out (none at all
    if it refused the request: this principal may not read them)."""
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, {key: None}) for name in names])
    except KafkaError as exc:
        log.debug("could not read the %s of %s: %s", key, names, exc)
        return {}
    found: dict[str, str] = {}
    for response in responses:
        for resource in response.resources:
            entries = {entry[0]: entry[1] for entry in resource[4]}
            if resource[0] == 0 and entries.get(key) is not None:
                found[resource[3]] = entries[key]
    return found


async def set_topic_configs(admin: AIOKafkaAdminClient, wanted: dict[str, dict[str, str]]) -> dict[str, str]:
    """Set these configs of each topic (the others left as they are); the topics refused, with the broker's reason."""
    resources = [(ConfigResourceType.TOPIC, name, [(key, _SET, value) for key, value in configs.items()])
                 for name, configs in wanted.items()]
    response = await admin._send_request(IncrementalAlterConfigsRequest(resources))  # noqa: SLF001 — aiokafka has
    # no public call for a request it does not know; its own admin methods send theirs the same way
    refused = {}
    for code, message, _type, name in response.responses:
        if code:
            refused[name] = f"{for_code(code).__name__}: {message or 'refused'}"
    return refused


async def raise_or_report(admin: AIOKafkaAdminClient, bootstrap: str, names: list[str], factor: int,
                          brokers: list[int]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """For existing topics on a cluster whose new topics get `factor` copies: raise each one's min.insync.replicas
    to what its copies call for, and warn of each one with fewer copies than `factor`, naming what to run.

    Returns (the topics whose min.insync.replicas was raised, the topics with fewer copies than `factor`).
    """
    if factor <= 1 or not names:
        return (), ()  # one copy is all a topic can have here, and min.insync.replicas 1 the least it has
    topics = await describe(admin, names)
    verdicts = {t.name: judge(t, factor) for t in topics}
    raise_to = {name: v.raise_min_insync_to for name, v in verdicts.items() if v.raise_min_insync_to is not None}
    wanted = {name: {"min.insync.replicas": str(value)} for name, value in raise_to.items()}
    refused = await set_topic_configs(admin, wanted) if wanted else {}
    for name, reason in refused.items():
        log.warning(
            "topic %s keeps min.insync.replicas below %d (%s): an acks=all write it acknowledges may be on one "
            "broker only. Run: kafka-configs.sh --bootstrap-server %s --alter --entity-type topics --entity-name %s "
            "--add-config min.insync.replicas=%d", name, raise_to[name], reason, bootstrap, name, raise_to[name])
    raised = tuple(name for name in raise_to if name not in refused)
    for name in raised:
        log.info("topic %s: min.insync.replicas raised to %d", name, raise_to[name])
    short = tuple(t.name for t in topics if verdicts[t.name].short_of is not None)
    for topic in topics:
        if topic.name in short:
            log.warning(
                "topic %s has %d cop%s of each partition where this cluster gives %d. Kafka "
                "changes a topic's replication factor only by reassigning its partitions: write this plan to plan.json "
                "and run kafka-reassign-partitions.sh --bootstrap-server %s --reassignment-json-file plan.json "
                "--execute (on a ./dev cluster: deploy/local/kafka.sh reassign --reassignment-json-file plan.json "
                "--execute), then `python -m shared.topics ensure` to raise its min.insync.replicas. "
                "Plan: %s", topic.name, topic.factor, "y" if topic.factor == 1 else "ies", factor, bootstrap,
                json.dumps(reassignment_plan(topic, factor, brokers), separators=(",", ":")))
    return raised, short
