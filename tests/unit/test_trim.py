"""Where a topic carrying residents' phones may be cut (shared/trim.py): below the lowest offset every reading group
has committed, and nowhere a group has not committed yet."""
from __future__ import annotations

from aiokafka.structs import TopicPartition

from shared.trim import trim_points

T = "wangge.reports"


def tp(partition: int, topic: str = T) -> TopicPartition:
    return TopicPartition(topic, partition)


def test_each_partition_is_cut_below_what_its_one_reader_committed():
    assert trim_points(T, [{tp(0): 5, tp(1): 12}]) == {tp(0): 5, tp(1): 12}


def test_with_several_readers_the_slowest_decides():
    assert trim_points(T, [{tp(0): 5, tp(1): 12}, {tp(0): 9, tp(1): 3}]) == {tp(0): 5, tp(1): 3}


def test_a_partition_a_reader_has_not_committed_on_is_not_cut():
    # No commit (absent, or -1 as the broker answers for a named partition): that reader starts from the beginning.
    assert trim_points(T, [{tp(0): 5, tp(1): 12}, {tp(0): 7}]) == {tp(0): 5}
    assert trim_points(T, [{tp(0): -1, tp(1): 4}]) == {tp(1): 4}
    assert trim_points(T, [{tp(0): 0}]) == {}
    assert trim_points(T, []) == {}


def test_other_topics_a_group_commits_on_are_left_alone():
    assert trim_points(T, [{tp(0): 5, tp(0, "wangge.cases"): 40}]) == {tp(0): 5}
