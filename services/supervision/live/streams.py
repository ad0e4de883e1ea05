"""The faust app: an agent over wangge.cases and the tables it keeps (memory store, changelog topics).

Every table is keyed by case id, like wangge.cases, which feeds it, so no event takes a second hop through a
topic of the app's own (each such hop cost a write, a read and a changelog write per case). The cases table's
changelog partition is that of the event being processed; the window tables' rows go to their key's (see below).
- `cases`: what the screen knows of each case; open and overdue counts are computed from it when asked, so a
  replayed event changes nothing. A finished case is forgotten some weeks later (forgetting.py), so a restart reads
  the street's recent cases, not its whole history.
- `hourly` (tumbling 1 h windows on the time of acceptance): the cases accepted (立案) in each hour, with their
  unit grid, community and category; the figures group them by grid when asked.
- `spikes`: the same cases in windows of `spike_window_seconds`, grouped by community and category; one with
  `spike_threshold` or more cases in one window is a spike. Windows an hour wide (the default) are the `hourly`
  table itself; another width, a table of its own.
A window holds one row per case, whatever the redeliveries (at-least-once), and costs the same to write for the
thousandth case of the hour as for the first.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from mode.utils.times import want_seconds
from faust.types import EventT

from shared.clock import now, street_zone
from shared.contracts import Envelope, InvalidMessage
from shared.settings import Settings
from shared.signing import verifier_for
from shared.topics import HOUR_MS, Topics, TopicSpec, ensure_topics, read_replication
from services.supervision.live import APP_NAME, figures as live
from services.supervision.live.delivery import DeliveredBeforeCommit
from services.supervision.live.forgetting import Forgetting
from services.supervision.live.resume import ResumedAtCommitted
from services.supervision.live.open_index import OpenIndex
from services.supervision.live.window_index import WindowIndex

log = logging.getLogger(__name__)

WINDOW_EXPIRES = timedelta(days=2)  # today's hours and yesterday's, whatever the time of day


@dataclass
class LiveOptions:
    """How the windows are cut: the spike window and its threshold."""

    spike_window_seconds: float = 3600.0
    spike_threshold: int = 5
    # Where the other live instances reach this one (http://host:port), advertised to them in faust's group
    # assignment (its canonical_url): they ask it for its partitions' share of the figures. None: one instance.
    advertised_url: str | None = None


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


# When the case being fed into the windows was accepted (epoch seconds): the windows are cut on event time, the
# moment of 立案, not on when the record was written (a relay delayed by an outage still counts in the right hour).
_accepted_at: contextvars.ContextVar[float | None] = contextvars.ContextVar("accepted_at", default=None)


def _window_moment(event: EventT) -> float:
    """The moment a windowed table's row belongs to: the fed case's acceptance, else the record's own time."""
    moment = _accepted_at.get()
    return moment if moment is not None else event.message.timestamp


class LiveStreams:
    """One faust app with its tables and agents; started and stopped inside the serving process's event loop."""

    def __init__(self, settings: Settings, names: live.Names, options: LiveOptions | None = None):
        self.settings = settings
        self.names = names
        self.options = options or LiveOptions()
        self.topics = Topics(settings.topic_prefix)
        self.broadcast = Broadcast()
        self.events_read = 0  # every record of wangge.cases the agent took, whatever it was: its progress
        self._in_hand_since: float | None = None  # when the agent took the event it is handling now
        self.events_seen = 0
        self.events_skipped = 0
        # A case event counts only when its owner signed it (shared/signing.py), as for the services' consumers.
        self._verifier = verifier_for(settings)
        # The app id names the consumer group and prefixes the changelog topics: prefixed like the topics.
        self.app_id = f"{settings.topic_prefix}{APP_NAME}"
        self.app = faust.App(
            self.app_id,
            broker=f"kafka://{settings.kafka_bootstrap}",
            broker_credentials=_credentials(settings),
            store="memory://",
            # faust makes its data folder even for in-memory tables; by default in the working directory, where
            # every test's app left one behind. Nothing in it needs to outlive the process.
            datadir=f"{tempfile.gettempdir()}/{self.app_id}-data",
            web_enabled=False,
            autodiscover=False,
            topic_partitions=3,  # faust's own topics (its assignor's leader topic); the tables follow wangge.cases
            # topic_replication_factor: read from the cluster in start(), like every topic wangge creates.
            consumer_auto_offset_reset="earliest",
            # A killed live process's member holds the group — and a restarted process's start — until its session
            # expires: faust's default 60 s made a restart after a crash take a minute. Its heartbeats run in their
            # own thread, so a busy event loop does not end a 15 s session.
            broker_session_timeout=15.0,
            table_cleanup_interval=60.0,
            # No standby copies: the memory store drops a standby partition's rows when a recovery completes while
            # faust's standby offset stays where it read to, so a standby later made active resumes from that offset
            # with rows missing (three live instances, one killed: a quarter of the street's cases gone from the
            # figures). A partition made active is read again from its changelog's start instead.
            table_standby_replicas=0,
            # Stopping (or a rebalance) does not wait for the events in hand: an agent stuck on one would hold the
            # stop for ever — the very case the watchdog asks a restart for. Unacknowledged events are read again
            # by the next member, and following an event twice changes no figure (every table is keyed by case).
            stream_wait_empty=False,
            # Changelog sends batched for 20 ms instead of a produce request per table update: under a burst those
            # sends were a third of this process's CPU (bench.e2e --profile). Nothing waits on them.
            producer_linger=0.02,
            timezone=street_zone(),
            # Advertised to the group in faust's assignment (its assignor's client metadata), with the partitions
            # this instance holds: an instance asked for the street's figures finds its peers there (share.py).
            **({"canonical_url": self.options.advertised_url} if self.options.advertised_url else {}),
        )
        app = self.app
        self.cases_topic = app.topic(self.topics.cases, key_serializer="raw", value_serializer="raw")
        # Co-partitioned with wangge.cases, which feeds them (faust requires the same count).
        partitions = self.topics.spec_for(self.topics.cases).partitions
        self.cases = app.Table("cases", default=None, partitions=partitions)
        # Named anew when they came to be keyed by case id: the grid- and place-keyed tables had 3 partitions.
        # A row goes to the changelog partition of the event being handled, which is the case's own partition of
        # wangge.cases: the instance holding that partition wrote it and recovers it, so whichever instance takes a
        # partition over after a rebalance or a kill has its rows (a row sent to its key's partition instead went to
        # a partition another instance held, which never reads its active changelog, and was lost from the figures).
        # The changelogs exist before faust starts (start()), so faust's check of their partition count holds.
        self.hourly = app.Table("hourly-cases", default=None, partitions=partitions) \
            .tumbling(live.HOUR, expires=WINDOW_EXPIRES).relative_to(_window_moment)
        # The spike windows hold the same rows as the hourly ones (a case's place at its acceptance): cut an hour
        # wide too, as they are unless configured otherwise, they are the same table, written (and its changelog
        # record produced, stored, read again on recovery) once a case.
        if self.options.spike_window_seconds == live.HOUR:
            self.spikes = self.hourly
        else:
            self.spikes = app.Table("spike-cases", default=None, partitions=partitions) \
                .tumbling(self.options.spike_window_seconds, expires=WINDOW_EXPIRES).relative_to(_window_moment)
        keep = WINDOW_EXPIRES.total_seconds() + max(live.HOUR, self.options.spike_window_seconds)
        self.hourly_index = WindowIndex(self.hourly, lambda row: row.get("unit_grid"), keep)
        self.spike_index = WindowIndex(self.spikes, lambda row: row.get("community") and row.get("category")
                                       and f"{row['community']}|{row['category']}", keep)
        app.agent(self.cases_topic, name="follow-cases")(self._follow_cases)
        # The open cases of the table, kept as events come: a scrape or the screen asks about these, and the table
        # keeps every case it ever saw. Built from the table when first asked, and again after each recovery (a
        # rebalance gives the table its rows anew).
        self._open_index: OpenIndex | None = None
        # The finished cases in the order the table may forget them, built like the open ones.
        self._forgetting: Forgetting | None = None
        self.cases_forgotten = 0
        self.cases.on_recover(self._recovered)
        for table in self._window_tables():
            table.on_recover(self._windows_recovered)
        self.delivery: DeliveredBeforeCommit | None = None
        self.resumed: ResumedAtCommitted | None = None

    def _tables(self) -> list[Any]:
        """The app's tables, each once: the cases, then the windows."""
        return [self.cases, *self._window_tables()]

    def _window_tables(self) -> list[Any]:
        return [self.hourly.table] if self.spikes is self.hourly else [self.hourly.table, self.spikes.table]

    async def _windows_recovered(self) -> None:
        self._forget_derived()

    def _forget_derived(self) -> None:
        """The tables changed wholesale: what is kept from them is built again when next asked."""
        self._open_index = None
        self._forgetting = None
        self.hourly_index.forget()
        self.spike_index.forget()

    async def _recovered(self) -> None:
        self._forget_derived()
        # What each recovery gave (rows per partition of wangge.cases): how the loss above was found, and how an
        # operator sees that the instances' shares add up.
        held = sorted(tp.partition for tp in self.app.assignor.assigned_actives()
                      if tp.topic == self.cases.changelog_topic.get_topic_name())
        rows: dict[int, int] = {}
        for key in list(self.cases.data.keys()):
            partition = self._partition(self.cases, key)
            rows[partition] = rows.get(partition, 0) + 1
        log.info("live: tables recovered: partitions %s, cases per partition %s", held, dict(sorted(rows.items())))

    async def start(self) -> None:
        """Create the changelogs, join the group, recover the tables from them, and start following wangge.cases."""
        # Created here, and usable (every partition led) before faust looks: faust creates a missing changelog and
        # at once checks its partition count, which the broker's metadata may not show yet. Created here, they get
        # the replication every topic of wangge gets (read from the cluster, with min.insync.replicas); faust's own
        # factor is set the same, for anything it would still create itself.
        factor, _ = await read_replication(self.settings.kafka_bootstrap)
        self.app.conf.topic_replication_factor = factor
        await ensure_topics(self.settings.kafka_bootstrap, self.changelog_specs() + [self.leader_topic_spec()])
        # Before anything is written: no offset committed ahead of the table rows its events wrote (delivery.py).
        self.delivery = DeliveredBeforeCommit(self.app.producer.buffer)
        self._recover_whole_on_rebalance()
        # Each partition of wangge.cases followed from its committed offset after a rebalance, never from its end.
        self.resumed = ResumedAtCommitted(self.app, {self.topics.cases})
        await self.app.start()

    def _recover_whole_on_rebalance(self) -> None:
        """At every rebalance, empty the tables and have faust read every partition this instance is given from its
        changelog's start, instead of keeping rows and resuming where an earlier generation's recovery stopped.

        Why: faust's recovery keeps, for a changelog partition an instance holds before and after a rebalance, the
        offset its last recovery read to, and reads only from there, trusting the rows before it to be in memory; they
        were not all there (the memory store drops the rows it recovered of partitions not listed to it when a
        recovery completes, and a rebalance overtaking another changes those lists under it). Seen in
        tests/e2e/test_instances.py after the kill, logging each instance's rows per partition at every recovery: a
        survivor kept partition 0 through a late rebalance and came out of it with 11 of its ~100 cases (the figures
        436 of 600), another had 85 of the 104 of a partition it kept. Reading whole partitions makes a table exactly
        its changelog (every committed event's rows are there: delivery.py) plus the events after the committed
        offsets, which are followed again; a street's changelogs are read in seconds."""
        recovery: Any = self.app.tables.recovery
        for table in self._tables():
            store = table.data

            async def emptied(assigned: Any, revoked: Any, newly_assigned: Any, generation_id: int = 0,
                              store: Any = store) -> None:
                # Called by faust's table manager for each table before its recovery takes this generation's
                # partitions and offsets: with no offset kept, recovery starts each partition at its earliest.
                store.data.clear()
                store._key_partition.clear()
                recovery.active_offsets.clear()
                self._forget_derived()

            store.on_rebalance = emptied

    def leader_topic_spec(self) -> TopicSpec:
        """faust's assignor's leader topic (one partition, which faust would otherwise create on its own)."""
        return TopicSpec(f"{self.app.conf.id}-__assignor-__leader", partitions=1)

    def changelog_specs(self) -> list[TopicSpec]:
        """The tables' changelog topics as faust would create them (partitions, cleanup policy, retention)."""
        specs = []
        for table in self._tables():
            topic = table.changelog_topic
            policy = ",".join(flag for flag, on in (("compact", topic.compacting), ("delete", topic.deleting)) if on)
            retention_ms = int(want_seconds(topic.retention) * 1000) if topic.retention else -1
            # A segment an hour: the broker compacts (and cuts by retention) only segments no longer written to, and
            # its 7-day segment left every row ever written for a restart to read again (forgetting.py).
            specs.append(TopicSpec(topic.get_topic_name(), partitions=table.partitions, retention_ms=retention_ms,
                                   cleanup_policy=policy or None, segment_ms=HOUR_MS))
        return specs

    async def stop(self) -> None:
        """Leave the group (committing what was processed) and stop."""
        await self.app.stop()

    @property
    def running(self) -> bool:
        """Whether the app is started and not crashed."""
        return self.app.started and not self.app.crashed and not self.app.should_stop

    async def _follow_cases(self, stream: Any) -> None:
        async for event in stream.events():
            self.events_read += 1
            self._in_hand_since = time.monotonic()
            try:
                await self._take(event)
            finally:
                self._in_hand_since = None

    def in_hand_for(self) -> float:
        """How long the agent has been handling the event it holds (0 between events)."""
        return 0.0 if self._in_hand_since is None else time.monotonic() - self._in_hand_since

    async def _take(self, event: Any) -> None:
        try:
            envelope = Envelope.from_json(event.value)
        except InvalidMessage as exc:
            # The services set bad messages aside on wangge.cases.rejected; the screen just skips them.
            self.events_skipped += 1
            log.info("live: skipped a message on %s: %s", self.topics.cases, exc)
            return
        if not envelope.type.startswith("case.") or not envelope.case_id:
            return
        message = event.message
        refusal = self._verifier.check(SimpleNamespace(headers=message.headers, value=message.value,
                                                       topic=message.topic, key=message.key), envelope)
        if refusal is not None:
            self.events_skipped += 1
            log.warning("live: skipped %s %s: %s", envelope.type, envelope.id, refusal)
            return
        self.events_seen += 1
        try:
            await self.follow(envelope)
        except Exception:  # noqa: BLE001 — a figure missed is better than a screen stopped on one event
            self.events_skipped += 1
            log.exception("live: could not follow %s %s", envelope.type, envelope.id)
        self._forget_finished(message.partition)

    async def follow(self, envelope: Envelope) -> None:
        """Fold one case event into the cases table, feed a new acceptance to the windows, and broadcast it."""
        data = envelope.data if isinstance(envelope.data, dict) else {}
        occurred_at = envelope.occurred_at.isoformat()
        before = self.cases.get(envelope.case_id)
        after = live.fold(before, envelope.type, data, occurred_at)
        if after != before:
            # Written only when the screen's row changes: each write is a changelog record (produced, stored, read
            # again on recovery); a replayed event, a warning or an urge that moves nothing the screen keeps, none.
            self.cases[envelope.case_id] = after
            if self._forgetting is not None:
                self._forgetting.filed(envelope.case_id, after)
        if self._open_index is not None:
            self._open_index.set(envelope.case_id, after)
        if live.counts_in_windows(before, after, envelope.type):
            accepted = live.parse_time(after["accepted_at"])
            token = _accepted_at.set(accepted.timestamp() if accepted else None)
            try:
                place = {"unit_grid": after["unit_grid"], "category": after.get("category"),
                         "community": self.names.community_of.get(after["unit_grid"])}
                self.hourly[envelope.case_id] = place
                if self.spikes is not self.hourly:
                    self.spikes[envelope.case_id] = place
            finally:
                _accepted_at.reset(token)
            moment = accepted.timestamp() if accepted else None
            self.hourly_index.written(envelope.case_id, place, moment)
            self.spike_index.written(envelope.case_id, place, moment)
        self.broadcast.publish(live.screen_event(envelope.type, envelope.case_id, data, occurred_at, after, self.names))

    def _forget_finished(self, partition: int) -> None:
        """Delete the rows of this partition's cases finished long enough ago (forgetting.py). Called while an event
        of the partition is in hand: faust sends each deletion to that event's changelog partition, the case's own."""
        if self._forgetting is None:
            self._forgetting = Forgetting.of(self.cases.items(), lambda case_id: self._partition(self.cases, case_id))
        for case_id in self._forgetting.due(partition, now(), self.cases.get):
            del self.cases[case_id]
            self.cases_forgotten += 1

    def _open_cases(self) -> OpenIndex:
        """What the screen knows of every open case (from the cases table), counted."""
        if self._open_index is None:
            self._open_index = OpenIndex.of(self.cases.items())
        return self._open_index

    def _hourly_windows(self, keep: Any = None) -> list[tuple[str, float, list[str]]]:
        return self.hourly_index.windows(keep)

    def _spike_windows(self, keep: Any = None) -> list[tuple[str, float, list[str]]]:
        return self.spike_index.windows(keep)

    def figures(self, at: datetime | None = None) -> dict[str, Any]:
        """The street's live figures now (see figures.figures), from this instance's tables alone."""
        at = at or now()
        since = live.first_window_shown(at, street_zone())
        return self._figures(self._open_cases().counts(at), self.hourly_index.counted(since),
                             self.spike_index.counted(since), at)

    def figures_from(self, cases: Any, hourly: Any, spikes: Any, at: datetime | None = None) -> dict[str, Any]:
        """The street's figures from given cases and windows (the instances' shares merged)."""
        at = at or now()
        return self._figures(live.open_counts(cases, at), live.counted(hourly), live.counted(spikes), at)

    def _figures(self, open_cases: live.OpenCounts, hourly: Any, spikes: Any, at: datetime) -> dict[str, Any]:
        return live.figures(open_cases, hourly, spikes, names=self.names, at=at, zone=street_zone(),
                            spike_threshold=self.options.spike_threshold)

    # ---- several instances: each holds some partitions of the tables ------------------------------------------

    def table_partitions(self) -> dict[str, int]:
        """Each table's name and partition count (every partition must be answered for in a street's figures)."""
        return {table.name: table.partitions for table in self._tables()}

    def peers(self) -> dict[str, dict[str, list[int]]]:
        """The group's members as faust's assignment advertises them: URL → {changelog topic: active partitions}."""
        return {str(url): {topic: sorted(parts) for topic, parts in tps.items()}
                for url, tps in self.app.assignor.tables_metadata().items()}

    @property
    def url(self) -> str:
        return str(self.app.conf.canonical_url)

    def alone(self) -> bool:
        """Whether this instance is the group's only member (then its tables hold every partition)."""
        others = [url for url in self.peers() if url != self.url]
        return not others

    def settled(self) -> bool:
        """Not in a rebalance, and the tables recovered: the partitions it holds are whole."""
        recovery: Any = self.app.tables.recovery
        return self.running and not self.app.rebalancing and recovery.completed.is_set() and not recovery.in_recovery

    def share(self) -> dict[str, Any]:
        """This instance's share of the figures: the open cases and the window rows of the table partitions it
        holds as active, and which partitions those are (none while it rebalances or recovers: then its rows may be
        partial, and the one merging says which partitions nobody answered for)."""
        if not self.settled():
            return {"url": self.url, "partitions": {name: [] for name in self.table_partitions()},
                    "cases": {}, "hourly": [], "spikes": []}
        actives = self.app.assignor.assigned_actives()
        held = {table.name: sorted(tp.partition for tp in actives if tp.topic == table.changelog_topic.get_topic_name())
                for table in self._tables()}
        mine = {name: set(parts) for name, parts in held.items()}
        cases = {case_id: row for case_id, row in self._open_cases().rows()
                 if self._partition(self.cases, case_id) in mine[self.cases.name]}
        keep_hourly = lambda key: self._partition(self.hourly.table, key) in mine[self.hourly.table.name]  # noqa: E731
        keep_spikes = lambda key: self._partition(self.spikes.table, key) in mine[self.spikes.table.name]  # noqa: E731
        return {"url": self.url, "partitions": held, "cases": cases,
                "hourly": self._hourly_windows(keep_hourly), "spikes": self._spike_windows(keep_spikes)}

    def _partition(self, table: Any, key: Any) -> int:
        """The changelog partition of a table's key: its case's partition of wangge.cases, the Kafka partitioner's
        (murmur2) on the case id as keyed there — `cases` is keyed by the case id, the windowed tables by (case id,
        window), and every row goes to the partition of the event that wrote it."""
        return _partition_of_case(key if table is self.cases else key[0], table.partitions)


@lru_cache(maxsize=1 << 18)
def _partition_of_case(case_id: str, partitions: int) -> int:
    """The partition of wangge.cases a case id is keyed to (murmur2, in Python: cached for the cases at hand, bounded
    so that a process following a street for years does not keep every case it ever saw)."""
    return (murmur2(case_id.encode()) & 0x7FFFFFFF) % partitions

def _credentials(settings: Settings) -> Any:
    """SASL/SCRAM for the production profile's broker (shared/kafka_security.py), none on PLAINTEXT."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    return faust.SASLCredentials(username=settings.kafka_username, password=settings.kafka_password,
                                 mechanism=settings.kafka_sasl_mechanism,
                                 ssl_context=None if settings.kafka_security_protocol == "SASL_PLAINTEXT" else
                                 ssl.create_default_context())
