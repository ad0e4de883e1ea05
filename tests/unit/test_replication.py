"""The replication a topic is created with, from the brokers the cluster lists (shared/topics.py)."""
from __future__ import annotations

import pytest

from shared.topics import replication_for

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
