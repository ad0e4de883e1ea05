"""Every Kafka write bound to who may make it (issue 18, item 2), attacked on the real broker and database.

Anyone who reaches the broker can publish; what they publish is handled only when the service that owns its type
signed it (shared/signing.py). Forged case events — the type from the wrong service, a signature by a key nobody
configured, a signature over other bytes, none at all — go to wangge.cases.rejected with the reason and change
nothing; forged credentials never open a door."""
from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.auth import token_hash
from shared.clock import now
from shared.contracts.cases import CaseClosed, CaseDispatched
from shared.contracts.common import TimeLimit
from shared.contracts.credentials import CredentialRevoked
from shared.credentials import issued
from shared.settings import Settings
from shared.signing import SIGNATURE_HEADER, SIGNER_HEADER, Signer, generate, signer_for
from shared.topics import Topics
from tests.supervision_cases import accepted, reported, start
from tests.support import TopicReader, eventually, grant, publish, signature_of

pytestmark = pytest.mark.integration


def impostor(name: str) -> Signer:
    """A signer that says it is `name`, with a key of its own (the attacker's)."""
    return Signer(name, Ed25519PrivateKey.generate())


def closed(case_id: str, case_no: str) -> bytes:
    return CaseClosed(case_no=case_no, owner="huanwei", outcome="resolved", result="已处理", by="operator:伪造",
                      closed_at=now(), on_time=True).envelope(source="supervision", case_id=case_id).to_json()


async def test_a_case_event_is_handled_only_when_the_service_that_owns_it_signed_it(isolated):
    supervision = await start(isolated)
    topics = Topics(isolated.topic_prefix)
    try:
        case_id, case_no, at = f"sig-{uuid.uuid4().hex[:8]}", "20261206-0001", now()
        for envelope in (reported(case_id, case_no), accepted(case_id, case_no),
                         CaseDispatched(case_no=case_no, owner="huanwei", category="CM04",
                                        unit_grid="3704020010010101", priority="normal",
                                        time_limit=TimeLimit(value=4, unit="work_hours"), dispatched_at=at,
                                        due_at=at + timedelta(hours=4)).envelope(source="routing", case_id=case_id)):
            await publish(isolated.kafka_bootstrap, topics.cases, envelope, key=case_id)  # signed by its owner
        pool = supervision.runtime.pool
        await eventually(lambda: pool.fetchval("SELECT state = 'dispatched' FROM cases WHERE case_id = $1", case_id),
                         30)

        # Four ways to forge 结案 (case.closed is supervision's alone):
        wrong_service, foreign_key, altered, unsigned = (closed(case_id, case_no) for _ in range(4))
        await publish(isolated.kafka_bootstrap, topics.cases, wrong_service, key=case_id, signed_as="routing")
        await publish(isolated.kafka_bootstrap, topics.cases, foreign_key, key=case_id,
                      headers=impostor("supervision").headers(foreign_key, topic=topics.cases, key=case_id))
        genuine = signer_for(isolated, "supervision").headers(altered, topic=topics.cases, key=case_id)  # a real signature, over other bytes
        await publish(isolated.kafka_bootstrap, topics.cases, altered.replace(b"huanwei", b"chengguan"), key=case_id,
                      headers=genuine)
        await publish(isolated.kafka_bootstrap, topics.cases, unsigned, key=case_id, signed_as=None)
        async with TopicReader(isolated.kafka_bootstrap, topics.rejected_for(topics.cases)) as rejected:
            reasons = []
            for expected in ("signed by routing, but only supervision may publish it",
                             "the signature is not supervision's over this message",
                             "the signature is not supervision's over this message",
                             "not signed"):
                found = await rejected.wait_for(
                    lambda m, e=expected: e in m.get("data", {}).get("reason", "")
                    and m["data"].get("offset") not in [r["data"]["offset"] for r in reasons], 30)
                reasons.append(found)
        assert all(r["data"]["reason"].startswith("case.closed refused") for r in reasons)
        # None of them was handled: the case is still with its owner, nothing closed it.
        assert await pool.fetchval("SELECT state FROM cases WHERE case_id = $1", case_id) == "dispatched"
        assert await pool.fetchval("SELECT count(*) FROM case_events WHERE case_id = $1 AND type = 'case.closed'",
                                   case_id) == 0
    finally:
        await asyncio.wait_for(supervision.runtime.stop(), 30)


async def _answer(service, token: str) -> int:
    port_app = service.app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=port_app), base_url="http://supervision") as http:
        answer = await http.get("/api/v1/cases", headers={"Authorization": f"Bearer {token}"})
    return answer.status_code


async def test_a_forged_credential_never_opens_a_door(isolated):
    supervision = await start(isolated)
    topics = Topics(isolated.topic_prefix)
    bootstrap = isolated.kafka_bootstrap
    try:
        forged = {
            # an admin's credential signed by a key that says it is the admin's
            "forged-admin": (issued("forged-admin", name="伪管理员", role="admin"), impostor("admin")),
            # no signature at all
            "unsigned-admin": (issued("unsigned-admin", name="伪管理员", role="admin"), None),
            # notify's key is real, but notify issues residents' sessions only
            "notify-operator": (issued("notify-operator", name="伪值班员", role="operator",
                                       expires_at=now() + timedelta(hours=1)), signer_for(isolated, "notify")),
            # supervision's key is real, but its sessions expire within days: no credential for ever
            "supervision-forever": (issued("supervision-forever", name="伪值班员", role="operator"),
                                    signer_for(isolated, "supervision")),
            # a hotline's machine credential is the admin's to issue, not a session service's
            "supervision-hotline": (issued("supervision-hotline", name="伪热线", role="hotline",
                                           expires_at=now() + timedelta(hours=1)), signer_for(isolated, "supervision")),
        }
        for token, (event, signer) in forged.items():
            payload = event.envelope(source="credentials").to_json()
            await publish(bootstrap, topics.credentials, payload, key=event.token_sha256,
                          headers=signer.headers(payload, topic=topics.credentials, key=event.token_sha256) if signer
                          else None, signed_as=None)
        # A credential the admin key signed, after them on the registry's one partition: once it is learnt, the
        # forged ones were read.
        await grant(isolated, supervision, token="real-operator", name="值班员", role="operator")
        assert await _answer(supervision, "real-operator") == 200
        for token in forged:
            assert await _answer(supervision, token) == 401, token
            assert not await supervision.runtime.pool.fetchval(
                "SELECT count(*) FROM credentials WHERE token_sha256 = $1", token_hash(token)), token

        # notify may end residents' sessions, not an operator's credential.
        revoke = CredentialRevoked(token_sha256=token_hash("real-operator"), reason="伪造的注销")
        payload = revoke.envelope(source="notify").to_json()
        await publish(bootstrap, topics.credentials, payload, key=revoke.token_sha256, signed_as="notify")
        await grant(isolated, supervision, token="barrier-operator", name="值班员2", role="operator")
        assert await _answer(supervision, "real-operator") == 200
        async with TopicReader(bootstrap, topics.rejected_for(topics.credentials)) as rejected:
            for reason in ("credential.issued refused: the signature is not admin's",
                           "credential.issued refused: not signed",
                           "notify issues sessions of resident only, not 'operator'",
                           "a session supervision issues must expire within 31 days",
                           "supervision issues sessions of admin, operator, owner, terminal only, not 'hotline'"):
                await rejected.wait_for(lambda m, r=reason: r in m.get("data", {}).get("reason", ""), 30)
    finally:
        await asyncio.wait_for(supervision.runtime.stop(), 30)


def test_the_production_profile_refuses_to_start_without_its_keys():
    keys, public = generate(["intake", "routing", "supervision", "notify", "admin"])
    bare = Settings(profile="production", sms_inbound_token="x" * 32, resident_key="k" * 32,
                    routing_signing_key="", signing_public_keys="", kafka_security_protocol="SASL_SSL",
                    kafka_username="routing", kafka_password="p" * 24)
    problems = bare.production_problems("routing")
    assert any("WANGGE_ROUTING_SIGNING_KEY" in p for p in problems)
    assert any("WANGGE_SIGNING_PUBLIC_KEYS lacks" in p for p in problems)
    ready = bare.model_copy(update={"routing_signing_key": keys["routing"], "signing_public_keys": public})
    assert ready.production_problems("routing") == []
    # Another service's key in routing's place: refused, it could not sign as routing.
    swapped = ready.model_copy(update={"routing_signing_key": keys["intake"]})
    assert any("does not match routing's key" in p for p in swapped.production_problems("routing"))
    # Without the fixed development keys to fall back on, production cannot even sign.
    with pytest.raises(ValueError):
        signer_for(bare, "routing")


def test_a_signature_is_over_the_whole_value():
    signer = signer_for(Settings(profile="development"), "intake")
    headers = dict(signer.headers(b'{"a": 1}', topic="wangge.cases", key="c-1"))
    assert headers[SIGNER_HEADER] == b"intake" and len(base64.b64decode(headers[SIGNATURE_HEADER])) == 64
    assert signature_of(b'{"type": "case.closed"}', topic="wangge.cases")[0] == (SIGNER_HEADER, b"supervision")


@pytest.mark.parametrize("tamper", ["short", "long", "flipped", "zero", "another_key", "named_other"])
def test_a_mangled_signature_is_refused_by_the_check_every_consumer_makes(tamper):
    """The check runs on libsodium (issue 17: half the CPU of OpenSSL's): whatever is done to a signature — cut,
    lengthened, a bit flipped, zeroed, made with another key, or another owner's name put on it — it is refused."""
    from types import SimpleNamespace

    from shared.signing import SIGNATURE_HEADER, SIGNER_HEADER, SIGNERS, Signer, Verifier, development_key

    verifier = Verifier({name: development_key(name).public_key() for name in SIGNERS})
    value, topic, key = b'{"type": "case.closed"}', "wangge.cases", b"case-1"
    envelope = SimpleNamespace(type="case.closed", data={})
    headers = dict(Signer("supervision", development_key("supervision")).headers(value, topic=topic, key=key))
    raw = base64.b64decode(headers[SIGNATURE_HEADER])
    signer = b"supervision"
    if tamper == "short":
        raw = raw[:63]
    elif tamper == "long":
        raw = raw + b"\x00"
    elif tamper == "flipped":
        raw = raw[:10] + bytes([raw[10] ^ 1]) + raw[11:]
    elif tamper == "zero":
        raw = bytes(64)
    elif tamper == "another_key":
        raw = base64.b64decode(dict(Signer("supervision", development_key("routing")).headers(
            value, topic=topic, key=key))[SIGNATURE_HEADER])
    else:
        signer = b"routing"  # routing's name on supervision's signature
    mangled = [(SIGNER_HEADER, signer), (SIGNATURE_HEADER, base64.b64encode(raw))]
    record = SimpleNamespace(value=value, headers=mangled, topic=topic, key=key)
    refusal = verifier.check(record, envelope)
    assert refusal is not None and "refused" in refusal
    # The untouched record passes the same check.
    assert verifier.check(SimpleNamespace(value=value, headers=list(headers.items()), topic=topic, key=key),
                          envelope) is None
