"""The replication a topic is created with, from the brokers the cluster lists (shared/replication.py)."""
from __future__ import annotations

import pytest

from shared.replication import TopicReplication, Verdict, judge, reassignment_plan, replication_for

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("brokers", "upper", "expected"), [
    (1, 3, (1, 1)),   # the development broker: one copy
    (2, 3, (2, 1)),   # a broker of three away: two copies, and one of them may still be lost for writes to go on
    (3, 3, (3, 2)),   # the cluster: three copies, an acknowledged write on two
    (5, 3, (3, 2)),   # more brokers than copies wanted: three
    (5, 5, (3, 2)),   # three is the most wangge asks for
    (3, 1, (1, 1)),   # WANGGE_KAFKA_REPLICATION_FACTOR=1 bounds it
    (0, 3, (1, 1)),   # no broker listed: the create fails at the broker, not with a factor of 0
])
def test_copies_and_in_sync_replicas_follow_the_brokers(brokers, upper, expected):
    assert replication_for(brokers, upper) == expected


def _topic(replicas: dict[int, list[int]], min_insync: int | None) -> TopicReplication:
    return TopicReplication("wangge.cases", replicas, min_insync)


@pytest.mark.parametrize(("replicas", "min_insync", "factor", "expected"), [
    ({0: [1, 2, 3]}, 1, 3, Verdict(raise_min_insync_to=2)),        # three copies, one in sync enough: raised to 2
    ({0: [1, 2, 3]}, 2, 3, Verdict()),                             # as a new topic gets it: nothing to do
    ({0: [1, 2, 3]}, 3, 3, Verdict()),                             # set higher by an operator: never lowered
    ({0: [1]}, 1, 3, Verdict(short_of=3)),                         # one copy: 2 in sync would refuse every write
    ({0: [1, 2, 3], 1: [2]}, 1, 3, Verdict(short_of=3)),           # judged by its partition with fewest copies
    ({0: [1, 2]}, 1, 3, Verdict(short_of=3)),                      # two copies: min.insync.replicas 1 (one may go)
    ({0: [1, 2, 3]}, 1, 2, Verdict()),                             # a broker away: the cluster gives 2 and 1 now
    ({0: [1, 2, 3]}, None, 3, Verdict()),                          # its configs not readable here: no alter asked
    ({0: [1]}, 1, 1, Verdict()),                                   # the single broker: one copy is all there is
])
def test_an_existing_topic_is_raised_to_what_its_copies_call_for_and_short_copies_are_named(
        replicas, min_insync, factor, expected):
    assert judge(_topic(replicas, min_insync), factor) == expected


def test_the_reassignment_plan_keeps_each_partitions_replicas_first_and_spreads_the_new_copies():
    plan = reassignment_plan(_topic({0: [1], 1: [2], 2: [3], 3: [1, 3]}, 1), 3, [3, 1, 2])
    assert plan == {"version": 1, "partitions": [
        {"topic": "wangge.cases", "partition": 0, "replicas": [1, 2, 3]},
        {"topic": "wangge.cases", "partition": 1, "replicas": [2, 3, 1]},
        {"topic": "wangge.cases", "partition": 2, "replicas": [3, 1, 2]},
        {"topic": "wangge.cases", "partition": 3, "replicas": [1, 3, 2]},
    ]}
