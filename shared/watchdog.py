"""The watchdog of a process's loops: nothing may wait unseen, and nothing may need a hand to resume.

Every consumer and background loop of a process runs under it. Each round (every few seconds) it asks:

* a **consumer** with lag that made no progress for `stall_seconds`, while Kafka and PostgreSQL both answer: it
  is torn down (its task cancelled, the connections of its open transactions cut, so they roll back) and
  rebuilt in-process with a fresh Kafka consumer that joins its group anew;
* a **loop** (the outbox relay…) whose heartbeat is older than `stall_seconds` while both answer: restarted the
  same way;
* a **probe** of a shared client (the Kafka producer) failing for `stall_seconds` while a new connection to the
  same broker answers: the client is renewed. A probe without a repair (faust's app, which cannot be started
  again in the process that stopped it) goes straight to the restart below.

While Kafka or PostgreSQL does not answer, waiting is right: the loops retry on their own, and /readyz says
what is missing. If a rebuild does not help — the same consumer stalls again with no progress since, or a torn
down task does not end — the process reports itself unhealthy (`problem()`), so that /healthz fails and its
supervisor (`./dev up`, systemd, Kubernetes) restarts it.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from shared.consumer import EventConsumer
from shared.errors import describe
from shared.metrics import LOOP_RESTARTS
from shared.tasks import cancel_until_done

log = logging.getLogger(__name__)

Loop = Callable[[], Awaitable[None]]
# How long a torn-down task may take to end (its transaction rolled back, its Kafka consumer left the group).
TEARDOWN_SECONDS = 15.0


@dataclass
class Heartbeat:
    """When a loop last came round; a loop calls beat() every turn, waiting included."""

    at: float = field(default_factory=time.monotonic)

    def beat(self) -> None:
        self.at = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - self.at


@dataclass
class _Probe:
    name: str
    check: Callable[[], Awaitable[None]]
    repair: Callable[[str], Awaitable[None]] | None
    failing_since: float | None = None
    repaired_at: float | None = None


@dataclass
class _Watched:
    name: str
    run: Loop
    consumer: EventConsumer | None = None
    heartbeat: Heartbeat | None = None
    task: asyncio.Task[None] | None = None
    rebuilt_at: float | None = None


class Watchdog:
    """Runs a process's loops, restarts any that dies, and tears down and rebuilds any that stalls."""

    def __init__(self, service: str, *, stall_seconds: float, infrastructure_ok: Callable[[], Awaitable[bool]],
                 interval: float = 5.0):
        self.service = service
        self.stall_seconds = stall_seconds
        self._infrastructure_ok = infrastructure_ok
        self.interval = interval
        self._watched: list[_Watched] = []
        self._probes: list[_Probe] = []
        self._problem: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # ---- what it runs ------------------------------------------------------------------------------

    def consumer(self, name: str, consumer: EventConsumer) -> None:
        """Run a consumer (restarted if it dies, rebuilt if it stalls)."""
        self._start(_Watched(name, consumer.run, consumer=consumer))

    def loop(self, name: str, run: Loop, heartbeat: Heartbeat | None = None) -> None:
        """Run a background loop (restarted if it dies; with a heartbeat, restarted if it stops coming round)."""
        self._start(_Watched(name, run, heartbeat=heartbeat))

    def probe(self, name: str, check: Callable[[], Awaitable[None]],
              repair: Callable[[str], Awaitable[None]] | None) -> None:
        """Watch a shared client: `check()` failing for `stall_seconds` while the infrastructure answers a new
        connection calls `repair(why)` (a new client); failing again as long after that — or at once, without a
        repair — the process needs a restart."""
        self._probes.append(_Probe(name, check, repair))

    def start(self) -> None:
        """Start watching (after the loops are registered)."""
        self._stopping = False
        self._task = asyncio.create_task(self._watch(), name=f"{self.service}:watchdog")

    def problem(self) -> str | None:
        """None while the process can go on by itself; else why it needs a restart (its /healthz fails)."""
        return self._problem

    async def stop(self, timeout: float = 10.0) -> list[str]:
        """Cancel every loop; returns the names of those that did not end within `timeout` (then abandoned)."""
        if self._task is not None:
            # A round awaits several wait_for calls, each of which may swallow the cancellation (shared/tasks.py);
            # the flag ends the loop at its next turn as well.
            self._stopping = True
            if await cancel_until_done({self._task}, timeout):
                log.warning("the watchdog of %s did not stop in %g s; abandoned", self.service, timeout)
        tasks = [w.task for w in self._watched if w.task is not None]
        stuck: list[str] = []
        if tasks:
            pending = await cancel_until_done(tasks, timeout)
            if pending:
                for watched in self._watched:
                    if watched.task in pending and watched.consumer is not None:
                        watched.consumer.abort()  # cut its transactions' connections: they roll back
                pending = await cancel_until_done(pending, timeout)
            stuck = [w.name for w in self._watched if w.task in pending]
        self._watched.clear()
        return stuck

    # ---- how -----------------------------------------------------------------------------------

    def _start(self, watched: _Watched) -> None:
        if watched not in self._watched:
            self._watched.append(watched)
        if watched.heartbeat is not None:
            watched.heartbeat.beat()
        watched.task = asyncio.create_task(self._keep_running(watched), name=f"{self.service}:{watched.name}")

    async def _keep_running(self, watched: _Watched) -> None:
        # A loop that dies (Kafka down at start, a bug) is restarted, not left dead in silence.
        while True:
            try:
                await watched.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("%s of %s stopped; restarting in 2 s", watched.name, self.service)
                LOOP_RESTARTS.labels(self.service, watched.name, "died").inc()
                await asyncio.sleep(2)

    async def _watch(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — the watchdog itself must not die of one bad round
                log.warning("watchdog of %s: %s", self.service, describe(exc))

    async def check(self) -> None:
        """One round: rebuild what stalls while the infrastructure answers (see the module's doc)."""
        failing = await self._failing_probes()
        stalled = [(w, self._stall(w)) for w in list(self._watched)]
        stalled = [(w, why) for w, why in stalled if why]
        if not (stalled or failing) or not await self._infrastructure_ok():
            return
        for probe, why in failing:
            await self._repair(probe, why)
        for watched, why in stalled:
            if watched.rebuilt_at is not None and not self._progressed_since(watched, watched.rebuilt_at):
                self._problem = f"{watched.name} stalled again after being rebuilt: {why}"
                log.error("%s: %s; the process needs a restart (/healthz fails)", self.service, self._problem)
                continue
            await self._rebuild(watched, why)

    async def _failing_probes(self) -> list[tuple[_Probe, str]]:
        """The probes failing for longer than stall_seconds (each asked now, within 5 s)."""
        failing = []
        for probe in self._probes:
            try:
                await asyncio.wait_for(probe.check(), 5)
                probe.failing_since = probe.repaired_at = None  # answering (again): whatever was done helped
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — a failing check is what is watched for
                probe.failing_since = probe.failing_since or time.monotonic()
                idle = time.monotonic() - probe.failing_since
                if idle > self.stall_seconds:
                    failing.append((probe, f"failing for {idle:.0f} s ({describe(exc, 200)})"))
        return failing

    async def _repair(self, probe: _Probe, why: str) -> None:
        if probe.repair is None:
            if self._problem is not None:
                return  # asked already
            self._problem = f"{probe.name}: {why}"
            log.error("%s: %s; it cannot be rebuilt in-process: the process needs a restart (/healthz fails)",
                      self.service, self._problem)
            return
        if probe.repaired_at is not None:  # renewed, and not answered once since
            self._problem = f"{probe.name} still failing after being renewed: {why}"
            log.error("%s: %s; the process needs a restart (/healthz fails)", self.service, self._problem)
            return
        log.warning("%s: %s %s while the broker answers a new connection: renewing it", self.service, probe.name, why)
        LOOP_RESTARTS.labels(self.service, probe.name, "stalled").inc()
        try:
            await asyncio.wait_for(probe.repair(why), TEARDOWN_SECONDS)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 — tried again next round; then the process asks for a restart
            log.warning("%s: renewing %s failed: %s", self.service, probe.name, describe(exc))
        probe.repaired_at = time.monotonic()
        probe.failing_since = None  # the new one gets as long as the old one had

    def _stall(self, watched: _Watched) -> str | None:
        if watched.consumer is not None:
            stalls = watched.consumer.stalled(self.stall_seconds)
            if stalls:
                return "; ".join(f"{tp.topic}[{tp.partition}] lag {lag} for {idle:.0f} s" for tp, lag, idle in stalls)
            silent = watched.consumer.unanswered(self.stall_seconds)
            return f"its Kafka client answered no lag request for {silent:.0f} s" if silent is not None else None
        if watched.heartbeat is not None and watched.heartbeat.age() > self.stall_seconds:
            return f"no turn for {watched.heartbeat.age():.0f} s"
        return None

    @staticmethod
    def _progressed_since(watched: _Watched, moment: float) -> bool:
        if watched.consumer is not None:
            return watched.consumer.progressed_at > moment
        return watched.heartbeat is not None and watched.heartbeat.at > moment

    async def _rebuild(self, watched: _Watched, why: str) -> None:
        log.warning("%s: %s made no progress (%s) while Kafka and PostgreSQL answer: tearing it down and "
                    "rebuilding it", self.service, watched.name, why)
        LOOP_RESTARTS.labels(self.service, watched.name, "stalled").inc()
        task = watched.task
        if task is not None:
            pending = await cancel_until_done({task}, TEARDOWN_SECONDS / 3)
            if pending and watched.consumer is not None:
                watched.consumer.abort()  # a statement that ignores the cancellation: cut its connection
                pending = await cancel_until_done(pending, TEARDOWN_SECONDS)
            if pending:
                self._problem = f"{watched.name} did not end within {TEARDOWN_SECONDS:g} s of being torn down"
                log.error("%s: %s; the process needs a restart (/healthz fails)", self.service, self._problem)
                return
        watched.rebuilt_at = time.monotonic()
        self._start(watched)
