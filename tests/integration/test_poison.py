"""No poison stalls anything: every hostile message on every topic a service consumes goes to that
topic's rejected topic with a reason, and the good message after it is handled.

Each service is started in-process on its own topic prefix and schema (the `isolated` fixture) and
its consumers are read from its runtime, so a topic a service starts consuming later is covered too.
"""
from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass

import pytest

from shared.clock import now
from shared.contracts import Envelope
from shared.contracts.cases import CaseAccepted, CaseClosed, CaseReported
from shared.contracts.credentials import CredentialIssued
from shared.contracts.reports import ReportSubmitted
from shared.contracts.tasks import TaskAccepted
from shared.runtime import Service
from shared.settings import Settings
from shared.topics import Topics
from tests.support import TopicReader, eventually, publish

pytestmark = pytest.mark.integration

UNIT = "3704020010010201"
INSIDE_UNIT = {"lon": 117.575168, "lat": 34.871845}


@dataclass(frozen=True)
class Hostile:
    name: str
    value: bytes
    reason: str  # a part of the reason the rejection must give

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.value).hexdigest()


def _raw(type_: str, data: dict, case_id: str | None = None) -> bytes:
    return Envelope(id=str(uuid.uuid4()), type=type_, version=1, case_id=case_id, occurred_at=now(), source="test",
                    data=data).to_json()


# A type each consumer of the topic handles (so its wrong data is that consumer's business).
HANDLED_TYPE = {"reports": "report.submitted", "cases": "case.accepted", "task-updates": "task.accepted",
                "credentials": "credential.issued", "contacts": "contact.recorded",
                "street-config": "street.config-changed", "replies": "reply.issued"}
# Intake reads wangge.cases only to follow closings and reopenings (Open311's open/closed).
HANDLED_BY = {("intake", "cases"): "case.closed"}


def handled_type(service: str, kind: str) -> str:
    """A type this service's consumer of this kind of topic handles."""
    return HANDLED_BY.get((service, kind), HANDLED_TYPE[kind])


def hostile_messages(kind: str, service: str = "") -> list[Hostile]:
    """Every kind of poison, for a topic of this kind (reports, cases, task-updates, credentials)."""
    case_id = uuid.uuid4().hex
    messages = [
        Hostile("too big", b'{"id": "' + b"x" * (900 * 1024) + b'"}', "too big"),
        Hostile("control bytes", bytes(range(1, 32)) * (288 * 1024 // 31), "not JSON"),
        Hostile("not UTF-8", b'{"id": "\xff\xfe\xfa", "type": "case.accepted"}', "not UTF-8"),
        Hostile("not JSON", b"{not json at all", "not JSON"),
        Hostile("JSON array", b'[{"id": "1"}, 2, 3]', "not a JSON object"),
        Hostile("envelope missing fields", b'{"id": "x", "type": "case.rejected"}', "envelope does not fit"),
        Hostile("unknown type", _raw("zz.never-heard-of", {"case_no": "1"}, case_id), "unknown event type"),
        Hostile("valid type, wrong data", _raw(handled_type(service, kind), {"case_no": 42, "owner": []}, case_id),
                "does not fit"),
    ]
    if kind in ("task-updates", "reports"):
        bad_owner = TaskAccepted(case_no="20261127-0001", owner="../../x y").envelope(source="test", case_id=case_id)
        messages.append(Hostile("owner that cannot be a topic", bad_owner.to_json(),
                                "owner" if kind == "task-updates" else "report.submitted"))
    return messages


def kind_of(topics: Topics, topic: str) -> str:
    """reports, cases, task-updates, credentials, contacts: the contract topic without its prefix."""
    kind = topic[len(topics.prefix):].removeprefix("wangge.")
    assert kind in HANDLED_TYPE, f"a consumed topic this test has no good message for: {topic}"
    return kind


# ---- the good message of each topic, and how to see it was handled ----------------------------------

GOOD_CONFIG_VERSION = 5


def good_message(kind: str, service: str = "") -> tuple[Envelope, str]:
    """(a valid message for a topic of this kind, its key)."""
    case_id = str(uuid.uuid4())
    if handled_type(service, kind) == "case.closed":
        closed = CaseClosed(case_no=f"20261127-{case_id[:4]}", owner="huanwei", outcome="resolved", result="已处理",
                            by="operator:test", closed_at=now(), on_time=True)
        return closed.envelope(source="supervision", case_id=case_id), case_id
    if kind == "reports":
        report = ReportSubmitted(source="terminal", external_id=f"poison-{case_id[:8]}", category="CM04",
                                 description="垃圾箱破损，垃圾外溢", location=INSIDE_UNIT, observed_at=now())
        return report.envelope(source="terminal"), report.external_id
    if kind == "cases":
        reported = CaseReported(case_no=f"20261127-{case_id[:4]}", source="terminal", external_id=f"e-{case_id[:8]}",
                                category="CM04", description="垃圾箱破损，垃圾外溢", observed_at=now(), unit_grid=UNIT)
        accepted = CaseAccepted(case_no=reported.case_no, category="CM04", unit_grid=UNIT,
                                description="垃圾箱破损，垃圾外溢", location=INSIDE_UNIT)
        # routing and notify handle case.accepted; supervision folds any case event.
        return accepted.envelope(source="intake", case_id=case_id), case_id
    if kind == "contacts":
        from shared.contracts.contacts import ContactRecorded

        contact = ContactRecorded(case_no=f"20261127-{case_id[:4]}", name="李先生", phone="13900001001")
        return contact.envelope(source="intake", case_id=case_id), case_id
    if kind == "replies":
        from shared.contracts.replies import ReplyIssued

        reply = ReplyIssued(case_no=f"20261127-{case_id[:4]}", kind="acknowledgement", channel="sms", to="139****1001",
                            text="您反映的问题已受理", state="sent", delivery_id=f"d-{case_id[:8]}")
        return reply.envelope(source="notify", case_id=case_id), case_id
    if kind == "task-updates":
        return TaskAccepted(case_no="20261127-9999", owner="huanwei").envelope(source="owner", case_id=case_id), case_id
    if kind == "street-config":
        from shared.contracts.street import STREET_CONFIG_KEY, StreetConfigChanged
        from shared.street_config import StreetConfig

        changed = StreetConfigChanged(street_version=GOOD_CONFIG_VERSION, config=StreetConfig().to_dict(),
                                      changed_by="test")
        return changed.envelope(source="supervision"), STREET_CONFIG_KEY
    digest = hashlib.sha256(case_id.encode()).hexdigest()
    issued = CredentialIssued(token_sha256=digest, name="poison test", role="operator")
    return issued.envelope(source="credentials"), digest


async def handled(service: Service, kind: str, good: Envelope) -> bool:
    pool = service.runtime.pool
    if kind == "credentials":
        return await pool.fetchval("SELECT EXISTS (SELECT 1 FROM credentials WHERE token_sha256 = $1)",
                                   good.data["token_sha256"])
    if kind == "street-config":  # kept as the version in force (no event id is claimed: the version orders them)
        return await pool.fetchval("SELECT version = $1 FROM street_config_learnt", GOOD_CONFIG_VERSION)
    if kind == "reports":  # the report became a case
        return await pool.fetchval("SELECT EXISTS (SELECT 1 FROM reports WHERE external_id = $1)",
                                   good.data["external_id"])
    # Every business handler claims the event id in the transaction of its effect.
    return await pool.fetchval("SELECT EXISTS (SELECT 1 FROM processed_events WHERE event_id = $1)", good.id)


# ---- the services ------------------------------------------------------------------------------------

def _build(name: str, settings: Settings) -> Service:
    if name == "intake":
        from services.intake.bootstrap import build
    elif name == "routing":
        from services.routing.bootstrap import build
    elif name == "supervision":
        from services.supervision.bootstrap import build
    else:
        from services.notify.bootstrap import build
    return build(settings, manage_runtime=False)


@pytest.mark.parametrize("name", ["intake", "routing", "supervision", "notify"])
async def test_every_poison_on_every_consumed_topic_is_rejected_with_its_reason_and_the_good_one_is_handled(
        name: str, isolated: Settings):
    service = _build(name, isolated)
    runtime = service.runtime
    await asyncio.wait_for(runtime.start(), 60)
    try:
        await runtime.wait_until_consuming(60)
        topics = runtime.topics
        consumed = sorted({t for consumer in runtime.consumers for t in consumer.topics})
        assert topics.credentials in consumed
        bootstrap = isolated.kafka_bootstrap
        for topic in consumed:
            kind = kind_of(topics, topic)
            poison = hostile_messages(kind, name)
            good, good_key = good_message(kind, name)
            async with TopicReader(bootstrap, topics.rejected_for(topic)) as rejected:
                for message in poison:
                    await publish(bootstrap, topic, message.value, key=good_key)
                await publish(bootstrap, topic, good, key=good_key)
                for message in poison:
                    got = await rejected.wait_for(
                        lambda m, h=message: m.get("data", {}).get("original_sha256") == h.sha256
                        and m["data"]["topic"] == topic, timeout=30)
                    data = got["data"]
                    assert got["type"] == "message.rejected", message.name
                    assert message.reason in data["reason"], (name, topic, message.name, data["reason"])
                    assert data["original_size"] == len(message.value) and data["rejected_by"] == name
                    assert len(orjson_size(got)) < 200 * 1024, message.name  # fits on Kafka, whatever it wraps
                    if message.name in ("too big", "control bytes"):
                        assert data["truncated"] is True
                await eventually(lambda: handled(service, kind, good), 30)
    finally:
        await asyncio.wait_for(runtime.stop(), 30)


def orjson_size(message: dict) -> bytes:
    import orjson

    return orjson.dumps({k: v for k, v in message.items() if not k.startswith("_")})


# ---- the plumbing under hostile conditions -----------------------------------------------------------

NO_MIGRATIONS = __import__("pathlib").Path(__file__).parent / "no_migrations"


def _rejected_event(case_id: str, reason: str) -> Envelope:
    from shared.contracts.cases import CaseRejected

    return CaseRejected(case_no="20261127-0001", reason=reason).envelope(source="test", case_id=case_id)


async def test_a_rejection_kafka_refuses_in_full_goes_out_minimal_and_the_consumer_goes_on(isolated):
    """The rejected topic takes 20 KB at most: the 64 KB cut of 288 KB of control bytes is refused, the minimal
    rejection (reason, place, size, SHA-256) is sent instead, and the good message after it is handled."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from shared.runtime import ServiceRuntime

    runtime = ServiceRuntime("plumbing", isolated, NO_MIGRATIONS)
    target = runtime.topics.rejected_for(runtime.topics.cases)
    admin = AIOKafkaAdminClient(bootstrap_servers=isolated.kafka_bootstrap)
    await asyncio.wait_for(admin.start(), 20)
    try:
        await asyncio.wait_for(admin.delete_topics([target]), 20)
        await asyncio.sleep(1)
        await asyncio.wait_for(admin.create_topics([NewTopic(target, 1, 1, topic_configs={"max.message.bytes": "20000"})]), 20)
    finally:
        await admin.close()
    applied: list[str] = []

    async def handle(envelope: Envelope, uow) -> None:
        if await uow.claim("plumbing:test", envelope.id):
            uow.after_commit(lambda: applied.append(envelope.id))

    runtime.consume([runtime.topics.cases], handle)
    await asyncio.wait_for(runtime.start(), 60)
    try:
        await runtime.wait_until_consuming()
        poison = bytes(range(1, 32)) * (288 * 1024 // 31)
        good = _rejected_event("case-m", "good")
        async with TopicReader(isolated.kafka_bootstrap, target) as rejected:
            await publish(isolated.kafka_bootstrap, runtime.topics.cases, poison, key="case-m")
            await publish(isolated.kafka_bootstrap, runtime.topics.cases, good, key="case-m")
            got = await rejected.wait_for(lambda m: m["data"]["original_sha256"] == hashlib.sha256(poison).hexdigest())
            data = got["data"]
            assert data["original"] is None and data["original_format"] == "none"
            assert data["original_size"] == len(poison) and "not JSON" in data["reason"]
            assert data["topic"] == runtime.topics.cases and data["offset"] == 0
            # The next rejection still goes out: the producer was renewed after the broker's refusal.
            await publish(isolated.kafka_bootstrap, runtime.topics.cases, b"[1]", key="case-m")
            small = await rejected.wait_for(lambda m: m["data"]["original"] == [1])
            assert "not a JSON object" in small["data"]["reason"]
        await eventually(lambda: _true(good.id in applied), 20)
    finally:
        await asyncio.wait_for(runtime.stop(), 30)


async def _true(value: bool) -> bool:
    return value


async def test_outbox_rows_kafka_cannot_take_are_set_aside_and_the_others_go_on_in_order(make_settings):
    """Between good rows: an invalid topic name, a row larger than the producer sends, and a row the broker
    refuses (larger than the topic takes): the good rows arrive in order, the bad ones are in outbox_failed."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from shared.metrics import OUTBOX_SET_ASIDE
    from shared.runtime import ServiceRuntime
    from shared.topics import ensure_topics
    from tests.conftest import delete_topics, drop_schemas

    # The producer would send 3 MB; the small topic takes 100 KB: the broker itself refuses that row.
    settings = make_settings(kafka_max_request_bytes=3 * 1024 * 1024)
    topics = Topics(settings.topic_prefix)
    small_topic = topics.tasks("smallowner")
    await asyncio.wait_for(ensure_topics(settings.kafka_bootstrap, topics.fixed()), 30)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await asyncio.wait_for(admin.start(), 20)
    try:
        await asyncio.wait_for(admin.create_topics(
            [NewTopic(small_topic, 1, 1, topic_configs={"max.message.bytes": "100000"})]), 20)
    finally:
        await admin.close()
    runtime = ServiceRuntime("plumbing", settings, NO_MIGRATIONS)
    before = {kind: OUTBOX_SET_ASIDE.labels("plumbing", kind)._value.get() for kind in ("too-big", "invalid-topic")}
    await asyncio.wait_for(runtime.start(), 60)
    try:
        good = [_rejected_event("case-o", f"g{n}") for n in range(6)]
        async with TopicReader(settings.kafka_bootstrap, topics.cases, small_topic) as reader:
            async with runtime.uow() as uow:
                uow.emit(topics.cases, good[0])
                uow.emit(topics.tasks("../../x y"), _rejected_event("case-o", "bad topic"))
                uow.emit(topics.cases, good[1])
                uow.emit(topics.cases, _rejected_event("case-o", "x" * (4 * 1024 * 1024)))  # over max_request_size
                uow.emit(topics.cases, good[2])
                uow.emit(small_topic, _rejected_event("case-o", "y" * 200_000))  # the broker refuses it
                uow.emit(small_topic, good[3])  # same partition, after the refused one
                uow.emit(topics.cases, good[4])
                await uow.commit()
            async with runtime.uow() as uow:
                uow.emit(topics.cases, good[5])
                await uow.commit()
            await reader.wait_for(lambda m: m.get("data", {}).get("reason") == "g5", 30)
            await reader.wait_for(lambda m: m.get("data", {}).get("reason") == "g3", 30)
            on_cases = [m["data"]["reason"] for _t, _k, m in reader.seen
                        if m["_topic"] == topics.cases and m.get("case_id") == "case-o"]
            assert on_cases == ["g0", "g1", "g2", "g4", "g5"]
        failed = await runtime.pool.fetch("SELECT topic, length(payload) AS size, reason FROM outbox_failed ORDER BY seq")
        assert [r["topic"] for r in failed] == [topics.tasks("../../x y"), topics.cases, small_topic]
        assert "InvalidTopic" in failed[0]["reason"] and "MessageSizeTooLarge" in failed[1]["reason"]
        assert "MessageSizeTooLarge" in failed[2]["reason"] and failed[2]["size"] > 200_000
        assert await runtime.pool.fetchval("SELECT count(*) FROM outbox") == 0
        after = {kind: OUTBOX_SET_ASIDE.labels("plumbing", kind)._value.get() for kind in ("too-big", "invalid-topic")}
        assert after["too-big"] - before["too-big"] == 2 and after["invalid-topic"] - before["invalid-topic"] == 1
    finally:
        await asyncio.wait_for(runtime.stop(), 30)
        await drop_schemas(settings)
        await delete_topics(settings)


async def test_a_clock_that_cannot_fire_is_faulted_and_the_others_fire_once(make_settings, tmp_path):
    """Due clocks of a bad owner code and of a row whose processing raises, among good due clocks: the good
    ones fire once each, the bad ones are marked faulted with the reason and skipped by later polls."""
    from datetime import timedelta

    from services.supervision import metrics as supervision_metrics
    from services.supervision.bootstrap import build
    from shared.contracts.cases import CaseDispatched
    from shared.contracts.common import TimeLimit
    from shared.topics import ensure_topics
    from tests.conftest import delete_topics, drop_schemas

    # Only the handling clock's deadlines: the sign stage (2 work hours) must not come due at some hours of the day.
    (tmp_path / "test-config.toml").write_text('[stages]\nsign = { value = 1000, unit = "work_days" }\n')
    settings = make_settings(deadline_poll_seconds=0.1, street_config_dir=tmp_path)
    topics = Topics(settings.topic_prefix)
    await asyncio.wait_for(ensure_topics(settings.kafka_bootstrap, topics.fixed() + [topics.for_owner("huanwei")]), 30)
    service = build(settings, manage_runtime=False)
    faulted_before = supervision_metrics.DEADLINES_FAULTED.labels("supervision", "handling")._value.get()
    await asyncio.wait_for(service.runtime.start(), 60)
    try:
        await service.runtime.wait_until_consuming(60)
        pool = service.runtime.pool
        at = now().replace(microsecond=0) - timedelta(hours=3)
        bad = {"case-bad-topic": "../../x y", "case-bad-row": "a" * 60}  # the second: too long for task.urged
        for case_id, owner in bad.items():
            await pool.execute(
                """INSERT INTO clocks (case_id, kind, case_no, owner, category, limit_value, limit_unit, started_at,
                                       warn_at, due_at, state, opened_by)
                   VALUES ($1, 'handling', $2, $3, 'CM04', 2, 'hours', $4, $5, $6, 'running', 'test')""",
                case_id, f"no-{case_id}", owner, at - timedelta(minutes=1), at, at + timedelta(minutes=30))
        good = ["case-good-1", "case-good-2"]
        async with TopicReader(settings.kafka_bootstrap, topics.cases, topics.tasks("huanwei")) as reader:
            for n, case_id in enumerate(good):
                dispatched = CaseDispatched(
                    case_no=f"20261128-02{n:02d}", owner="huanwei", category="CM04", unit_grid="3704020010010101",
                    priority="normal", time_limit=TimeLimit(value=2, unit="hours"), dispatched_at=at,
                    due_at=at + timedelta(hours=2)).envelope(source="routing", case_id=case_id)
                await publish(settings.kafka_bootstrap, topics.cases, dispatched, key=case_id)
            for case_id in good:
                for kind in ("case.warned", "case.overdue", "case.escalated"):
                    await reader.wait_for(lambda m, c=case_id, k=kind: m.get("type") == k and m.get("case_id") == c, 30)
            fired = await reader.all_within(2.0, lambda m: m.get("source") == "supervision")
        per = {}
        for m in fired:
            per[(m["case_id"], m["type"], m["data"].get("level"))] = per.get((m["case_id"], m["type"], m["data"].get("level")), 0) + 1
        assert all(n == 1 for n in per.values()), per
        assert {c for c, *_ in per} == set(good)
        assert len(per) == 6 * len(good)  # warned, overdue, escalated, urged ×2, task.escalated
        rows = {r["case_id"]: r for r in await pool.fetch("SELECT case_id, fault, faulted_at, warned_at FROM clocks")}
        assert "cannot be an owner code" in rows["case-bad-topic"]["fault"]
        assert "firing failed" in rows["case-bad-row"]["fault"]
        assert all(rows[c]["faulted_at"] and rows[c]["warned_at"] is None for c in bad)
        assert all(rows[c]["fault"] is None and rows[c]["warned_at"] for c in good)
        await asyncio.sleep(0.5)  # later polls skip them: still faulted once
        assert supervision_metrics.DEADLINES_FAULTED.labels("supervision", "handling")._value.get() - faulted_before == 2
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)
        await drop_schemas(settings)
        await delete_topics(settings)


async def test_postgresql_going_away_under_a_handler_never_sets_a_valid_message_aside(make_settings):
    """The handler's database connection is terminated (pg_terminate_backend) on more attempts than a failing
    handler gets: the consumer waits it out, applies the message once, and rejects nothing."""
    from shared.metrics import HANDLER_RETRIES
    from shared.runtime import ServiceRuntime
    from shared.topics import ensure_topics
    from tests.conftest import delete_topics, drop_schemas

    settings = make_settings(retry_backoff_seconds=0.05, retry_backoff_cap_seconds=0.3)
    topics = Topics(settings.topic_prefix)
    await asyncio.wait_for(ensure_topics(settings.kafka_bootstrap, topics.fixed()), 30)
    runtime = ServiceRuntime("plumbing", settings, NO_MIGRATIONS)
    cuts = {"left": 5}
    applied: list[str] = []

    async def handle(envelope: Envelope, uow) -> None:
        if not await uow.claim("plumbing:test", envelope.id):
            return
        if cuts["left"] > 0:
            cuts["left"] -= 1
            await uow.conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")  # the database goes away
        uow.after_commit(lambda: applied.append(envelope.id))

    runtime.consume([topics.cases], handle)
    retries_before = HANDLER_RETRIES.labels("plumbing", "batch")._value.get()
    await asyncio.wait_for(runtime.start(), 60)
    try:
        await runtime.wait_until_consuming()
        good = _rejected_event("case-pg", "valid")
        async with TopicReader(settings.kafka_bootstrap, topics.rejected_for(topics.cases)) as rejected:
            await publish(settings.kafka_bootstrap, topics.cases, good, key="case-pg")
            await eventually(lambda: _true(bool(applied)), 30)
            assert await rejected.all_within(2.0, lambda m: True) == []
        assert applied == [good.id] and cuts["left"] == 0
        assert HANDLER_RETRIES.labels("plumbing", "batch")._value.get() - retries_before >= 5
        assert await runtime.pool.fetchval("SELECT count(*) FROM processed_events WHERE event_id = $1", good.id) == 1
    finally:
        await asyncio.wait_for(runtime.stop(), 30)
        await drop_schemas(settings)
        await delete_topics(settings)


async def test_a_stalled_partition_shows_lag_from_the_broker_and_makes_readyz_answer_503(make_settings):
    import httpx

    from shared.http import create_app
    from shared.metrics import CONSUMER_LAG, CONSUMER_STALLED_SECONDS
    from shared.runtime import ServiceRuntime
    from shared.topics import ensure_topics
    from tests.conftest import delete_topics, drop_schemas

    # /readyz says "stalled" after 1.5 s; the watchdog would rebuild only after 120 s (test_watchdog proves that part),
    # so the stuck handler is still the one the test releases.
    settings = make_settings(consumer_stall_seconds=1.5, watchdog_stall_seconds=120, consumer_lag_interval_seconds=0.2)
    topics = Topics(settings.topic_prefix)
    await asyncio.wait_for(ensure_topics(settings.kafka_bootstrap, topics.fixed()), 30)
    runtime = ServiceRuntime("plumbing", settings, NO_MIGRATIONS)
    release = asyncio.Event()

    async def handle(envelope: Envelope, uow) -> None:
        if envelope.data.get("reason") == "hang":
            await release.wait()  # a handler stuck on purpose (a lock, a remote call without timeout…)
        await uow.claim("plumbing:test", envelope.id)

    runtime.consume([topics.cases], handle)
    await asyncio.wait_for(runtime.start(), 60)
    app = create_app(runtime, title="plumbing", description="test", manage_runtime=False)
    try:
        await runtime.wait_until_consuming()
        for reason in ("hang", "after-1", "after-2"):
            await publish(settings.kafka_bootstrap, topics.cases, _rejected_event("case-stall", reason), key="case-stall")

        async def stalled() -> str | None:
            # All three behind the stuck one (publishing each takes a while on a busy machine: the stall may show
            # before the other two are on the broker).
            state = runtime.stalled_consumers()
            return state if state.startswith("stalled") and "lag 3 for" in state else None

        state = await eventually(stalled, 20)
        assert f"stalled {topics.cases}[" in state and "lag 3 for" in state
        partition = state.split("[", 1)[1].split("]", 1)[0]
        labels = ("plumbing", runtime.group_id(), topics.cases, partition)
        assert CONSUMER_LAG.labels(*labels)._value.get() == 3  # measured against the broker's end offset
        assert CONSUMER_STALLED_SECONDS.labels(*labels)._value.get() > 1.5
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://plumbing") as http:
            response = await asyncio.wait_for(http.get("/readyz"), 10)
            assert response.status_code == 503
            assert response.json()["checks"]["consumers"].startswith(f"stalled {topics.cases}[{partition}] lag 3 for")
            release.set()

            async def caught_up() -> bool:
                return runtime.stalled_consumers() == "ok" and CONSUMER_LAG.labels(*labels)._value.get() == 0

            await eventually(caught_up, 20)
            response = await asyncio.wait_for(http.get("/readyz"), 10)
            assert response.status_code == 200 and response.json()["checks"]["consumers"] == "ok", response.text
    finally:
        release.set()
        await asyncio.wait_for(runtime.stop(), 30)
        await drop_schemas(settings)
        await delete_topics(settings)
