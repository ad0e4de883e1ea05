"""The faust app: agents over wangge.cases and the tables they keep (memory store, changelog topics).

Tables and why they are keyed as they are (a faust table's changelog partition is the partition of
the event being processed, so each table is keyed like the topic its agent reads):
- `cases` (key: case id, like wangge.cases): what the screen knows of each case; open and overdue
  counts are computed from it when asked, so a replayed event changes nothing.
- `hourly` (key: unit grid; tumbling 1 h windows on the event's occurred_at): the ids of the cases
  accepted (立案) there in that hour. Fed through the internal topic `…-accepted-by-grid`.
- `spikes` (key: community|category; tumbling windows): the ids of the cases of one category accepted
  in one community; a window holding `spike_threshold` or more is a spike. Fed through `…-accepted-by-place`.
Windows hold case ids, not counts, so a redelivered event (at-least-once) is not counted twice.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterator

import faust
from faust.types import EventT

from shared.clock import now, street_zone
from shared.contracts import Envelope, InvalidMessage
from shared.settings import Settings
from shared.topics import Topics
from services.supervision.live import figures as live

log = logging.getLogger(__name__)

WINDOW_EXPIRES = timedelta(days=2)  # today's hours and yesterday's, whatever the time of day


@dataclass
class LiveOptions:
    """How the windows are cut: the spike window and its threshold."""

    spike_window_seconds: float = 3600.0
    spike_threshold: int = 5


@dataclass
class Broadcast:
    """Each case event as it happens, to every open event stream (SSE); a slow reader loses old events, not the app."""

    subscribers: set[asyncio.Queue[dict[str, Any]]] = field(default_factory=set)

    def publish(self, event: dict[str, Any]) -> None:
        """Hand one event to every subscriber (dropping the oldest of a full queue)."""
        for queue in list(self.subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    def subscribe(self, size: int = 200) -> asyncio.Queue[dict[str, Any]]:
        """A queue receiving the events published from now on (unsubscribe() it when done)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(size)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop handing events to this queue."""
        self.subscribers.discard(queue)


def _occurred_at(event: EventT) -> float:
    """The window a fed case belongs to: when it was accepted (event time), not when the record was written."""
    moment = live.parse_time(event.value.get("occurred_at")) if isinstance(event.value, dict) else None
    return moment.timestamp() if moment else event.message.timestamp


class LiveStreams:
    """One faust app with its tables and agents; started and stopped inside the serving process's event loop."""

    def __init__(self, settings: Settings, names: live.Names, options: LiveOptions | None = None):
        self.settings = settings
        self.names = names
        self.options = options or LiveOptions()
        self.topics = Topics(settings.topic_prefix)
        self.broadcast = Broadcast()
        self.events_seen = 0
        self.events_skipped = 0
        # The app id names the consumer group and prefixes the changelog topics: prefixed like the topics.
        self.app_id = f"{settings.topic_prefix}wangge-supervision-live"
        self.app = faust.App(
            self.app_id,
            broker=f"kafka://{settings.kafka_bootstrap}",
            broker_credentials=_credentials(settings),
            store="memory://",
            web_enabled=False,
            autodiscover=False,
            topic_partitions=3,  # its own repartition topics (the cases table follows wangge.cases, below)
            topic_replication_factor=settings.kafka_replication_factor,
            consumer_auto_offset_reset="earliest",
            table_cleanup_interval=60.0,
            # Changelog and repartition sends batched for 20 ms instead of a produce request per table update:
            # under a burst those sends were a third of this process's CPU (bench.e2e --profile). Nothing waits on them.
            producer_linger=0.02,
            timezone=street_zone(),
        )
        app = self.app
        self.cases_topic = app.topic(self.topics.cases, key_serializer="raw", value_serializer="raw")
        self.by_grid = app.topic(f"{self.app_id}-accepted-by-grid", internal=True, partitions=3,
                                 key_serializer="raw", value_serializer="json")
        self.by_place = app.topic(f"{self.app_id}-accepted-by-place", internal=True, partitions=3,
                                  key_serializer="raw", value_serializer="json")
        # Co-partitioned with wangge.cases, which feeds it (faust requires the same count).
        self.cases = app.Table("cases", default=None, partitions=self.topics.spec_for(self.topics.cases).partitions)
        self.hourly = app.Table("hourly", default=list, partitions=3) \
            .tumbling(live.HOUR, expires=WINDOW_EXPIRES).relative_to(_occurred_at)
        self.spikes = app.Table("spikes", default=list, partitions=3) \
            .tumbling(self.options.spike_window_seconds, expires=WINDOW_EXPIRES).relative_to(_occurred_at)
        app.agent(self.cases_topic, name="follow-cases")(self._follow_cases)
        app.agent(self.by_grid, name="count-per-grid")(self._count_per_grid)
        app.agent(self.by_place, name="count-per-place")(self._count_per_place)

    async def start(self) -> None:
        """Join the group, recover the tables from their changelogs, and start following wangge.cases."""
        await self.app.start()

    async def stop(self) -> None:
        """Leave the group (committing what was processed) and stop."""
        await self.app.stop()

    @property
    def running(self) -> bool:
        """Whether the app is started and not crashed."""
        return self.app.started and not self.app.crashed and not self.app.should_stop

    async def _follow_cases(self, stream: Any) -> None:
        async for event in stream.events():
            try:
                envelope = Envelope.from_json(event.value)
            except InvalidMessage as exc:
                # The services set bad messages aside on wangge.cases.rejected; the screen just skips them.
                self.events_skipped += 1
                log.info("live: skipped a message on %s: %s", self.topics.cases, exc)
                continue
            if not envelope.type.startswith("case.") or not envelope.case_id:
                continue
            self.events_seen += 1
            try:
                await self.follow(envelope)
            except Exception:  # noqa: BLE001 — a figure missed is better than a screen stopped on one event
                self.events_skipped += 1
                log.exception("live: could not follow %s %s", envelope.type, envelope.id)

    async def follow(self, envelope: Envelope) -> None:
        """Fold one case event into the cases table, feed a new acceptance to the windows, and broadcast it."""
        data = envelope.data if isinstance(envelope.data, dict) else {}
        occurred_at = envelope.occurred_at.isoformat()
        before = self.cases.get(envelope.case_id)
        after = live.fold(before, envelope.type, data, occurred_at)
        self.cases[envelope.case_id] = after
        if live.newly_accepted(before, after):
            fed = {"case_id": envelope.case_id, "unit_grid": after["unit_grid"], "category": after.get("category"),
                   "occurred_at": after["accepted_at"]}
            await self.by_grid.send(key=after["unit_grid"].encode(), value=fed)
            community = self.names.community_of.get(after["unit_grid"])
            if community and after.get("category"):
                await self.by_place.send(key=f"{community}|{after['category']}".encode(), value=fed)
        self.broadcast.publish(live.screen_event(envelope.type, envelope.case_id, data, occurred_at, after, self.names))

    async def _count_per_grid(self, stream: Any) -> None:
        async for fed in stream:
            ids = self.hourly[fed["unit_grid"]].value()
            if fed["case_id"] not in ids:
                self.hourly[fed["unit_grid"]] = [*ids, fed["case_id"]]

    async def _count_per_place(self, stream: Any) -> None:
        async for fed in stream:
            key = f"{self.names.community_of.get(fed['unit_grid'])}|{fed['category']}"
            ids = self.spikes[key].value()
            if fed["case_id"] not in ids:
                self.spikes[key] = [*ids, fed["case_id"]]

    def known_cases(self) -> Iterator[dict[str, Any]]:
        """What the screen knows of every case (the cases table)."""
        return (v for v in self.cases.values() if isinstance(v, dict))

    @staticmethod
    def _windows(table: Any) -> list[tuple[str, float, list[str]]]:
        return [(key, window[0], list(ids)) for (key, window), ids in list(table.table.data.items())]

    def figures(self, at: datetime | None = None) -> dict[str, Any]:
        """The street's live figures now (see figures.figures)."""
        return live.figures(self.known_cases(), self._windows(self.hourly), self._windows(self.spikes),
                            names=self.names, at=at or now(), zone=street_zone(),
                            spike_threshold=self.options.spike_threshold)


def _credentials(settings: Settings) -> Any:
    """SASL/SCRAM for the production profile's broker (shared/kafka_security.py), none on PLAINTEXT."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    return faust.SASLCredentials(username=settings.kafka_username, password=settings.kafka_password,
                                 mechanism=settings.kafka_sasl_mechanism,
                                 ssl_context=None if settings.kafka_security_protocol == "SASL_PLAINTEXT" else
                                 ssl.create_default_context())
