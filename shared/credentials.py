"""`python -m shared.credentials`: issue and revoke the credentials every service checks.

A credential is published on wangge.credentials (only the token's hash); each service learns it
from there. The token itself is printed once, to whoever issued it, and stored nowhere.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import secrets
import sys
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared import kafka_security
from shared.auth import SIGNING_ROLES, token_hash
from shared.clock import now
from shared.contracts.credentials import ROLES, CredentialIssued, CredentialRevoked
from shared.kafka import OutgoingMessage, Producer
from shared.settings import Settings, get_settings
from shared.signing import ADMIN, SigningKeyError, encode_private, encode_public, key_id, signer_for
from shared.street import StreetDataError, load_street
from shared.topics import Topics, ensure_topics

# The fixed tokens of the local demo (./dev up); the production profile refuses them.
DEMO_CLIENTS: list[dict[str, str]] = [
    {"name": "网格员001终端", "role": "terminal", "token": "demo-terminal-token", "worker_id": "W001", "device_id": "SZT-0001"},
    {"name": "12345热线", "role": "hotline", "token": "demo-hotline-token"},
    {"name": "指挥中心值班员", "role": "operator", "token": "demo-operator-token"},
    {"name": "管理员", "role": "admin", "token": "demo-admin-token"},
    # The LED wall's read-only credential: the big screen's figures and lists, no operator's action.
    {"name": "指挥中心大屏", "role": "screen", "token": "demo-screen-token"},
]


def demo_signing_key(token: str) -> Ed25519PrivateKey:
    """The signing key of a demo machine credential (owner, terminal, hotline): fixed, derived from its fixed token, so
    that the README's Kafka examples sign as `demo-owner-huanwei` without a key to hand out. Anyone can compute it —
    as anyone knows the demo tokens: development only (a demo credential, and so its key, is refused in production)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"wangge-demo-signing-key/" + token.encode()).digest())


def demo_clients(street_dir: Path) -> list[dict[str, str]]:
    """The demo credentials: the fixed ones and demo-owner-<code> for every owner of the street."""
    street = load_street(street_dir)
    owners = {d.code: d.name for d in street.departments.values()}
    owners.update({g.code: g.name for g in street.level("community")})
    return DEMO_CLIENTS + [
        {"name": name, "role": "owner", "token": f"demo-owner-{code}", "owner_code": code}
        for code, name in sorted(owners.items())
    ]


def issued(token: str, *, name: str, role: str, owner_code: str | None = None, worker_id: str | None = None,
           device_id: str | None = None, expires_at: datetime | None = None, demo: bool = False,
           signing_key: Ed25519PrivateKey | None = None) -> CredentialIssued:
    """The registry event for a token (its hash only) and, for a machine that publishes on Kafka, the public half
    of its signing key (and the key's id)."""
    return CredentialIssued(token_sha256=token_hash(token), name=name, role=role, owner_code=owner_code,
                            worker_id=worker_id, device_id=device_id, expires_at=expires_at, demo=demo,
                            signing_key_id=key_id(signing_key) if signing_key else None,
                            signing_public_key=encode_public(signing_key) if signing_key else None)


async def publish(settings: Settings, events: list[CredentialIssued | CredentialRevoked]) -> None:
    """Put registry events on wangge.credentials (keyed by the token's hash) and wait for Kafka's ack."""
    topics = Topics(settings.topic_prefix)
    kafka_security.use(settings)
    await asyncio.wait_for(ensure_topics(settings.kafka_bootstrap, [topics.spec_for(topics.credentials)]), 30)
    # Signed with the admin key (WANGGE_ADMIN_SIGNING_KEY), which only this command holds: the services accept a
    # credential only when it carries that signature (or a session service's, for its own roles: shared/signing.py).
    producer = Producer(settings.kafka_bootstrap, "credentials", signer=signer_for(settings, ADMIN))
    await asyncio.wait_for(producer.start(), 30)
    try:
        messages = []
        for event in events:
            envelope = event.envelope(source="credentials")
            messages.append(OutgoingMessage(topics.credentials, event.token_sha256, envelope.to_json(), envelope.type))
        await asyncio.wait_for(producer.send_all(messages), 30)
    finally:
        await producer.stop()


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m shared.credentials",
        description="Issue and revoke wangge credentials (bearer tokens with a role). They are published on "
        "wangge.credentials and every service checks them within a second or two.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    issue = sub.add_parser("issue", help="issue a credential and print its token (shown once, stored nowhere)")
    issue.add_argument("--name", required=True, help="who holds it, e.g. 环卫所业务系统")
    issue.add_argument("--role", required=True, choices=ROLES)
    issue.add_argument("--owner-code", help="owner: the department or community code it acts for (required for owners)")
    issue.add_argument("--worker-id", help="terminal: the coordinator's id (W001)")
    issue.add_argument("--device-id", help="terminal: the device id (SZT-0001)")
    issue.add_argument("--expires-in-days", type=float, default=365, help="validity (default 365 days; 0: no expiry)")
    issue.add_argument("--token", help="use this token instead of a random one (development only: refused by the production profile)")
    revoke = sub.add_parser("revoke", help="revoke a credential everywhere")
    revoke.add_argument("token", help="the token (or its SHA-256 in hex)")
    revoke.add_argument("--reason", default="revoked by an administrator")
    demo = sub.add_parser("seed-demo", help="issue the fixed demo credentials of ./dev up (refused in production)")
    demo_key = sub.add_parser("demo-key", help="print the fixed signing key of a demo owner, terminal or hotline "
                                               "credential, to sign its Kafka messages (refused in production)")
    demo_key.add_argument("token", help="the demo token, e.g. demo-owner-huanwei")
    demo.add_argument("--street", type=Path, default=settings.street_dir,
                      help=f"street folder whose owners get demo-owner-<code> (default {settings.street_dir})")
    args = parser.parse_args(argv)
    if args.command == "demo-key":
        return _print_demo_key(settings, args.token)
    try:
        signer_for(settings, ADMIN)
        unsigned = None
    except SigningKeyError as exc:
        unsigned = f"cannot sign the registry: {exc}"
    try:
        if args.command == "issue":
            if args.role == "owner" and not args.owner_code:
                parser.error("an owner credential needs --owner-code")
            if args.role == "terminal" and not (args.worker_id and args.device_id):
                parser.error("a terminal credential needs --worker-id and --device-id")
            if args.token and settings.profile == "production":
                # A chosen token is a guessable or reused one; production tokens are random and shown once.
                print("the production profile refuses --token: issue without it and hand over the printed token",
                      file=sys.stderr)
                return 2
            if unsigned:
                print(unsigned, file=sys.stderr)
                return 2
            token = args.token or secrets.token_urlsafe(32)
            expires = now() + timedelta(days=args.expires_in_days) if args.expires_in_days > 0 else None
            # A machine that publishes on Kafka (an owner's system, a terminal gateway, the hotline bridge) signs
            # with a key of its own: the registry gets the public half, the private half is printed here, once.
            signing = Ed25519PrivateKey.generate() if args.role in SIGNING_ROLES else None
            event = issued(token, name=args.name, role=args.role, owner_code=args.owner_code, worker_id=args.worker_id,
                           device_id=args.device_id, expires_at=expires, signing_key=signing)
            asyncio.run(publish(settings, [event]))
            print(token)
            if signing is not None:
                print(f"signing-key-id {key_id(signing)}")
                print(f"signing-key {encode_private(signing)}")
                print("(the signing key signs this machine's Kafka messages: shown once, stored nowhere; "
                      "docs/ARCHITECTURE.md, \"Kafka writes\")", file=sys.stderr)
        elif args.command == "revoke":
            if unsigned:
                print(unsigned, file=sys.stderr)
                return 2
            digest = args.token if len(args.token) == 64 and all(c in "0123456789abcdef" for c in args.token) \
                else token_hash(args.token)
            asyncio.run(publish(settings, [CredentialRevoked(token_sha256=digest, reason=args.reason)]))
            print(f"revoked {digest[:12]}…; every service refuses it within seconds")
        else:
            if settings.profile == "production":
                print("the production profile refuses demo credentials: issue real ones with `issue`", file=sys.stderr)
                return 1
            clients = demo_clients(args.street)
            # The machines among them (owners, the terminal, the hotline) get their fixed signing key, so that what
            # they publish on Kafka is signed as production requires (demo_signing_key).
            events = [issued(c["token"], demo=True, signing_key=demo_signing_key(c["token"])
                             if c["role"] in SIGNING_ROLES else None,
                             **{k: v for k, v in c.items() if k != "token"}) for c in clients]
            asyncio.run(publish(settings, events))
            fixed = len(DEMO_CLIENTS)
            for c in clients[:fixed]:
                print(f"{c['role']:<9} {c['token']}  ({c['name']})")
            print(f"owner     demo-owner-<code> for {len(clients) - fixed} owners (e.g. {clients[fixed]['token']})")
            print("signing keys of the owners, terminal and hotline (their Kafka messages): "
                  "python -m shared.credentials demo-key <token>")
    except StreetDataError as exc:
        print(f"cannot read the street: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncio.TimeoutError, Exception) as exc:  # noqa: BLE001 — a CLI explains, it does not dump a trace
        print(f"could not publish to Kafka at {settings.kafka_bootstrap}: {exc!r}. Is it running? Try ./dev infra",
              file=sys.stderr)
        return 1
    return 0


def _print_demo_key(settings: Settings, token: str) -> int:
    """`demo-key TOKEN`: the demo credential's signing key, as `issue` prints a real one's."""
    if settings.profile == "production":
        print("the production profile refuses demo credentials and their keys", file=sys.stderr)
        return 1
    machines = {c["token"] for c in DEMO_CLIENTS if c["role"] in SIGNING_ROLES}
    if token not in machines and not token.startswith("demo-owner-"):
        print(f"{token!r} is not a demo owner, terminal or hotline token (demo-owner-<code>, "
              f"{', '.join(sorted(machines))})", file=sys.stderr)
        return 2
    key = demo_signing_key(token)
    print(f"signing-key-id {key_id(key)}")
    print(f"signing-key {encode_private(key)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
