"""Credentials every service checks: bearer tokens with a role, learnt from wangge.credentials.

One registry for all four services (see docs/ARCHITECTURE.md, "Credentials"): the credentials CLI
publishes credential.issued / credential.revoked on the compacted topic; each service folds them
into its own `credentials` table (shared/sql/001_credentials.sql) and checks every request against
it, so a revocation takes effect everywhere as soon as the consumers have read it (about a second).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Awaitable, Callable

import asyncpg
from fastapi import Depends, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.clock import now
from shared.consumer import current_record
from shared.contracts import Envelope, InvalidMessage, parse_event
from shared.contracts.credentials import CredentialIssued, CredentialRevoked
from shared.signing import (
    CREDENTIAL_ISSUERS, SIGNER_HEADER, credential_signer, key_id_of, record_signer, signed_by, verify_with,
)
from shared.uow import UnitOfWork

# The services that issue sessions, and the roles they issue (shared/signing.CREDENTIAL_ISSUERS).
SESSION_ISSUERS = {who: roles for who, (roles, _) in CREDENTIAL_ISSUERS.items()}

CREDENTIAL_TYPES = frozenset({CredentialIssued.TYPE, CredentialRevoked.TYPE})

_bearer = HTTPBearer(auto_error=False, description="a credential's token (Authorization: Bearer …)")

# People sign in (supervision's POST /api/v1/sessions) and get this cookie: a random session id that is itself a
# short-lived credential of the registry, so every service checks it exactly like a bearer token. A browser sends
# a cookie with requests other sites make it send, so a cookie alone never authorizes an unsafe method: the page
# adds CSRF_HEADER, which a cross-site form cannot set (and a cross-site fetch cannot without CORS, which no
# service allows).
SESSION_COOKIE = "wangge_session"
CSRF_HEADER = "X-Requested-With"
CSRF_VALUE = "wangge"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Client:
    """Who is calling: the credential's name, role and, for owners and terminals, what it is bound to."""

    name: str
    role: str
    owner_code: str | None = None
    worker_id: str | None = None
    device_id: str | None = None
    # The credential's own unique id (credential_id: derived from the token's hash, never the hash itself) and who
    # signed its registry event (admin, supervision, notify; None: learnt before that was kept).
    credential_id: str | None = None
    issuer: str | None = None

    @property
    def actor(self) -> str:
        """How the history names this caller: operator:<name>, owner:<code>, …"""
        return f"owner:{self.owner_code}" if self.role == "owner" and self.owner_code else f"{self.role}:{self.name}"

    @property
    def sender_scope(self) -> str:
        """Whose reports and comments these are, as the scope of their idempotency keys (source, external_id).

        A name is not unique: the administrators' CLI takes any --name, so two machine credentials (or a machine
        and a person) may share one, and a scope by name would hand one client the other's case for a re-used
        external_id, or drop its report. So a credential the admin key issued is its own scope (its id). A session
        is its person's, whose name the issuing service keeps unique and the same across sign-ins (supervision: the
        account's username; notify: the resident's opaque id), so a report re-sent after signing in again is still
        one case. A resident is always their id: that is how intake finds a resident's own cases."""
        if self.role == "resident" or (self.issuer in SESSION_ISSUERS and self.role in SESSION_ISSUERS[self.issuer]):
            return f"{self.role}:{self.name}"
        return f"credential:{self.credential_id}" if self.credential_id else f"{self.role}:{self.name}"


def credential_id(token_sha256: str) -> str:
    """A credential's unique id, for scopes and logs: derived from its token's hash so that it is stable, one-way so
    that storing it spreads nothing the registry's key could be taken for."""
    return "c" + hashlib.sha256(b"wangge-credential-id:" + token_sha256.encode()).hexdigest()[:24]


def token_hash(token: str) -> str:
    """The only form in which a token is stored or sent: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


# A publisher's clock may run a little ahead; an event dated further in the future than this is refused.
MAX_CLOCK_SKEW = timedelta(minutes=5)


async def apply_credential_event(envelope: Envelope, uow: UnitOfWork) -> None:
    """Fold credential.issued / credential.revoked into this service's table, in the registry's order.

    The order is the event's offset on wangge.credentials (one partition), never its `occurred_at`: a
    publisher's clock (or a forged date) must not decide which of an issue and a revocation is the later one,
    and the offset is also what compaction keeps, so every service, replaying or not, ends with the same row.
    An issue dated beyond MAX_CLOCK_SKEW in the future is refused (to the rejected topic). A revocation is
    applied whatever its date: it can only take access away.
    """
    event = parse_event(envelope)
    record = current_record()
    if record is None:
        raise RuntimeError("credential events are applied from wangge.credentials only: the order is its offset")
    position = record.offset
    if isinstance(event, CredentialIssued):
        if (event.signing_key_id is None) != (event.signing_public_key is None) or (
                event.signing_public_key is not None and event.signing_key_id != key_id_of(event.signing_public_key)):
            raise InvalidMessage("credential.issued: signing_key_id and signing_public_key come together, the id "
                                 "derived from the key (shared/signing.key_id)")
        if envelope.occurred_at > now() + MAX_CLOCK_SKEW:
            raise InvalidMessage(f"credential.issued dated in the future ({envelope.occurred_at.isoformat()}): "
                                 f"refused; a publisher's clock may be at most {MAX_CLOCK_SKEW} ahead")
        await uow.conn.execute(
            """INSERT INTO credentials (token_sha256, name, role, owner_code, worker_id, device_id, expires_at, demo,
                                        revoked_at, revoke_reason, event_at, registry_offset, signing_key_id,
                                        signing_public_key, issuer)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, $9, $10, $11, $12, $13)
               ON CONFLICT (token_sha256) DO UPDATE SET
                   name = EXCLUDED.name, role = EXCLUDED.role, owner_code = EXCLUDED.owner_code,
                   worker_id = EXCLUDED.worker_id, device_id = EXCLUDED.device_id, expires_at = EXCLUDED.expires_at,
                   demo = EXCLUDED.demo, revoked_at = NULL, revoke_reason = NULL, event_at = EXCLUDED.event_at,
                   registry_offset = EXCLUDED.registry_offset, signing_key_id = EXCLUDED.signing_key_id,
                   signing_public_key = EXCLUDED.signing_public_key, issuer = EXCLUDED.issuer, updated_at = now()
               WHERE credentials.registry_offset IS NULL OR credentials.registry_offset < EXCLUDED.registry_offset""",
            event.token_sha256, event.name, event.role, event.owner_code, event.worker_id, event.device_id,
            event.expires_at, event.demo, envelope.occurred_at, position, event.signing_key_id,
            event.signing_public_key, record_signer(record.headers),
        )
    elif isinstance(event, CredentialRevoked):
        # revoked_at is when this service learnt it (the publisher's date is only informative). A service that
        # issues sessions (supervision, notify: shared/signing.py) ends only credentials of its own roles; the
        # consumer has checked the signature, so the signer the record names is the one that signed it.
        issuer = CREDENTIAL_ISSUERS.get(record_signer(record.headers) or "")
        roles = sorted(issuer[0]) if issuer is not None else None
        await uow.conn.execute(
            """INSERT INTO credentials (token_sha256, name, role, revoked_at, revoke_reason, event_at, registry_offset)
               VALUES ($1, '(revoked before issued)', 'none', now(), $3, $2, $4)
               ON CONFLICT (token_sha256) DO UPDATE SET revoked_at = now(), revoke_reason = $3, event_at = $2,
                   registry_offset = $4, updated_at = now()
               WHERE (credentials.registry_offset IS NULL OR credentials.registry_offset < $4)
                 AND ($5::text[] IS NULL OR credentials.role = ANY($5::text[]))""",
            event.token_sha256, envelope.occurred_at, event.reason, position, roles,
        )
    else:
        raise InvalidMessage(f"wangge.credentials carries credential.issued/revoked only, not {envelope.type!r}")


async def client_by_token(pool: asyncpg.Pool, token: str, *, production: bool, at: datetime | None = None) -> Client | None:
    """The client a token stands for now, or None (unknown, revoked, expired, or a demo token in production)."""
    row = await pool.fetchrow(
        """SELECT name, role, owner_code, worker_id, device_id, token_sha256, issuer FROM credentials
           WHERE token_sha256 = $1 AND revoked_at IS NULL
             AND (expires_at IS NULL OR expires_at > coalesce($2, now()))
             AND NOT (demo AND $3)""",
        token_hash(token), at, production,
    )
    return _client(row) if row else None


def _client(row: asyncpg.Record) -> Client:
    values = dict(row)
    values.pop("signing_public_key", None)
    digest = values.pop("token_sha256")
    return Client(**values, credential_id=credential_id(digest))


def set_session_cookie(response: Response, token: str, *, max_age: int, production: bool) -> None:
    """The session cookie, for people and residents alike: script cannot read it (HttpOnly), no other site's request
    carries it (SameSite=Strict), and in production it travels over HTTPS only (Secure)."""
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, path="/", httponly=True, samesite="strict",
                        secure=production)


def clear_session_cookie(response: Response, *, production: bool) -> None:
    """Sign-out's answer: the browser forgets the cookie (named with the flags it was set with)."""
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=production)


def bearer_token(request: Request) -> str | None:
    """The Authorization: Bearer token of this request, if any."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def session_token(request: Request) -> str | None:
    """The session cookie's value, if the request carries one."""
    return request.cookies.get(SESSION_COOKIE) or None


def presented_token(request: Request) -> str | None:
    """The credential of this request, bearer first, else the session cookie (for a long answer that must re-check
    it while it lasts)."""
    return bearer_token(request) or session_token(request)


def csrf_refusal(request: Request) -> HTTPException | None:
    """Why a cookie-authenticated request may not do this (an unsafe method without the page's header), or None."""
    if request.method in UNSAFE_METHODS and request.headers.get(CSRF_HEADER) != CSRF_VALUE:
        return HTTPException(403, f"a signed-in page must send {CSRF_HEADER}: {CSRF_VALUE} with this request "
                                  "(跨站请求被拒绝)")
    return None


async def end_session(request: Request, sign_out: Callable[[str | None], Awaitable[object]], *,
                      production: bool) -> Response:
    """Sign-out, for people and residents alike: the session ends everywhere (`sign_out(token)`) and the cookie is
    cleared; 204 also when there was none. Only the page may ask it (CSRF header), as for any unsafe method."""
    token = session_token(request)
    if token is not None and (refused := csrf_refusal(request)) is not None:
        raise refused
    await sign_out(token)
    response = Response(status_code=204)
    clear_session_cookie(response, production=production)
    return response


def require(*roles: str) -> Callable[..., object]:
    """A FastAPI dependency admitting a valid credential of one of these roles: 401 without one, 403 for another role."""

    async def check(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Client:
        # A bearer token is sent by code that chose to (a machine, curl): no CSRF question. A cookie is sent by the
        # browser on its own, so an unsafe method needs the page's header as well.
        token = credentials.credentials if credentials is not None else session_token(request)
        if token is None:
            raise HTTPException(401, "missing credential: sign in, or send Authorization: Bearer <token> (需要凭证，请登录)",
                                headers={"WWW-Authenticate": "Bearer"})
        if credentials is None and (refused := csrf_refusal(request)) is not None:
            raise refused
        runtime = request.app.state.runtime
        client = await client_by_token(runtime.pool, token, production=runtime.settings.profile == "production")
        if client is None:
            reason = ("unknown, expired or revoked credential (凭证无效)" if credentials is not None
                      else "the session ended or expired: sign in again (登录已失效，请重新登录)")
            raise HTTPException(401, reason, headers={"WWW-Authenticate": "Bearer"})
        if client.role not in roles:
            raise HTTPException(403, f"role {client.role!r} may not do this; needs {' or '.join(roles)} (无权限)")
        return client

    return check


# ---- machines' messages on Kafka: who sent them ----------------------------------------------
# Kafka does not tell a consumer which principal produced a record, and every owner may write
# wangge.task-updates (every bridge wangge.reports). So a machine credential signs each record with its own
# Ed25519 key (issued with it; shared/signing.py): header wangge-signer = the key id, wangge-ed25519 = the
# signature over the record's value. The registry holds only the public key, so whoever reads it — or any
# service's table — can check a signature and never make one. The first scheme (an HMAC keyed with the token's
# SHA-256, header wangge-credential) is refused: that digest travels on the registry and keys every table.
OLD_CREDENTIAL_HEADER = "wangge-credential"
CREDENTIAL_HEADER = OLD_CREDENTIAL_HEADER  # kept for readers of the old name
SIGNING_ROLES = ("owner", "terminal", "hotline")  # machine credentials issued with a signing key


def sign_update(private_key: str, value: bytes, *, topic: str, key: bytes | str | None) -> list[tuple[str, bytes]]:
    """The Kafka headers that prove `value`, on `topic` under `key`, was sent by the holder of this credential's
    signing key (as printed when the credential was issued). The topic and key are signed too (shared/signing.py
    signed_bytes): the same update copied onto another topic or under another key does not verify."""
    return credential_signer(private_key).headers(value, topic=topic, key=key)


def is_signed(headers: dict[str, bytes]) -> bool:
    """Whether a record carries a signature of either scheme (then it is checked even where signing is optional)."""
    return SIGNER_HEADER in headers or OLD_CREDENTIAL_HEADER in headers


async def update_signer(conn: asyncpg.Connection, headers: dict[str, bytes], value: bytes, *,
                        production: bool, topic: str, key: bytes | str | None) -> Client | str:
    """The credential whose signing key signed this record (its value on `topic` under `key`), or why it is not
    validly signed."""
    if OLD_CREDENTIAL_HEADER in headers and SIGNER_HEADER not in headers:
        return ("signed with the token-hash HMAC, which is no longer accepted (anyone who reads the registry could "
                "make it): sign with the credential's Ed25519 key (wangge-signer, wangge-ed25519)")
    named = signed_by(headers.items())
    if isinstance(named, str):
        return named
    kid, signature = named
    row = await conn.fetchrow(
        """SELECT name, role, owner_code, worker_id, device_id, token_sha256, issuer, signing_public_key FROM credentials
           WHERE signing_key_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
             AND NOT (demo AND $2) AND signing_public_key IS NOT NULL
           ORDER BY registry_offset DESC NULLS LAST LIMIT 1""",
        kid, production,
    )
    if row is None:
        return "signed with an unknown, expired or revoked key"
    if not verify_with(row["signing_public_key"], signature, value, topic=topic, key=key):
        if verify_with(row["signing_public_key"], signature, value, topic=None, key=None):
            return ("signed over the value alone (the format before topics and keys were signed), which could have "
                    "been copied from any topic: sign with the topic and key (shared.auth.sign_update)")
        return "the signature does not match the message, its topic and key, and the signing key"
    return _client(row)
