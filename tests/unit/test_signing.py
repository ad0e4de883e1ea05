"""The one table of who may publish what (shared/signing.py) and the checks consumers make with it."""
from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.clock import now
from shared.contracts.credentials import CredentialIssued
from shared.contracts.registry import registered_types
from shared.signing import (
    EMITTERS, SERVICES, SIGNERS, Signer, Verifier, credential_signer, development_key, encode_private, key_id,
    key_id_of, parse_public_keys, signed_by,
)

pytestmark = pytest.mark.unit


def verifier() -> Verifier:
    return Verifier({name: development_key(name).public_key() for name in SIGNERS})


T, K = "wangge.cases", b"case-1"  # where the records of these tests are, unless a test moves them


def record(value: bytes, headers, topic: str = T, key: bytes | None = K) -> SimpleNamespace:
    return SimpleNamespace(value=value, headers=headers, topic=topic, key=key)


def test_every_type_of_the_table_is_a_contract_type_and_every_emitter_a_signer():
    assert set(EMITTERS) <= set(registered_types())
    assert all(emitters <= set(SIGNERS) for emitters in EMITTERS.values())
    # Every case event has exactly one owning service (DESIGN "Services"); only the registry has several signers.
    assert all(len(e) == 1 and next(iter(e)) in SERVICES for t, e in EMITTERS.items() if t.startswith("case."))


def test_a_case_event_needs_its_owners_signature_over_these_bytes():
    value = b'{"type": "case.closed"}'
    envelope = SimpleNamespace(type="case.closed", data={})
    own = Signer("supervision", development_key("supervision"))
    assert verifier().check(record(value, own.headers(value, topic=T, key=K)), envelope) is None
    wrong = Signer("routing", development_key("routing"))
    assert "only supervision may publish it" in verifier().check(record(value, wrong.headers(value, topic=T, key=K)), envelope)
    assert "not supervision's" in verifier().check(record(value + b" ", own.headers(value, topic=T, key=K)), envelope)
    assert "not signed" in verifier().check(record(value, None), envelope)
    stranger = Signer("mallory", Ed25519PrivateKey.generate())
    assert "no configured public key" in verifier().check(record(value, stranger.headers(value, topic=T, key=K)), envelope)
    # A type the table does not bind (an owner's update, a report) is not this check's business.
    assert verifier().check(record(value, None), SimpleNamespace(type="report.submitted", data={})) is None


def test_a_session_service_signs_its_own_roles_for_a_while_only():
    def issued_by(who: str, **fields) -> str | None:
        event = CredentialIssued(token_sha256="a" * 64, name="x", **fields).envelope(source=who)
        value = event.to_json()
        envelope = SimpleNamespace(type=event.type, data=event.data)
        return verifier().check(record(value, Signer(who, development_key(who)).headers(value, topic=T, key=K)), envelope)

    soon = now() + timedelta(hours=12)
    assert issued_by("supervision", role="operator", expires_at=soon) is None
    assert issued_by("notify", role="resident", expires_at=soon) is None
    assert issued_by("admin", role="hotline") is None
    assert "resident only" in issued_by("notify", role="admin", expires_at=soon)
    assert "within 31 days" in issued_by("supervision", role="admin")
    assert "no signing key" in issued_by("supervision", role="owner", expires_at=soon, signing_key_id=key_id(
        development_key("x")), signing_public_key="A" * 43 + "=")


def test_a_machine_key_is_named_by_an_id_derived_from_its_public_half():
    key = Ed25519PrivateKey.generate()
    signer = credential_signer(encode_private(key))
    assert signer.name == key_id(key) == key_id_of(signer.public) and signer.name.startswith("k")
    named = signed_by(signer.headers(b"x", topic=T, key=None))
    assert named[0] == key_id(key) and len(named[1]) == 64
    with pytest.raises(ValueError):
        parse_public_keys("intake:not-base64!")


def test_a_signature_binds_the_record_to_its_topic_and_key():
    value = b'{"type": "case.closed"}'
    envelope = SimpleNamespace(type="case.closed", data={})
    own = Signer("supervision", development_key("supervision"))
    headers = own.headers(value, topic=T, key=K)
    assert verifier().check(record(value, headers), envelope) is None
    # The same bytes and signature copied onto another topic (another street's prefix, an owner's task topic) or
    # under another key (another case's partition and order) are refused.
    for moved in (record(value, headers, topic="other.wangge.cases"), record(value, headers, key=b"case-2"),
                  record(value, headers, key=None)):
        assert "copied from another topic or key" in verifier().check(moved, envelope)
    # An absent key and an empty one are not the same record.
    assert verifier().check(record(value, own.headers(value, topic=T, key=b""), key=None), envelope) is not None


def test_the_first_format_a_signature_over_the_value_alone_is_refused_and_named():
    import base64

    from shared.signing import SIGNATURE_HEADER, SIGNER_HEADER
    value = b'{"type": "case.closed"}'
    old = [(SIGNER_HEADER, b"supervision"),
           (SIGNATURE_HEADER, base64.b64encode(development_key("supervision").sign(value)))]
    refusal = verifier().check(record(value, old), SimpleNamespace(type="case.closed", data={}))
    assert "over the value alone" in refusal


def test_the_signature_is_openssls_own_so_any_ed25519_checker_accepts_it():
    # Signed with libsodium for speed (issue 17); Ed25519 is deterministic, so it is byte for byte what OpenSSL makes.
    import base64

    from shared.signing import SIGNATURE_HEADER, signed_bytes

    key = development_key("intake")
    value = b'{"type": "case.accepted"}'
    headers = dict(Signer("intake", key).headers(value, topic=T, key=K))
    assert base64.b64decode(headers[SIGNATURE_HEADER]) == key.sign(signed_bytes(T, K, value))


def batch(signer: Signer, n: int, *, topic: str = T) -> list[SimpleNamespace]:
    """n case events sent together by `signer`, each with its headers as a consumer reads them."""
    values = [f'{{"type": "case.closed", "n": {i}}}'.encode() for i in range(n)]
    keys = [f"case-{i}".encode() for i in range(n)]
    headers = signer.batch_headers([(topic, k, v) for k, v in zip(keys, values)])
    return [record(v, h, topic=topic, key=k) for v, k, h in zip(values, keys, headers)]


def counted(op: str) -> float:
    from shared.metrics import SIGNATURES
    return SIGNATURES.labels(op)._value.get()


def test_a_batch_costs_one_signature_per_64_records_and_one_check_per_process():
    closed = SimpleNamespace(type="case.closed", data={})
    signed, checked = counted("signed"), counted("checked")
    records = batch(Signer("supervision", development_key("supervision")), 150)
    assert counted("signed") - signed == 3  # 64 + 64 + 22
    reader = verifier()
    assert all(reader.check(r, closed) is None for r in records)
    assert counted("checked") - checked == 3
    # Another process (another verifier) checks each root once too.
    assert all(verifier().check(r, closed) is None for r in reversed(records))


def test_a_lone_record_is_signed_as_before_without_a_path():
    from shared.signing import PROOF_HEADER
    (only,) = batch(Signer("supervision", development_key("supervision")), 1)
    assert PROOF_HEADER not in dict(only.headers)
    assert verifier().check(only, SimpleNamespace(type="case.closed", data={})) is None


def test_a_record_of_a_batch_altered_moved_or_given_another_path_is_refused():
    from shared.signing import PROOF_HEADER
    closed = SimpleNamespace(type="case.closed", data={})
    own = Signer("supervision", development_key("supervision"))
    records = batch(own, 5)
    reader = verifier()
    assert reader.check(records[0], closed) is None  # the batch's root is now vouched for in this process
    r = records[2]
    for forged in (record(r.value + b" ", r.headers), record(r.value, r.headers, topic="other.wangge.cases"),
                   record(r.value, r.headers, key=b"case-0"), record(records[3].value, r.headers, key=records[3].key)):
        assert "not supervision's" in reader.check(forged, closed)
    # Another record's path, or this path claiming another place in the batch or another batch size. (A size
    # that gives the tree the same shape on this leaf's way up, 6 for 5 here, leads to the same root: the record is
    # still the one signed, and nothing else is claimed.)
    others = dict(records[3].headers)[PROOF_HEADER]
    path = dict(r.headers)[PROOF_HEADER]
    for proof in (others, path[:1] + bytes([path[1] ^ 1]) + path[2:], path[:3] + bytes([3]) + path[4:]):
        headers = [h for h in r.headers if h[0] != PROOF_HEADER] + [(PROOF_HEADER, proof)]
        assert reader.check(record(r.value, headers, key=r.key), closed) is not None
    for proof in (path[:-1], path + bytes(32), b"\x00"):
        headers = [h for h in r.headers if h[0] != PROOF_HEADER] + [(PROOF_HEADER, proof)]
        assert "wangge-proof malformed" in reader.check(record(r.value, headers, key=r.key), closed)


def test_a_batch_root_another_signer_signed_does_not_vouch_under_this_name():
    from shared.signing import SIGNER_HEADER
    closed, accepted = SimpleNamespace(type="case.closed", data={}), SimpleNamespace(type="case.accepted", data={})
    records = batch(Signer("intake", development_key("intake")), 4)
    reader = verifier()
    assert reader.check(records[0], accepted) is None  # intake's root, vouched for in this process
    # The same record and signature, named as supervision's: the cache is per signer, and the key is supervision's.
    renamed = [(k, b"supervision" if k == SIGNER_HEADER else v) for k, v in records[1].headers]
    assert "not supervision's" in reader.check(record(records[1].value, renamed, key=records[1].key), closed)
    # A root's signature is not a record's: the batch's signature without its path does not verify either.
    from shared.signing import PROOF_HEADER
    bare = [h for h in records[1].headers if h[0] != PROOF_HEADER]
    assert "not intake's" in reader.check(record(records[1].value, bare, key=records[1].key), accepted)


def test_records_on_topics_outside_systems_read_are_signed_alone_in_their_place_among_a_batch():
    import base64

    from shared.signing import PROOF_HEADER, SIGNATURE_HEADER, signed_bytes
    from shared.topics import read_outside
    own = Signer("routing", development_key("routing"))
    topics = ["wangge.cases", "wangge.tasks.huanwei", "wangge.cases", "p1.wangge.replies", "wangge.cases"]
    records = [(t, f"case-{i}".encode(), f'{{"n": {i}}}'.encode()) for i, t in enumerate(topics)]
    headers = own.batch_headers(records, alone=read_outside)
    reader = verifier()
    for (topic, key, value), h in zip(records, headers):
        assert reader.signer(h, value, topic=topic, key=key) == ("routing", "")
        found = dict(h)
        if read_outside(topic):
            # What an owner's system or the hotline checks: one Ed25519 signature over this record's bytes.
            assert PROOF_HEADER not in found
            development_key("routing").public_key().verify(base64.b64decode(found[SIGNATURE_HEADER]),
                                                           signed_bytes(topic, key, value))
        else:
            assert PROOF_HEADER in found
    # The three internal records share one root's signature.
    assert len({dict(h)[SIGNATURE_HEADER] for h, t in zip(headers, topics) if not read_outside(t)}) == 1


def test_the_topics_outside_systems_read_are_the_task_topics_and_the_replies():
    from shared.topics import Topics, read_outside
    for prefix in ("", "t1234."):
        topics = Topics(prefix)
        assert read_outside(topics.tasks("huanwei")) and read_outside(topics.tasks("370402001001"))
        assert read_outside(topics.replies)
        assert not any(read_outside(t) for t in (topics.cases, topics.contacts, topics.credentials, topics.reports,
                                                 topics.street_config, topics.rejected_for(topics.tasks("huanwei")),
                                                 topics.rejected_for(topics.replies)))
