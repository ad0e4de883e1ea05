"""The production Kafka profile on a real secure broker (SASL/SCRAM + ACLs, deploy/local/kafka.sh with
WANGGE_KAFKA_SECURITY=scram): each principal reaches only its own topics, and supervision, running as its
own principal, takes a case event only when the service that owns its type signed it, a credential only when the
admin key signed it, and an owner's update only when it is signed by that owner's credential."""
from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.supervision.bootstrap import build as build_supervision
from shared.auth import sign_update
from shared.clock import now
from shared.contracts.cases import CaseAccepted, CaseClosed, CaseDispatched, CaseReported
from shared.contracts.common import TimeLimit
from shared.contracts.tasks import TaskAccepted
from shared.credentials import issued
from shared.kafka_security import acl_plan, bridge_principal, owner_principal, principals
from shared.settings import REPO_ROOT
from shared.signing import SIGNERS, Signer, encode_private, generate, private_key
from shared.topics import Topics
from tests.conftest import drop_schemas
from tests.support import running

# The first test waits for the session's secure broker: a JVM's start, minutes on a busy machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

KAFKA_SH = REPO_ROOT / "deploy" / "local" / "kafka.sh"
SECURE_PORT = int(os.environ.get("WANGGE_SECURE_KAFKA_PORT", "19094"))
BOOTSTRAP = f"127.0.0.1:{SECURE_PORT}"
OWNERS = ["huanwei", "chengguan"]


def _kafka_sh(*args: str, check: bool = True) -> str:
    env = {**os.environ, "WANGGE_KAFKA_SECURITY": "scram", "WANGGE_KAFKA_NODES": "1", "WANGGE_KAFKA_PORTS": "",
           "WANGGE_KAFKA_CONTROLLER_PORTS": "", "WANGGE_KAFKA_PORT": str(SECURE_PORT),
           "WANGGE_KAFKA_CONTROLLER_PORT": str(SECURE_PORT + 1)}
    done = subprocess.run([str(KAFKA_SH), *args], env=env, capture_output=True, text=True, timeout=240,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0 or not check, f"kafka.sh {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip()


def sasl(user: str, password: str) -> dict[str, Any]:
    return {"bootstrap_servers": BOOTSTRAP, "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": user, "sasl_plain_password": password}


# Whether this session runs the secure broker (the fixture below is imported by other modules, each import its own
# session fixture: the first starts it, the others find it started).
_session_broker: list[bool] = []


def _production_stack_runs() -> bool:
    """Whether ./dev up --production of this state folder runs (its mark, ./dev's PROFILE_FILE): its broker is on
    the same port and data, and is left alone."""
    state = Path(os.environ.get("WANGGE_STATE_DIR") or REPO_ROOT / ".local")
    mark = state / "run" / "profile"
    return mark.exists() and mark.read_text().strip() == "production"


@pytest.fixture(scope="session")
def secure_broker() -> Iterator[None]:
    """The secure broker for the session, stopped at its end. One found running that no production stack owns was
    left by a session that was killed: answering, it is taken over (each module makes its own users and topics);
    not answering (killed while it started), it is stopped and started afresh."""
    if _session_broker or _production_stack_runs():
        yield
        return
    if not _kafka_sh("status", check=False).endswith(", answering"):
        _kafka_sh("stop")
        _kafka_sh("start")
    _session_broker.append(True)
    try:
        yield
    finally:
        _session_broker.clear()
        _kafka_sh("stop")


@pytest.fixture(scope="module")
def secure(tmp_path_factory, secure_broker) -> dict[str, Any]:
    """The secure broker with users and ACLs for this module's own topic prefix."""
    prefix = f"s{uuid.uuid4().hex[:6]}."
    passwords = {user: uuid.uuid4().hex for user in principals(OWNERS)}
    spec: Path = tmp_path_factory.mktemp("kafka-security") / "spec.tsv"
    lines = [f"user\t{user}\t{password}" for user, password in passwords.items()]
    spec.write_text("\n".join(lines + [acl.line() for acl in acl_plan(prefix, OWNERS)]) + "\n")
    _kafka_sh("setup-security", str(spec))
    passwords["admin"] = _kafka_sh("admin-password")
    return {"prefix": prefix, "passwords": passwords}


@pytest.fixture
async def topics(secure) -> AsyncIterator[Topics]:
    """The contract's topics under the module's prefix, created by the administrator."""
    names = Topics(secure["prefix"])
    admin = AIOKafkaAdminClient(**sasl("admin", secure["passwords"]["admin"]))
    await asyncio.wait_for(admin.start(), 30)
    try:
        existing = set(await admin.list_topics())
        wanted = [s for s in names.fixed() + [names.for_owner(o) for o in OWNERS] if s.name not in existing]
        if wanted:
            await asyncio.wait_for(admin.create_topics(
                [NewTopic(s.name, s.partitions, 1, topic_configs=s.configs()) for s in wanted]), 30)
    finally:
        await admin.close()
    yield names


async def produce(user: str, password: str, topic: str, value: bytes, key: str | None = None,
                  headers: list | None = None) -> None:
    producer = AIOKafkaProducer(**sasl(user, password), request_timeout_ms=10000)
    await asyncio.wait_for(producer.start(), 30)
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, value, key=key.encode() if key else None,
                                                      headers=headers), 20)
    finally:
        await producer.stop()


async def read(user: str, password: str, topic: str, group: str, want: int = 0, timeout: float = 20) -> list:
    consumer = AIOKafkaConsumer(topic, **sasl(user, password), group_id=group, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    try:
        await asyncio.wait_for(consumer.start(), 30)
        got: list = []

        async def take() -> None:
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                got.extend(r for rs in batch.values() for r in rs)
                if len(got) >= want:
                    return
        await asyncio.wait_for(take(), timeout)
        return got
    finally:
        await consumer.stop()


async def test_each_principal_reaches_only_its_own_topics(secure, topics):
    pw = secure["passwords"]
    huanwei, p = owner_principal("huanwei"), secure["prefix"]
    await produce(huanwei, pw[huanwei], topics.task_updates, b'{"probe": 1}')  # its way back: allowed
    for forbidden in (topics.cases, topics.tasks("chengguan"), topics.reports):
        with pytest.raises((TopicAuthorizationFailedError, KafkaError)):
            await produce(huanwei, pw[huanwei], forbidden, b"{}")
    await produce("admin", pw["admin"], topics.tasks("huanwei"), b'{"task": 1}')
    assert len(await read(huanwei, pw[huanwei], topics.tasks("huanwei"), f"{p}{huanwei}-app", want=1)) >= 1
    with pytest.raises((TopicAuthorizationFailedError, KafkaError)):
        await read(huanwei, pw[huanwei], topics.tasks("chengguan"), f"{p}{huanwei}-app", want=1, timeout=10)
    # Residents' contacts: notify reads them, routing does not.
    await produce("intake", pw["intake"], topics.contacts, b'{"contact": 1}')
    assert len(await read("notify", pw["notify"], topics.contacts, f"{p}wangge-notify-probe", want=1)) >= 1
    with pytest.raises((TopicAuthorizationFailedError, KafkaError)):
        await read("routing", pw["routing"], topics.contacts, f"{p}wangge-routing-probe", want=1, timeout=10)
    # Only the services learn credentials; an owner cannot read the registry (and so cannot sign for another).
    with pytest.raises((TopicAuthorizationFailedError, KafkaError)):
        await read(huanwei, pw[huanwei], topics.credentials, f"{p}{huanwei}-x", want=1, timeout=10)


async def delete_below(user: str, password: str, tp: TopicPartition, offset: int) -> int:
    """DeleteRecords as `user`: the partition's new log start offset (raises the broker's refusal)."""
    admin = AIOKafkaAdminClient(**sasl(user, password), request_timeout_ms=10000)
    await asyncio.wait_for(admin.start(), 30)
    try:
        return (await asyncio.wait_for(admin.delete_records({tp: RecordsToDelete(offset)}), 20))[tp]
    finally:
        await admin.close()


async def test_only_the_one_reader_of_a_personal_topic_may_cut_it(secure, topics):
    """DeleteRecords (shared/trim.py): intake on wangge.reports and notify on wangge.contacts, and no one else — a
    bridge that could delete from wangge.reports would drop reports intake has not read; routing may not cut the
    contacts notify has not taken; neither reader may cut the other's topic."""
    pw = secure["passwords"]
    producer = AIOKafkaProducer(**sasl("admin", pw["admin"]), request_timeout_ms=10000)
    await asyncio.wait_for(producer.start(), 30)
    try:
        landed = {name: await asyncio.wait_for(producer.send_and_wait(name, b'{"probe": 1}', key=b"k"), 20)
                  for name in (topics.reports, topics.contacts, topics.reports, topics.contacts)}
    finally:
        await producer.stop()
    reports, contacts = (TopicPartition(name, landed[name].partition) for name in (topics.reports, topics.contacts))
    starts = {tp: await log_start(tp, pw["admin"]) for tp in (reports, contacts)}
    bridge = bridge_principal("terminals")
    for user, tp in ((bridge, reports), ("routing", contacts), ("notify", reports), ("intake", contacts)):
        with pytest.raises((TopicAuthorizationFailedError, KafkaError)):
            await delete_below(user, pw[user], tp, landed[tp.topic].offset)
        assert await log_start(tp, pw["admin"]) == starts[tp], user  # nothing cut
    # Each reader cuts its own topic.
    for user, tp in (("intake", reports), ("notify", contacts)):
        assert await delete_below(user, pw[user], tp, landed[tp.topic].offset) == landed[tp.topic].offset
        assert await log_start(tp, pw["admin"]) == landed[tp.topic].offset


async def log_start(tp: TopicPartition, admin_password: str) -> int:
    """The partition's low watermark, read as the administrator."""
    consumer = AIOKafkaConsumer(**sasl("admin", admin_password))
    await asyncio.wait_for(consumer.start(), 30)
    try:
        return (await asyncio.wait_for(consumer.beginning_offsets([tp]), 20))[tp]
    finally:
        await consumer.stop()


async def test_supervision_as_its_own_principal_takes_only_signed_updates_of_the_holder(secure, topics, base_settings):
    pw, p = secure["passwords"], secure["prefix"]
    # The production profile's keys (shared/signing.py): supervision holds its own private key and every public one.
    keys, public = generate(SIGNERS)

    def signed(name: str, payload: bytes, topic: str, key: str) -> list:
        return Signer(name, private_key(keys[name], what=name)).headers(payload, topic=topic, key=key)
    settings = base_settings.model_copy(update={
        "kafka_bootstrap": BOOTSTRAP, "kafka_security_protocol": "SASL_PLAINTEXT", "kafka_username": "supervision",
        "kafka_password": pw["supervision"], "topic_prefix": p, "schema_prefix": f"{p[:-1]}_{uuid.uuid4().hex[:4]}_",
        "profile": "production", "outbox_poll_seconds": 0.2, "supervision_signing_key": keys["supervision"],
        "signing_public_keys": public})
    try:
        async with running(build_supervision(settings, manage_runtime=False)) as service:
            tokens = {"huanwei": f"tok-hw-{uuid.uuid4().hex[:6]}", "chengguan": f"tok-cg-{uuid.uuid4().hex[:6]}"}
            owner_keys = {owner: Ed25519PrivateKey.generate() for owner in tokens}  # each owner system's own key
            for owner, token in tokens.items():
                event = issued(token, name=owner, role="owner", owner_code=owner, signing_key=owner_keys[owner])
                payload = event.envelope(source="credentials").to_json()
                await produce("admin", pw["admin"], topics.credentials, payload, key=event.token_sha256,
                              headers=signed("admin", payload, topics.credentials, event.token_sha256))
            case_id, case_no, at = f"sec-{uuid.uuid4().hex[:6]}", "20261128-0901", now()
            for event in (
                CaseReported(case_no=case_no, source="hotline", external_id=f"x-{case_id}", category="CM04",
                             description="垃圾箱损坏", observed_at=at, unit_grid="3704020010010201"),
                CaseAccepted(case_no=case_no, category="CM04", unit_grid="3704020010010201", description="垃圾箱损坏"),
                CaseDispatched(case_no=case_no, owner="huanwei", category="CM04", unit_grid="3704020010010201",
                               priority="normal", time_limit=TimeLimit(value=4, unit="work_hours"), dispatched_at=at,
                               due_at=at),
            ):
                # Each as the service that owns it would (its principal, its signature).
                owner_service = "routing" if isinstance(event, CaseDispatched) else "intake"
                payload = event.envelope(source=owner_service, case_id=case_id).to_json()
                await produce(owner_service, pw[owner_service], topics.cases, payload, key=case_id,
                              headers=signed(owner_service, payload, topics.cases, case_id))
            pool = service.runtime.pool

            async def state(expected: str) -> None:
                while await pool.fetchval("SELECT state FROM cases WHERE case_id = $1", case_id) != expected:
                    await asyncio.sleep(0.2)
            await asyncio.wait_for(state("dispatched"), 30)
            while not await pool.fetchval("SELECT count(*) = 2 FROM credentials"):
                await asyncio.sleep(0.2)

            # routing may write wangge.cases (its ACL), but not supervision's events: with its own signature, or with
            # a signature of its own key that names supervision, the forged 结案 is refused.
            closing = CaseClosed(case_no=case_no, owner="huanwei", outcome="resolved", result="伪造", by="operator:x",
                                 closed_at=now(), on_time=True).envelope(source="supervision", case_id=case_id).to_json()
            await produce("routing", pw["routing"], topics.cases, closing, key=case_id, headers=signed("routing", closing, topics.cases, case_id))
            posing = Signer("supervision", private_key(keys["routing"], what="routing")).headers(closing, topic=topics.cases, key=case_id)
            await produce("routing", pw["routing"], topics.cases, closing, key=case_id, headers=posing)
            rejected_cases = await read("admin", pw["admin"], topics.rejected_for(topics.cases), f"{p}admin-cases", want=2)
            case_reasons = [r.value.decode() for r in rejected_cases]
            assert any("signed by routing, but only supervision may publish it" in r for r in case_reasons)
            assert any("the signature is not supervision's" in r for r in case_reasons)

            sign = TaskAccepted(case_no=case_no, owner="huanwei").envelope(source="owner", case_id=case_id).to_json()
            # chengguan's system writes an update in huanwei's name: its own signature gives it away.
            forged = TaskAccepted(case_no=case_no, owner="huanwei").envelope(source="owner", case_id=case_id).to_json()
            cg = owner_principal("chengguan")
            await produce(cg, pw[cg], topics.task_updates, forged, key=case_id,
                          headers=sign_update(encode_private(owner_keys["chengguan"]), forged,
                                                     topic=topics.task_updates, key=case_id))
            await produce(cg, pw[cg], topics.task_updates, forged, key=case_id)  # unsigned: refused in production
            hw = owner_principal("huanwei")
            await produce(hw, pw[hw], topics.task_updates, sign, key=case_id,
                          headers=sign_update(encode_private(owner_keys["huanwei"]), sign,
                                                     topic=topics.task_updates, key=case_id))
            await asyncio.wait_for(state("in_progress"), 30)
            rejected = await read("admin", pw["admin"], topics.rejected_for(topics.task_updates), f"{p}admin-check", want=2)
            reasons = [r.value.decode() for r in rejected]
            assert any("signed by owner:chengguan" in r for r in reasons) and any("not signed" in r for r in reasons)
            assert await pool.fetchval("SELECT count(*) FROM case_events WHERE case_id = $1 AND type = 'case.signed'",
                                       case_id) == 1
    finally:
        await drop_schemas(settings)
