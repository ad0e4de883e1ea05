"""The production profile as the README starts it (`./dev up --production`), attacked from outside (issue 18, item 7:
"an attack suite … against the real services, broker and database in the production profile").

One module fixture starts the whole stack on its own ports and state folder — the secure broker (SASL/SCRAM + ACLs,
a user per service, bridge and owner), PostgreSQL with a role per service, every service and the live figures with
WANGGE_PROFILE=production, nginx in front — and fails if it cannot. Each test then tries one attack through the real
front door (httpx) or the real broker (aiokafka with SASL) and proves it fails."""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.contracts.tasks import TaskAccepted
from shared.credentials import issued
from shared.settings import REPO_ROOT
from shared.signing import Signer
from shared.topics import Topics
from tests.e2e.test_access_matrix import report
from tests.security.test_revocation import _stream_until_closed

# The module's stack starts within its first test's time: ./dev up --production takes minutes on a busy machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

# Port prefix 252xx: beside ./dev's own stack of the checkout (the README's defaults, or a worktree's moved ports).
BASE = int(os.environ.get("WANGGE_PROD_TEST_PORT_BASE", "25200"))
PORTS = {"WANGGE_FRONT_PORT": BASE, "WANGGE_INTAKE_PORT": BASE + 1, "WANGGE_ROUTING_PORT": BASE + 2,
         "WANGGE_SUPERVISION_PORT": BASE + 3, "WANGGE_NOTIFY_PORT": BASE + 4, "WANGGE_LIVE_PORT": BASE + 5,
         "WANGGE_SMS_SINK_PORT": BASE + 9, "WANGGE_MAIL_SINK_PORT": BASE + 25, "WANGGE_PG_PORT": BASE + 32,
         "WANGGE_PROMETHEUS_PORT": BASE + 90, "WANGGE_KAFKA_PORT": BASE + 92, "WANGGE_KAFKA_CONTROLLER_PORT": BASE + 93,
         "WANGGE_SECURE_KAFKA_PORT": BASE + 94}
BOOTSTRAP = f"127.0.0.1:{BASE + 94}"
FRONT = f"http://127.0.0.1:{BASE}"
TOPICS = Topics("")  # ./dev up --production uses the contract's names
STRANGER = "127.0.0.2"  # a client that is neither the front door nor the SMS gateway (all of 127/8 is this machine)


class Stack:
    """What `./dev up --production` made: its environment (for its CLIs) and the secrets it wrote."""

    def __init__(self, env: dict[str, str], state: Path, output: str) -> None:
        self.env, self.state, self.output = env, state, output
        self.prod = state / "production"

    def kafka_user(self, principal: str) -> dict[str, Any]:
        """aiokafka's options as `principal` (its env file: WANGGE_KAFKA_USERNAME / _PASSWORD)."""
        values = dict(line.split("=", 1) for line in (self.prod / "kafka" / f"{principal}.env").read_text().split())
        return sasl(values["WANGGE_KAFKA_USERNAME"], values["WANGGE_KAFKA_PASSWORD"])

    def admin(self) -> dict[str, Any]:
        return sasl("admin", self.dev_kafka("admin-password"))

    def dev_kafka(self, *args: str) -> str:
        env = {**self.env, "WANGGE_KAFKA_SECURITY": "scram", "WANGGE_KAFKA_PORT": str(BASE + 94),
               "WANGGE_KAFKA_CONTROLLER_PORT": str(BASE + 95)}
        done = subprocess.run([str(REPO_ROOT / "deploy/local/kafka.sh"), *args], env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def owner_dsn(self) -> str:
        return f"postgresql://wangge@127.0.0.1:{BASE + 32}/wangge"

    def credentials(self, *args: str) -> str:
        """The administrators' CLI, as the README runs it against this stack (the admin key, the broker's admin)."""
        keys = dict(line.split("=", 1) for line in (self.state / "signing-keys.env").read_text().split())
        env = {**self.env, **keys, "WANGGE_PROFILE": "production", "WANGGE_KAFKA_BOOTSTRAP": BOOTSTRAP,
               "WANGGE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "WANGGE_KAFKA_USERNAME": "admin",
               "WANGGE_KAFKA_PASSWORD": self.dev_kafka("admin-password")}
        done = subprocess.run([sys.executable, "-m", "shared.credentials", *args], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()[0] if done.stdout else ""


def sasl(user: str, password: str) -> dict[str, Any]:
    return {"bootstrap_servers": BOOTSTRAP, "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": user, "sasl_plain_password": password}


def _dev(env: dict[str, str], *args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO_ROOT / "dev"), *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def stack() -> Any:
    """`./dev up --production` on this module's own ports and state folder; `./dev down` after. The folder is the
    same every session: a stack a killed session left running on these ports is found there, stopped and wiped
    (`./dev reset`) before this one starts from nothing."""
    outer_state = Path(os.environ.get("WANGGE_STATE_DIR") or REPO_ROOT / ".local")
    state = outer_state / "production-stack-test"
    # Nothing of the caller's wangge settings leaks in (its database, its keys): only what ./dev makes.
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANGGE_")}
    env.update({k: str(v) for k, v in PORTS.items()})
    env.update({"WANGGE_STATE_DIR": str(state),
                "WANGGE_KAFKA_LIBS": os.environ.get("WANGGE_KAFKA_LIBS", str(outer_state / "kafka" / "libs"))})
    if os.environ.get("WANGGE_STREET_DIR"):
        env["WANGGE_STREET_DIR"] = os.environ["WANGGE_STREET_DIR"]
    if state.exists():
        reset = _dev(env, "reset", "--yes", timeout=300)
        assert reset.returncode == 0, f"./dev reset of the last session's stack failed:\n{reset.stdout}\n{reset.stderr}"
        shutil.rmtree(state)
    state.mkdir(parents=True)
    try:
        up = _dev(env, "up", "--production", timeout=900)
        assert up.returncode == 0, f"./dev up --production failed:\n{up.stdout[-4000:]}\n{up.stderr[-4000:]}"
        yield Stack(env, state, up.stdout)
    finally:
        _dev(env, "down", timeout=300)


async def produce(options: dict[str, Any], topic: str, value: bytes, key: str | None = None,
                  headers: list | None = None) -> None:
    producer = AIOKafkaProducer(**options, request_timeout_ms=10000)
    await asyncio.wait_for(producer.start(), 30)
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, value, key=key.encode() if key else None,
                                                      headers=headers), 20)
    finally:
        await asyncio.wait_for(producer.stop(), 20)


async def read_until(options: dict[str, Any], topic: str, found, timeout: float = 40) -> list:
    """Records of `topic` (from the start) until one satisfies `found`; fails after `timeout`."""
    consumer = AIOKafkaConsumer(topic, **options, group_id=f"probe-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await asyncio.wait_for(consumer.start(), 30)
    got: list = []
    try:
        async def take() -> None:
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                got.extend(r for rs in batch.values() for r in rs)
                if any(found(r) for r in got):
                    return
        await asyncio.wait_for(take(), timeout)
        return got
    finally:
        await asyncio.wait_for(consumer.stop(), 20)


def front(source: str = "127.0.0.1", token: str | None = None) -> httpx.AsyncClient:
    """A client of the front door, connecting from `source` (any 127/8 address is this machine)."""
    return httpx.AsyncClient(base_url=FRONT, timeout=15, transport=httpx.AsyncHTTPTransport(local_address=source),
                             headers={"Authorization": f"Bearer {token}"} if token else None)


async def until_status(token: str, status: int, timeout: float = 30) -> None:
    async def poll() -> None:
        async with front(token=token) as http:
            while (await http.get("/api/v1/cases")).status_code != status:
                await asyncio.sleep(0.3)
    await asyncio.wait_for(poll(), timeout)


def test_the_stack_says_where_its_secrets_are_and_made_them_private(stack: Stack):
    for secret in ("operator.token", "admin.password"):
        path = stack.prod / secret
        assert str(path) in stack.output
        assert path.stat().st_mode & 0o077 == 0
        assert path.read_text().strip() not in stack.output  # the path is printed, never the secret
    assert "wangge-demo" not in stack.output and "demo-" not in stack.output


def test_dev_env_after_up_production_points_at_the_secure_broker_without_a_secret(stack: Stack):
    env = {k: v for k, v in stack.env.items() if k != "WANGGE_PROFILE"}  # as a new shell after ./dev up --production
    printed = _dev(env, "env", timeout=120)
    assert printed.returncode == 0, printed.stderr
    assert f"export WANGGE_KAFKA_BOOTSTRAP={BOOTSTRAP}\n" in printed.stdout
    assert f"{stack.prod}/kafka/<principal>.env" in printed.stdout
    passwords = [line.split("=", 1)[1] for f in (stack.prod / "kafka").glob("*.env")
                 for line in f.read_text().split() if line.startswith("WANGGE_KAFKA_PASSWORD=")]
    assert passwords and not [p for p in passwords if p in printed.stdout]
    assert "_SIGNING_KEY=" not in printed.stdout


async def test_a_plaintext_connection_to_the_broker_is_refused(stack: Stack):
    plain = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, request_timeout_ms=5000, metadata_max_age_ms=5000)
    with pytest.raises((KafkaError, asyncio.TimeoutError, OSError)):
        try:
            await asyncio.wait_for(plain.start(), 20)
            await asyncio.wait_for(plain.send_and_wait(TOPICS.cases, b"{}"), 15)
        finally:
            await asyncio.wait_for(plain.stop(), 20)
    # A SCRAM user with a guessed password is refused as well.
    wrong = AIOKafkaProducer(**sasl("intake", "guessed-password"), request_timeout_ms=5000)
    with pytest.raises((KafkaError, asyncio.TimeoutError, OSError)):
        try:
            await asyncio.wait_for(wrong.start(), 20)
        finally:
            await asyncio.wait_for(wrong.stop(), 20)


@pytest.mark.parametrize("topic", [TOPICS.cases, TOPICS.credentials])
async def test_a_bridge_cannot_publish_on_the_services_topics(stack: Stack, topic: str):
    bridge = stack.kafka_user("bridge-terminals")
    await produce(bridge, TOPICS.reports, b'{"probe": 1}', key="x")  # signed in: its own topic it may write
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(bridge, topic, b'{"type": "credential.issued"}', key="x")


async def test_a_credential_not_signed_by_the_admin_key_grants_nothing(stack: Stack):
    # supervision's SCRAM user may write wangge.credentials (people's sessions): an attacker holding its Kafka
    # password, but not the admin key, publishes an admin credential — unsigned, and signed by a key of its own.
    forged_token = f"forged-{uuid.uuid4().hex}"
    event = issued(forged_token, name="攻击者", role="admin")
    payload = event.envelope(source="credentials").to_json()
    supervision = stack.kafka_user("supervision")
    await produce(supervision, TOPICS.credentials, payload, key=event.token_sha256)
    own_key = Signer("admin", Ed25519PrivateKey.generate())
    await produce(supervision, TOPICS.credentials, payload, key=event.token_sha256,
                  headers=own_key.headers(payload, topic=TOPICS.credentials, key=event.token_sha256))
    # The services set it aside, and a credential issued the README's way afterwards works while the forged one never does.
    rejected = await read_until(stack.admin(), Topics("").rejected_for(TOPICS.credentials),
                                lambda r: event.token_sha256.encode() in (r.value or b""))
    assert rejected
    genuine = stack.credentials("issue", "--role", "operator", "--name", "值班员乙")
    await until_status(genuine, 200)
    async with front(token=forged_token) as http:
        for path in ("/api/v1/cases", "/api/v1/stats/summary"):
            assert (await http.get(path)).status_code == 401


async def test_an_unsigned_task_accepted_on_the_owners_topic_changes_nothing(stack: Stack):
    operator = (stack.prod / "operator.token").read_text().strip()
    async with front(token=operator) as http:
        made = await http.post("/api/v1/reports", json=report(f"prod-{uuid.uuid4().hex[:8]}"))
        assert made.status_code == 201, made.text
        case_no = made.json()["case_no"]

        async def dispatched() -> dict:
            while (case := (await http.get(f"/api/v1/cases/{case_no}")).json()).get("state") != "dispatched":
                await asyncio.sleep(0.3)
            return case
        case = await asyncio.wait_for(dispatched(), 60)
    owner, case_id = case["owner"], case["case_id"]
    # The owner's own Kafka user may write wangge.task-updates; without its credential's signature the update is
    # set aside, and the case stays dispatched.
    accepted = TaskAccepted(case_no=case_no, owner=owner).envelope(source="owner", case_id=case_id)
    payload = accepted.to_json()
    await produce(stack.kafka_user(f"owner-{owner}"), TOPICS.task_updates, payload, key=case_id)
    await read_until(stack.admin(), Topics("").rejected_for(TOPICS.task_updates),
                     lambda r: str(accepted.id).encode() in (r.value or b""))
    async with front(token=operator) as http:
        after = (await http.get(f"/api/v1/cases/{case_no}")).json()
    assert after["state"] == "dispatched"


async def test_a_demo_account_cannot_sign_in(stack: Stack):
    # Even with the demo people written into the database (a copy of a development one), production refuses them.
    env = {**stack.env, "WANGGE_PROFILE": "development", "WANGGE_DATABASE_URL": stack.owner_dsn()}
    seeded = subprocess.run([sys.executable, "-m", "services.supervision", "accounts", "seed-demo", "--quiet"],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert seeded.returncode == 0, seeded.stderr
    async with front() as http:
        answer = await http.post("/api/v1/sessions", json={"username": "operator", "password": "wangge-demo"})
        assert answer.status_code == 403, answer.text
        assert "wangge_session" not in answer.headers.get("set-cookie", "")
        # And the demo tokens of ./dev up were never issued here.
        assert (await http.get("/api/v1/cases", headers={"Authorization": "Bearer demo-operator-token"})).status_code == 401


async def test_the_sms_callback_needs_the_secret_and_the_gateways_address(stack: Stack):
    secret = (stack.state / "sms-inbound-token").read_text().strip()
    answer = {"from": "13900001234", "text": "1"}
    async with front() as gateway:  # the gateway's own address (127.0.0.1), but no secret
        unsigned = await gateway.post("/api/v1/sms/inbound", json=answer)
        wrong = await gateway.post("/api/v1/sms/inbound", json=answer, headers={"X-Gateway-Token": "x" * 32})
    assert unsigned.status_code == 401 and wrong.status_code == 401
    async with front(STRANGER) as stranger:  # the right secret (leaked), from elsewhere, posing as the gateway
        leaked = await stranger.post("/api/v1/sms/inbound", json=answer, headers={"X-Gateway-Token": secret})
        posing = await stranger.post("/api/v1/sms/inbound", json=answer,
                                     headers={"X-Gateway-Token": secret, "X-Forwarded-For": "127.0.0.1"})
    assert leaked.status_code == 403 and posing.status_code == 403, (leaked.text, posing.text)


async def test_a_spoofed_x_forwarded_for_does_not_change_the_counted_client(stack: Stack):
    statuses = []
    async with front(STRANGER) as attacker:
        for i in range(30):
            answer = await attacker.post("/api/v1/my-case", json={"case_no": f"20990104-{i:04d}", "phone": "13900009999"},
                                         headers={"X-Forwarded-For": f"10.88.{i}.1"})
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {404}, statuses
    # Every failure was counted against the address that made it, none against the addresses it wrote.
    conn = await asyncio.wait_for(asyncpg.connect(stack.owner_dsn()), 20)
    try:
        clients = {r["client_ip"] for r in await conn.fetch("SELECT DISTINCT client_ip FROM notify.lookup_failures")}
    finally:
        await conn.close()
    assert clients == {STRANGER}
    async with front("127.0.0.3") as someone_else:  # another client is not locked by it
        assert (await someone_else.post("/api/v1/my-case", json={"case_no": "20990104-0000",
                                                                  "phone": "13900009999"})).status_code == 404


@pytest.mark.parametrize("service, other", [("intake", "notify"), ("routing", "supervision"), ("notify", "intake")])
async def test_a_services_database_role_cannot_read_another_schema(stack: Stack, service: str, other: str):
    conn = await asyncio.wait_for(asyncpg.connect(f"postgresql://wangge_{service}@127.0.0.1:{BASE + 32}/wangge"), 20)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch(f'SELECT * FROM "{other}".outbox LIMIT 1')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("SET ROLE wangge")
        assert await conn.fetchval(f'SELECT count(*) >= 0 FROM "{service}".outbox')  # its own it reads
    finally:
        await conn.close()


async def test_a_revoked_credential_is_refused_and_its_live_stream_closed(stack: Stack):
    token = stack.credentials("issue", "--role", "operator", "--name", "将被吊销")
    await until_status(token, 200)
    opened = asyncio.Event()
    reader = asyncio.create_task(_stream_until_closed(FRONT, token, opened))
    try:
        await asyncio.wait_for(opened.wait(), 30)
        await asyncio.sleep(1.5)
        assert not reader.done()  # a valid credential keeps its stream open
        stack.credentials("revoke", token, "--reason", "被盗")
        seen = await asyncio.wait_for(reader, 30)
    finally:
        reader.cancel()
    assert seen[0][0] == b"hello" and seen[-1][0] == b"closed"
    assert "revoked" in orjson.loads(seen[-1][1])["reason"]
    await until_status(token, 401)
    async with front(token=token) as http:
        assert (await http.get("/api/v1/live/events")).status_code == 401
