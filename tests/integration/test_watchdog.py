"""Nothing waits unseen: a consumer stuck on a wait that never ends, while Kafka and PostgreSQL answer, is torn down
and rebuilt in-process by the watchdog and goes on; stuck again after that, the process says it needs a restart
(/healthz 503); and stopping is bounded whatever hangs."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from shared.contracts import Envelope
from shared.contracts.cases import CaseRejected
from shared.http import create_app
from shared.metrics import LOOP_RESTARTS
from shared.runtime import ServiceRuntime
from tests.support import publish

pytestmark = pytest.mark.integration

NO_MIGRATIONS = Path(__file__).parent / "no_migrations"


def _event(case_id: str) -> Envelope:
    return CaseRejected(case_no="20261127-0001", reason="测试").envelope(source="test", case_id=case_id)


def _restarts(service: str, why: str) -> float:
    return sum(sample.value for metric in LOOP_RESTARTS.collect() for sample in metric.samples
               if sample.name.endswith("_total") and sample.labels["service"] == service
               and sample.labels["why"] == why)


def _quick(isolated):
    # A stall noticed after 3 s instead of a minute; lag measured every half second.
    return isolated.model_copy(update={"consumer_stall_seconds": 3.0, "consumer_lag_interval_seconds": 0.5})


async def _applied(runtime: ServiceRuntime, applied: list[str], case_id: str, within: float) -> Envelope:
    """Publish one case event and wait until the consumer has applied it (and nothing else)."""
    event = _event(case_id)
    await publish(runtime.settings.kafka_bootstrap, runtime.topics.cases, event, key=case_id)
    await _until(lambda: applied == [event.id], within)
    return event


async def _until(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.1)


def _recording(name: str, settings, *, stuck_first: bool = False):
    """A runtime whose consumer of wangge.cases records each attempt and what it applied (claimed once); with
    `stuck_first`, the first attempt waits for ever, inside its transaction, as a wedged call would."""
    runtime = ServiceRuntime(name, settings, NO_MIGRATIONS)
    never = asyncio.Event()
    calls: list[str] = []
    applied: list[str] = []

    async def handle(envelope: Envelope, uow) -> None:
        calls.append(envelope.id)
        if stuck_first and len(calls) == 1:
            await never.wait()
        if await uow.claim(f"{name}:test", envelope.id):
            uow.after_commit(lambda: applied.append(envelope.id))

    runtime.consume([runtime.topics.cases], handle)
    return runtime, calls, applied


async def test_a_consumer_stuck_on_a_wait_is_rebuilt_and_goes_on_by_itself(isolated):
    settings = _quick(isolated)
    runtime, calls, applied = _recording("watched", settings, stuck_first=True)
    before = _restarts("watched", "stalled")
    await runtime.start()
    try:
        await runtime.wait_until_consuming()
        event = await _applied(runtime, applied, "case-stuck", 45)
        assert calls == [event.id, event.id]  # the stuck attempt, then the rebuilt consumer's
        assert _restarts("watched", "stalled") == before + 1
        assert runtime.problem() is None  # it went on by itself: no restart needed
        # The stuck attempt's transaction was rolled back: nothing of it holds a connection or a claim.
        assert await runtime.pool.fetchval("SELECT count(*) FROM processed_events WHERE event_id = $1", event.id) == 1
    finally:
        started = time.monotonic()
        await runtime.stop()
        assert time.monotonic() - started < 20


def _wedged(name: str, settings) -> ServiceRuntime:
    """A runtime whose consumer of wangge.cases waits for ever on every message."""
    runtime = ServiceRuntime(name, settings, NO_MIGRATIONS)
    never = asyncio.Event()

    async def handle(envelope: Envelope, uow) -> None:
        await never.wait()

    runtime.consume([runtime.topics.cases], handle)
    return runtime


async def test_a_consumer_stuck_again_after_its_rebuild_makes_healthz_ask_for_a_restart(isolated):
    settings = _quick(isolated)
    runtime = _wedged("wedged", settings)
    app = create_app(runtime, title="wedged", description="a service whose consumer never finishes")
    await runtime.start()
    try:
        await runtime.wait_until_consuming()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://wedged") as http:
            assert (await http.get("/healthz")).status_code == 200
            await publish(settings.kafka_bootstrap, runtime.topics.cases, _event("case-wedged"), key="case-wedged")
            await _until(lambda: runtime.problem() is not None, 60)
            answer = await http.get("/healthz")
        assert answer.status_code == 503
        assert "stalled again after being rebuilt" in answer.json()["status"]
        assert f"{runtime.topics.cases}[" in answer.json()["status"]
    finally:
        started = time.monotonic()
        await runtime.stop()  # the handler ignores nothing here, but the bound holds whatever it does
        assert time.monotonic() - started < 20


async def test_nothing_is_rebuilt_while_postgres_is_away_only_waited_for(isolated):
    """A stall during an outage is the outage: the watchdog leaves it to the retries (and /readyz says so)."""
    settings = _quick(isolated)
    runtime = _wedged("outage", settings)
    before = _restarts("outage", "stalled")
    await runtime.start()
    try:
        await runtime.wait_until_consuming()
        answers = False

        async def infrastructure_away() -> bool:
            return answers

        runtime.watchdog._infrastructure_ok = infrastructure_away  # the outage, as the watchdog sees it
        await publish(settings.kafka_bootstrap, runtime.topics.cases, _event("case-outage"), key="case-outage")
        await _until(lambda: bool(runtime.stalled_consumers() != "ok"), 30)
        await asyncio.sleep(2)
        assert _restarts("outage", "stalled") == before and runtime.problem() is None
        answers = True  # back: now the stall is the consumer's own, and it is rebuilt
        await _until(lambda: _restarts("outage", "stalled") == before + 1, 30)
    finally:
        await runtime.stop()


async def test_a_client_failing_while_the_broker_answers_others_is_renewed_and_then_a_restart_is_asked(base_settings):
    """The producer's own connection stuck while a new one to the same broker answers: it is renewed; failing
    again with no answer since, the process asks for its restart."""
    from shared.runtime import infrastructure_answers
    from shared.watchdog import Watchdog

    state = {"broken": True, "renewals": 0, "renewal_helps": True}

    async def check() -> None:
        if state["broken"]:
            raise ConnectionError("no answer on this client's connection")

    async def renew(why: str) -> None:
        state["renewals"] += 1
        state["broken"] = not state["renewal_helps"]

    dog = Watchdog("probed", stall_seconds=1.0, interval=0.2,
                   infrastructure_ok=lambda: infrastructure_answers(base_settings.database_url,
                                                                    base_settings.kafka_bootstrap))
    dog.probe("kafka-producer", check, renew)
    dog.start()
    try:
        await _until(lambda: state["renewals"] == 1, 20)
        await asyncio.sleep(1.5)
        assert state["renewals"] == 1 and dog.problem() is None  # renewed once, answering since
        state.update(broken=True, renewal_helps=False)
        await _until(lambda: dog.problem() is not None, 30)
        assert state["renewals"] == 2 and "kafka-producer still failing after being renewed" in dog.problem()
    finally:
        await dog.stop()


async def test_a_consumer_whose_kafka_client_is_slow_to_leave_is_still_rebuilt_in_time(isolated):
    """The member torn down leaves its group slower than the watchdog's teardown allows (its broker call hangs, as
    after the broker and PostgreSQL came back together): the teardown is not refused for it: the consumer is
    rebuilt, the message is handled, and no restart is asked."""
    from shared.consumer import STOP_SECONDS

    settings = _quick(isolated)
    runtime, calls, applied = _recording("slowleave", settings, stuck_first=True)
    await runtime.start()
    try:
        await runtime.wait_until_consuming()
        member = runtime.consumers[0]._consumer
        leave = member.stop

        async def slow_leave() -> None:
            await asyncio.sleep(3 * STOP_SECONDS)  # beyond any teardown: what a wedged client does
            await leave()

        member.stop = slow_leave
        await _applied(runtime, applied, "case-slowleave", 90)
        assert runtime.problem() is None
    finally:
        await runtime.stop()


async def test_a_commit_refused_once_is_made_again_though_no_message_follows(isolated):
    """Kafka refuses the commit of what was handled (a rebalance race) and the member keeps its partitions: the
    group's committed offsets still reach the end, with no further message to carry them."""
    from aiokafka.errors import CommitFailedError

    from shared.lag import topic_lag

    settings = _quick(isolated)
    runtime, calls, applied = _recording("recommit", settings)
    await runtime.start()
    try:
        await runtime.wait_until_consuming()
        member = runtime.consumers[0]._consumer
        commit, refused = member.commit, []

        async def refuse_once(offsets=None):
            if not refused:
                refused.append(offsets)
                raise CommitFailedError("the group rebalanced (injected)")
            return await commit(offsets)

        member.commit = refuse_once
        for n in range(3):
            await publish(settings.kafka_bootstrap, runtime.topics.cases, _event(f"case-recommit-{n}"),
                          key=f"case-recommit-{n}")
        await _until(lambda: len(applied) == 3, 30)
        group = runtime.group_id()
        deadline = time.monotonic() + 20
        while True:
            lag = await topic_lag(settings.kafka_bootstrap, group, runtime.topics.cases)
            if lag == 0:
                break
            assert time.monotonic() < deadline, f"the group's commits stayed {lag} behind"
            await asyncio.sleep(0.5)
        assert refused, "the injected refusal was never met"
    finally:
        await runtime.stop()


class _LateDoor:
    """A TCP door in front of a real server that is closed (connections refused) until opened: a broker or a
    database that is away when a service starts, and comes back."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    def reserve(self) -> int:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        return self.port

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.mark.parametrize("away", ["postgres", "kafka"])
async def test_a_service_started_while_its_infrastructure_is_away_comes_up_when_it_is_back(isolated, away):
    """Restarted in the middle of an outage, a service does not exit into a state no one restarts: it waits,
    says so, and starts by itself once PostgreSQL or the broker answers."""
    from urllib.parse import urlsplit, urlunsplit

    if away == "kafka":
        host, port = isolated.kafka_bootstrap.split(",")[0].rsplit(":", 1)
        door = _LateDoor(host, int(port))
        settings = isolated.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{door.reserve()}"})
    else:
        parts = urlsplit(isolated.database_url)
        door = _LateDoor(parts.hostname, parts.port or 5432)
        netloc = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
        settings = isolated.model_copy(update={"database_url": urlunsplit(
            parts._replace(netloc=f"{netloc}:{door.reserve()}"))})
    runtime, calls, applied = _recording("late", settings)
    starting = asyncio.create_task(runtime.start())
    try:
        await asyncio.sleep(4)
        assert not starting.done(), "the start gave up (or passed) while the infrastructure was away"
        await door.open()
        await asyncio.wait_for(starting, 60)
        await runtime.wait_until_consuming()
        await _applied(runtime, applied, "case-late", 30)
    finally:
        if starting.done() and starting.exception() is None:
            await runtime.stop()
        else:
            starting.cancel()
        await door.close()


async def test_a_consumer_whose_kafka_client_stops_answering_is_rebuilt_though_it_showed_no_lag(isolated):
    """Its client wedged (after the broker came back): fetches, commits and lag requests hang, so its last figures
    say lag 0 while messages wait. The silence itself is the stall: it is rebuilt and the message handled."""
    settings = _quick(isolated)
    runtime, calls, applied = _recording("silent", settings)
    await runtime.start()
    try:
        await runtime.wait_until_consuming()
        await asyncio.sleep(1.5)  # its lag measured once: 0
        member = runtime.consumers[0]._consumer
        never = asyncio.Event()

        async def hang(*args, **kwargs):
            await never.wait()

        member.getmany = member.end_offsets = hang
        await _applied(runtime, applied, "case-silent", 60)
        assert runtime.problem() is None
    finally:
        await runtime.stop()
