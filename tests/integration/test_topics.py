"""Creating topics: what `ensure_topics` reports is what the broker did, and a created topic is usable at once."""
from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from shared.topics import EnsuredTopics, TopicSpec, ensure_topics

pytestmark = pytest.mark.integration


async def _delete(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await asyncio.wait_for(admin.start(), 20)
    try:
        await asyncio.wait_for(admin.delete_topics(names), 30)
    finally:
        await admin.close()


async def test_each_topic_is_reported_once_as_created_however_many_ask_at_once(base_settings):
    """Five callers race to create the same new topics: some see them missing in the list and all ask the broker.
    The create response decides, topic by topic, so across the five every topic is created exactly once and
    reported as there already by the others — never counted twice."""
    tag = uuid.uuid4().hex[:8]
    specs = [TopicSpec(f"x{tag}.race.{n}", partitions=2) for n in range(6)]
    names = [s.name for s in specs]
    try:
        results: list[EnsuredTopics] = await asyncio.wait_for(
            asyncio.gather(*(ensure_topics(base_settings.kafka_bootstrap, specs) for _ in range(5))), 60)
        created = [name for r in results for name in r.created]
        assert sorted(created) == sorted(names)  # each once, by whichever caller the broker answered first
        for result in results:
            assert sorted(result.created + result.existing) == sorted(names) and result.not_allowed == ()
        again = await asyncio.wait_for(ensure_topics(base_settings.kafka_bootstrap, specs), 30)
        assert again.created == () and sorted(again.existing) == sorted(names)
    finally:
        await _delete(base_settings.kafka_bootstrap, names)


async def test_a_topic_reported_created_takes_a_message_and_serves_it_at_once(base_settings):
    """No wait between the return of ensure_topics and the first send: every partition has its leader."""
    tag = uuid.uuid4().hex[:8]
    spec = TopicSpec(f"x{tag}.fresh", partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=base_settings.kafka_bootstrap, request_timeout_ms=5000)
    consumer = AIOKafkaConsumer(bootstrap_servers=base_settings.kafka_bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=f"x{tag}")
    try:
        result = await asyncio.wait_for(ensure_topics(base_settings.kafka_bootstrap, [spec]), 30)
        assert result.created == (spec.name,)
        await asyncio.wait_for(producer.start(), 20)
        partitions = await asyncio.wait_for(producer.partitions_for(spec.name), 5)
        assert partitions == {0, 1, 2}
        for partition in partitions:
            await asyncio.wait_for(producer.send_and_wait(spec.name, b"m", partition=partition), 5)
        consumer.subscribe([spec.name])
        await asyncio.wait_for(consumer.start(), 20)
        seen = 0

        async def read() -> None:
            nonlocal seen
            while seen < 3:
                batch = await consumer.getmany(timeout_ms=500)
                seen += sum(len(records) for records in batch.values())
        await asyncio.wait_for(read(), 30)
        assert seen == 3
    finally:
        await producer.stop()
        await consumer.stop()
        await _delete(base_settings.kafka_bootstrap, [spec.name])


async def test_a_topic_kafka_refuses_is_an_error_that_names_it(base_settings):
    """A refusal other than 'already there' or 'not allowed' is raised, not counted as created."""
    from aiokafka.errors import KafkaError

    tag = uuid.uuid4().hex[:8]
    bad = TopicSpec(f"x{tag}.bad", partitions=1, retention_ms=-5)  # an invalid retention.ms
    with pytest.raises(KafkaError, match=f"x{tag}.bad"):
        await asyncio.wait_for(ensure_topics(base_settings.kafka_bootstrap, [bad]), 30)


# What a topic gets on the suite's broker(s), by the number of nodes `./dev test` started (WANGGE_KAFKA_NODES).
COPIES_BY_NODES = {1: (1, "1"), 3: (3, "2")}


async def test_a_topic_gets_the_copies_read_from_the_cluster_one_on_the_single_broker_three_on_the_cluster(
        base_settings):
    """The replication is read from the cluster, not configured: the suite's one broker gives one copy and
    min.insync.replicas 1, whatever the upper bound (WANGGE_KAFKA_REPLICATION_FACTOR, 3 by default) allows; the
    suite run on the three-node cluster (WANGGE_KAFKA_NODES=3 ./dev test) gives three copies and 2."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    nodes = int(os.environ.get("WANGGE_KAFKA_NODES", "1"))
    copies, min_insync = COPIES_BY_NODES[nodes]
    tag = uuid.uuid4().hex[:8]
    spec = TopicSpec(f"x{tag}.copies", partitions=2)
    admin = AIOKafkaAdminClient(bootstrap_servers=base_settings.kafka_bootstrap)
    await asyncio.wait_for(admin.start(), 20)
    try:
        assert len((await admin.describe_cluster())["brokers"]) == nodes
        await asyncio.wait_for(ensure_topics(base_settings.kafka_bootstrap, [spec]), 30)
        (described,) = await asyncio.wait_for(admin.describe_topics([spec.name]), 20)
        (response,) = await asyncio.wait_for(admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, spec.name, {"min.insync.replicas": None})]), 20)
        configs = {entry[0]: entry[1] for resource in response.resources for entry in resource[4]}
        assert [len(p["replicas"]) for p in described["partitions"]] == [copies, copies]
        assert configs["min.insync.replicas"] == min_insync
    finally:
        await admin.close()
        await _delete(base_settings.kafka_bootstrap, [spec.name])


async def test_a_topic_there_already_is_given_the_segment_ms_its_spec_names(base_settings):
    """A compacted or cut topic sheds records only from segments no longer written to: a topic created before its
    spec named a segment.ms (the live tables' changelogs kept the broker's 7 days, so every row ever written) is given
    it by the next ensure_topics, once; a spec naming none leaves the topic's as it is."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    tag = uuid.uuid4().hex[:8]
    plain, timed = TopicSpec(f"x{tag}.plain", partitions=1), TopicSpec(f"x{tag}.timed", partitions=1)
    admin = AIOKafkaAdminClient(bootstrap_servers=base_settings.kafka_bootstrap)
    await asyncio.wait_for(admin.start(), 20)

    async def segment_ms(name: str) -> str:
        (response,) = await asyncio.wait_for(admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, {"segment.ms": None})]), 20)
        return {entry[0]: entry[1] for resource in response.resources for entry in resource[4]}["segment.ms"]

    try:
        await asyncio.wait_for(ensure_topics(base_settings.kafka_bootstrap, [plain, timed]), 30)
        week = await segment_ms(timed.name)
        assert week == str(7 * 24 * 3600 * 1000)  # the broker's default: what the topic was created with
        named = [TopicSpec(plain.name, partitions=1), TopicSpec(timed.name, partitions=1, segment_ms=3_600_000)]
        result = await asyncio.wait_for(ensure_topics(base_settings.kafka_bootstrap, named), 30)
        assert result.segments_held == (timed.name,)
        assert await segment_ms(timed.name) == "3600000"
        assert await segment_ms(plain.name) == week
        again = await asyncio.wait_for(ensure_topics(base_settings.kafka_bootstrap, named), 30)
        assert again.segments_held == ()  # already so: nothing asked of the broker
    finally:
        await admin.close()
        await _delete(base_settings.kafka_bootstrap, [plain.name, timed.name])
