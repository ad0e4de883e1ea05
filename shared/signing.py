"""Who may write what on Kafka: every service signs what it publishes, and consumers check the signer.

Kafka never tells a consumer which principal produced a record, and `wangge.cases` is written by three services, so
ACLs alone cannot bind an event type to the service that owns it. Each service therefore signs every record it
produces with its own Ed25519 key (headers `wangge-signer` = its name, `wangge-ed25519` = the signature over the
record's topic, key and value — `signed_bytes` —, base64), and every consumer accepts an event type of the table
below only when it is signed by a service the table names (DESIGN.md "Services"). Records sent together are signed
together: the signature is over the root of their hash tree, and each carries its path to it (`wangge-proof`). The
credential registry is signed by the admin key, which only `python -m shared.credentials` holds; supervision
(people's sessions) and notify (residents' sessions) sign the sessions they issue with their own keys, accepted for
their roles only (see CREDENTIAL_ISSUERS).

Keys: `WANGGE_<NAME>_SIGNING_KEY` is a process's private key (base64 of the 32-byte Ed25519 seed: intake, routing,
supervision, notify, admin), `WANGGE_SIGNING_PUBLIC_KEYS` every signer's public key (`name:base64,…`). The
production profile refuses to start without its own private key and every public key (production_problems); in
development a missing key is a fixed development key (anyone can compute it: never for a real street). `./dev`
makes real ones per checkout, and `python -m shared.signing generate` makes a set for a deployment.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from shared.merkle import ProofError, leaf_hash, root_and_paths, root_of
from shared.metrics import SIGNATURES

SIGNATURE_OPS = ("signed", "checked", "placed", "proved")  # wangge_signatures_total's ops (shared/metrics.py)
SIGNED, CHECKED, PLACED, PROVED = (SIGNATURES.labels(op) for op in SIGNATURE_OPS)
SIGNER_HEADER = "wangge-signer"
SIGNATURE_HEADER = "wangge-ed25519"
# A record sent in a batch carries its path in the batch's hash tree (shared/merkle.py), and its signature is the
# one over the tree's root: two bytes of index and two of size, then the sibling hashes. A process checks each root
# once (Verifier), so a burst costs a signature and a check per batch, not per record: signatures made and checked
# were a third of the CPU a case cannot avoid (bench.floor), more than the broker's own share.
PROOF_HEADER = "wangge-proof"
BATCH_LIMIT = 64  # records under one root: a path of at most 6 hashes (192 bytes) a record

SERVICES = ("intake", "routing", "supervision", "notify")
ADMIN = "admin"
SIGNERS = (*SERVICES, ADMIN)

_INTAKE = frozenset({"intake"})
_ROUTING = frozenset({"routing"})
_SUPERVISION = frozenset({"supervision"})
_NOTIFY = frozenset({"notify"})

# The one table: each event type of the services, and who may sign it (DESIGN.md "Services" and "Kafka contract").
# A type that is not here (report.submitted, the owners' task updates, message.rejected) is not bound by this table:
# reports and owners' updates carry their senders' own signatures (see the docs' "Kafka writes").
EMITTERS: dict[str, frozenset[str]] = {
    # intake: a report becomes a case, and what the command center decides before dispatch
    "case.reported": _INTAKE, "case.accepted": _INTAKE, "case.rejected": _INTAKE, "case.merged": _INTAKE,
    "case.classified": _INTAKE, "case.located": _INTAKE, "case.commented": _INTAKE,
    "contact.recorded": _INTAKE,
    # routing: dispatch and the owners' tasks
    "case.dispatched": _ROUTING, "task.assigned": _ROUTING, "task.recalled": _ROUTING,
    # supervision: the clocks, the owners' answers folded into the case, checks, closing; urges; street rules
    **{t: _SUPERVISION for t in (
        "case.warned", "case.overdue", "case.escalated", "case.urged", "case.signed", "case.progress-reported",
        "case.resolved", "case.returned", "case.explained", "case.suspended", "case.resumed",
        "case.extension-requested", "case.extension-decided", "case.reworked", "case.closed", "case.reopened",
        "task.urged", "task.commented", "task.escalated", "task.extension-decided", "task.update-refused",
        "street.config-changed")},
    # notify: the residents' side
    "case.survey-answered": _NOTIFY, "case.personal-data-erased": _NOTIFY, "reply.issued": _NOTIFY,
    # the credential registry: the admin key; the sessions supervision and notify issue (CREDENTIAL_ISSUERS)
    "credential.issued": frozenset({ADMIN, "supervision", "notify"}),
    "credential.revoked": frozenset({ADMIN, "supervision", "notify"}),
}

# A service that issues sessions may sign credentials of these roles only, lasting at most this long: supervision
# the people who sign in (its accounts' roles), notify the residents who proved their phone. Anything else — a
# screen, a hotline, an owner's machine credential — is the admin key's.
CREDENTIAL_ISSUERS: dict[str, tuple[frozenset[str], timedelta]] = {
    "supervision": (frozenset({"operator", "terminal", "owner", "admin"}), timedelta(days=31)),
    "notify": (frozenset({"resident"}), timedelta(days=91)),
}

_DEVELOPMENT_SEED = b"wangge-development-signing-key/"

# What a signature covers: the record's topic and key as well as its value. A signature over the value alone let a
# signed record be copied to another topic and still verify there — a task.assigned for one owner onto another
# owner's task topic, a credential's or a case's event onto a topic whose reader takes it as its own. The format is
# versioned by this prefix; the first one (the value alone) is refused (`Verifier.signer` says so by name).
SIGNED_FORMAT = b"wangge-record/2\x00"


# What a batch's signature covers: this prefix and the root of the tree whose leaves are the records' signed bytes.
# No record's signed bytes begin with it, so a root's signature never passes for a record's, nor the reverse.
BATCH_FORMAT = b"wangge-batch/1\x00"


def signed_bytes(topic: str, key: bytes | str | None, value: bytes | None) -> bytes:
    """The bytes a record's signature covers: the format, the topic, the key (absent ≠ empty) and the value, each
    length-prefixed so that no two (topic, key, value) give the same bytes."""
    return _placed(topic, key) + (value or b"")


def _placed(topic: str, key: bytes | str | None) -> bytes:
    """signed_bytes without the value (a leaf hashes the value after it, without copying it)."""
    t = topic.encode()
    k = key.encode() if isinstance(key, str) else key
    keyed = b"\x00" if k is None else b"\x01" + len(k).to_bytes(4, "big") + k
    return SIGNED_FORMAT + len(t).to_bytes(2, "big") + t + keyed


def record_leaf(topic: str, key: bytes | str | None, value: bytes | None) -> bytes:
    """The record's leaf in its batch's tree: the hash of its signed bytes."""
    return leaf_hash(_placed(topic, key), value or b"")


class SigningKeyError(ValueError):
    """A configured key that is not one (the message says which and why)."""


def development_key(name: str) -> Ed25519PrivateKey:
    """The fixed development key of `name`: computable by anyone, so refused by the production profile."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(_DEVELOPMENT_SEED + name.encode()).digest())


def private_key(text: str, *, what: str) -> Ed25519PrivateKey:
    """A private key from its configured form (base64 of the 32-byte seed)."""
    raw = _b64(text, what=what)
    if len(raw) != 32:
        raise SigningKeyError(f"{what}: an Ed25519 private key is 32 bytes (base64), not {len(raw)}")
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key(text: str, *, what: str) -> Ed25519PublicKey:
    """A public key from its configured form (base64 of the 32 raw bytes)."""
    raw = _b64(text, what=what)
    if len(raw) != 32:
        raise SigningKeyError(f"{what}: an Ed25519 public key is 32 bytes (base64), not {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def _b64(text: str, *, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SigningKeyError(f"{what}: not base64") from None


def encode_private(key: Ed25519PrivateKey) -> str:
    """The configured form of a private key."""
    return base64.b64encode(key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                              serialization.NoEncryption())).decode()


def encode_public(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The configured form of a public key (of a private key: its public half)."""
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def parse_public_keys(spec: str) -> dict[str, Ed25519PublicKey]:
    """WANGGE_SIGNING_PUBLIC_KEYS (`name:base64,name:base64`) parsed; SigningKeyError names a bad entry."""
    keys: dict[str, Ed25519PublicKey] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, sep, text = part.partition(":")
        if not sep or not name.strip():
            raise SigningKeyError(f"WANGGE_SIGNING_PUBLIC_KEYS: {part[:20]!r} is not name:base64")
        keys[name.strip()] = public_key(text, what=f"WANGGE_SIGNING_PUBLIC_KEYS {name.strip()}")
    return keys


class Signer:
    """Signs records as one principal (a service, or the admin)."""

    def __init__(self, name: str, key: Ed25519PrivateKey):
        self.name = name
        self._key = key
        # The same key for libsodium, which signs in 25 µs where OpenSSL takes 34 (Ed25519 is deterministic: the very
        # same signature); every record a service sends is signed.
        self._sign = SigningKey(key.private_bytes_raw()).sign

    def headers(self, value: bytes, *, topic: str, key: bytes | str | None) -> list[tuple[str, bytes]]:
        """The Kafka headers proving that this signer published `value` on `topic` under `key`."""
        SIGNED.inc()
        return [(SIGNER_HEADER, self.name.encode()),
                (SIGNATURE_HEADER, base64.b64encode(self._sign(signed_bytes(topic, key, value)).signature))]

    def batch_headers(self, records: list[tuple[str, bytes | str | None, bytes | None]],
                      alone: Callable[[str], bool] = lambda topic: False) -> list[list[tuple[str, bytes]]]:
        """The headers of each (topic, key, value) sent together: one signature per BATCH_LIMIT records, over the root
        of their hash tree, and each record's path to it. A record on a topic `alone` names (one that systems
        outside wangge read and check: they need no tree), or a batch of one, is signed as a record alone."""
        out: list[list[tuple[str, bytes]]] = [[] for _ in records]
        together = []
        for i, (topic, key, value) in enumerate(records):
            if alone(topic):
                out[i] = self.headers(value, topic=topic, key=key)
            else:
                together.append(i)
        for start in range(0, len(together), BATCH_LIMIT):
            chunk = together[start:start + BATCH_LIMIT]
            if len(chunk) == 1:
                topic, key, value = records[chunk[0]]
                out[chunk[0]] = self.headers(value, topic=topic, key=key)
                continue
            root, paths = root_and_paths([record_leaf(*records[i]) for i in chunk])
            SIGNED.inc()
            PLACED.inc(len(chunk))
            name, signature = self.name.encode(), base64.b64encode(self._sign(BATCH_FORMAT + root).signature)
            size = len(chunk).to_bytes(2, "big")
            for place, (i, path) in enumerate(zip(chunk, paths)):
                out[i] = [(SIGNER_HEADER, name), (SIGNATURE_HEADER, signature),
                          (PROOF_HEADER, place.to_bytes(2, "big") + size + path)]
        return out

    @property
    def public(self) -> str:
        return encode_public(self._key)


def signer_for(settings: Any, name: str) -> Signer:
    """The signer `name` works as: its configured key (WANGGE_<NAME>_SIGNING_KEY), else in development the fixed
    development key. The production profile refuses to start without one (production_problems), so this never
    falls back there; asked anyway, it raises."""
    text = getattr(settings, f"{name}_signing_key", "")
    if text:
        return Signer(name, private_key(text, what=f"WANGGE_{name.upper()}_SIGNING_KEY"))
    if settings.profile == "production":
        raise SigningKeyError(f"WANGGE_{name.upper()}_SIGNING_KEY is not set: the production profile has no fallback")
    return Signer(name, development_key(name))


def verifier_for(settings: Any) -> "Verifier":
    """The verifier of every signer this process knows: WANGGE_SIGNING_PUBLIC_KEYS, and in development the fixed
    development key of any signer not configured there."""
    keys = parse_public_keys(settings.signing_public_keys)
    if settings.profile != "production":
        for name in SIGNERS:
            keys.setdefault(name, development_key(name).public_key())
    return Verifier(keys)


def record_signer(headers: Iterable[tuple[str, bytes]] | None) -> str | None:
    """The signer a record names (trustworthy only after the consumer's check passed it)."""
    for key, value in headers or ():
        if key == SIGNER_HEADER:
            try:
                return value.decode("ascii")
            except (UnicodeDecodeError, AttributeError):
                return None
    return None


class Verifier:
    """Checks a record's signature against the public keys of the known signers."""

    def __init__(self, keys: dict[str, Ed25519PublicKey]):
        self._keys = keys
        # Batch roots whose signature this process has checked: (signer, signature, root). Bounded; a root is needed
        # only while its batch's records are being read, which is together.
        self._vouched: dict[tuple[str, bytes, bytes], None] = {}
        # The same keys for libsodium, which checks a signature in half the CPU OpenSSL takes (45 against 93 µs here):
        # every consumer checks every record it handles, some 20 a case across the processes (issue 17).
        self._checkers = {name: VerifyKey(key.public_bytes_raw()) for name, key in keys.items()}

    def signer(self, headers: Iterable[tuple[str, bytes]] | None, value: bytes | None, *, topic: str,
               key: bytes | str | None) -> tuple[str | None, str]:
        """(the signer whose valid signature the record, on this topic under this key, carries, '') or (None, why
        not)."""
        found = dict(headers or ())
        named = _signature_of(found)
        if isinstance(named, str):
            return None, named
        who, raw = named
        public, checker = self._keys.get(who), self._checkers.get(who)
        if public is None or checker is None:
            return None, f"signed by {who[:40]!r}, whom no configured public key names"
        proof = found.get(PROOF_HEADER)
        if proof is None:
            signed = signed_bytes(topic, key, value)
        else:
            PROVED.inc()
            try:
                signed = BATCH_FORMAT + _batch_root(proof, topic, key, value)
            except ProofError as exc:
                return None, f"{PROOF_HEADER} malformed: {exc}"
            if (who, raw, signed) in self._vouched:
                return who, ""
        CHECKED.inc()
        try:
            checker.verify(signed, raw)
        except (BadSignatureError, ValueError):  # ValueError: not 64 bytes
            return None, _why_not(public, raw, value, who=who, topic=topic)
        if proof is not None:
            if len(self._vouched) >= _VOUCHED_LIMIT:
                self._vouched.clear()
            self._vouched[(who, raw, signed)] = None
        return who, ""

    def check(self, record: Any, envelope: Any) -> str | None:
        """The consumer's hook: why this record may not be handled (to the rejected topic), or None. Event types of
        the EMITTERS table need the signature of one of their emitters; other types are not this table's."""
        allowed = EMITTERS.get(envelope.type)
        if allowed is None:
            return None
        who, why = self.signer(record.headers, record.value, topic=record.topic, key=record.key)
        if who is None:
            return f"{envelope.type} refused: {why} (only {', '.join(sorted(allowed))} may publish it)"
        if who not in allowed:
            return f"{envelope.type} refused: signed by {who}, but only {', '.join(sorted(allowed))} may publish it"
        if envelope.type == "credential.issued" and who in CREDENTIAL_ISSUERS:
            return _session_problem(who, envelope)
        return None


_VOUCHED_LIMIT = 4096


def _batch_root(proof: bytes, topic: str, key: bytes | str | None, value: bytes | None) -> bytes:
    """The root a record's proof header leads its leaf to (ProofError if the header cannot be a path)."""
    if len(proof) < 4:
        raise ProofError(f"{len(proof)} bytes, not even an index and a size")
    index, size = int.from_bytes(proof[:2], "big"), int.from_bytes(proof[2:4], "big")
    return root_of(record_leaf(topic, key, value), index, size, proof[4:])


def _why_not(public: Ed25519PublicKey, raw: bytes, value: bytes | None, *, who: str, topic: str) -> str:
    """Why a signature that does not verify is refused: a signature over the value alone (the first format, which let
    a record be replayed onto any topic) is named as such, so an upgrade's leftovers are told apart from forgeries."""
    try:
        public.verify(raw, value or b"")
    except InvalidSignature:
        return (f"the signature is not {who}'s over this message on {topic[:100]} "
                "(forged, altered, or copied from another topic or key)")
    return (f"signed by {who} over the value alone (the format before topics and keys were signed): refused, as "
            "such a record could have been copied from any topic")


def _session_problem(who: str, envelope: Any) -> str | None:
    """Why a credential a session-issuing service signed goes beyond what it may issue, or None."""
    roles, longest = CREDENTIAL_ISSUERS[who]
    data = envelope.data if isinstance(envelope.data, dict) else {}
    role = data.get("role")
    if data.get("signing_public_key") or data.get("signing_key_id"):
        return f"credential.issued refused: a session {who} issues carries no signing key (the admin key's only)"
    if role not in roles:
        return f"credential.issued refused: {who} issues sessions of {', '.join(sorted(roles))} only, not {role!r}"
    expires = data.get("expires_at")
    try:
        until = datetime.fromisoformat(expires) if isinstance(expires, str) else None
    except ValueError:
        until = None
    if until is None or until.tzinfo is None or until > datetime.now(timezone.utc) + longest:
        return f"credential.issued refused: a session {who} issues must expire within {longest.days} days"
    return None


# ---- machine credentials' own keys (owners' systems, terminal gateways, the hotline bridge) ------------------------
# Issued with the credential (`python -m shared.credentials issue`), the private key printed once; the registry
# carries the public key and its id. A record signed with it names the key id in wangge-signer (a service's name
# never starts with "k" followed by 24 hex digits, so the two cannot be confused).

def key_id(public: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The id of a credential's signing key: derived from the public key (not secret, not the token's hash)."""
    return "k" + hashlib.sha256(encode_public(public).encode()).hexdigest()[:24]


def key_id_of(public_text: str) -> str | None:
    """The key id of a public key in its configured form (None: not a key)."""
    try:
        return key_id(public_key(public_text, what="signing key"))
    except SigningKeyError:
        return None


def credential_signer(private_text: str) -> Signer:
    """The signer of a machine credential's private key (as printed at issue), naming its key id."""
    key = private_key(private_text, what="the credential's signing key")
    return Signer(key_id(key), key)


def verify_with(public_text: str, signature: bytes, value: bytes, *, topic: str | None,
                key: bytes | str | None) -> bool:
    """Whether `signature` (raw) is this public key's (its configured form) over `value` on `topic` under `key`
    (topic None: over the value alone, the refused first format — only to tell the refusal's reason)."""
    signed = signed_bytes(topic, key, value) if topic is not None else value
    try:
        public_key(public_text, what="signing key").verify(signature, signed)
    except (InvalidSignature, SigningKeyError):
        return False
    return True


def signed_by(headers: Iterable[tuple[str, bytes]] | None) -> tuple[str, bytes] | str:
    """(the signer the record names, the raw signature) or why the record is not signed."""
    return _signature_of(dict(headers or ()))


def _signature_of(found: dict[str, bytes]) -> tuple[str, bytes] | str:
    name, signature = found.get(SIGNER_HEADER), found.get(SIGNATURE_HEADER)
    if not name or not signature:
        return f"not signed: needs the {SIGNER_HEADER} and {SIGNATURE_HEADER} headers"
    try:
        return name.decode("ascii"), base64.b64decode(signature, validate=True)
    except (UnicodeDecodeError, binascii.Error, ValueError):
        return f"{SIGNER_HEADER}/{SIGNATURE_HEADER} malformed"


def key_problems(settings: Any, name: str) -> list[str]:
    """What the production profile lacks to sign as `name` and to check every signer (empty: nothing)."""
    problems = []
    try:
        public = parse_public_keys(settings.signing_public_keys)
    except SigningKeyError as exc:
        return [str(exc)]
    missing = [s for s in SIGNERS if s not in public]
    if missing:
        problems.append(f"WANGGE_SIGNING_PUBLIC_KEYS lacks the public key of {', '.join(missing)} "
                        "(name:base64, comma-separated; `python -m shared.signing generate` makes a set)")
    own = getattr(settings, f"{name}_signing_key", "")
    if not own:
        problems.append(f"WANGGE_{name.upper()}_SIGNING_KEY: {name}'s private signing key is not set "
                        "(`python -m shared.signing generate`)")
    else:
        try:
            key = private_key(own, what=f"WANGGE_{name.upper()}_SIGNING_KEY")
        except SigningKeyError as exc:
            problems.append(str(exc))
        else:
            if name in public and encode_public(key) != encode_public(public[name]):
                problems.append(f"WANGGE_{name.upper()}_SIGNING_KEY does not match {name}'s key in "
                                "WANGGE_SIGNING_PUBLIC_KEYS")
    return problems


def generate(names: Iterable[str]) -> tuple[dict[str, str], str]:
    """Fresh keys: ({name: private key}, the WANGGE_SIGNING_PUBLIC_KEYS value)."""
    private = {name: Ed25519PrivateKey.generate() for name in names}
    return ({name: encode_private(k) for name, k in private.items()},
            ",".join(f"{name}:{encode_public(k)}" for name, k in private.items()))


def main(argv: list[str] | None = None) -> int:
    """`python -m shared.signing generate`: a key pair per signer, as environment lines."""
    parser = argparse.ArgumentParser(prog="python -m shared.signing",
                                     description="Make the Ed25519 keys wangge's services sign Kafka records with.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gen = sub.add_parser("generate", help="print WANGGE_<NAME>_SIGNING_KEY for each signer and "
                                          "WANGGE_SIGNING_PUBLIC_KEYS (give each process only its own private key)")
    gen.add_argument("names", nargs="*", default=list(SIGNERS), help=f"signers (default: {' '.join(SIGNERS)})")
    args = parser.parse_args(argv)
    private, public = generate(args.names)
    for name, key in private.items():
        print(f"WANGGE_{name.upper()}_SIGNING_KEY={key}")
    print(f"WANGGE_SIGNING_PUBLIC_KEYS={public}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
