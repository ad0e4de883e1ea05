"""People sign in as people: accounts, sessions, and guessing slowed and locked.

A session is a short-lived credential of the registry every service already checks (shared/auth.py): signing in
makes a random session id (the cookie's value), stores its SHA-256 with the account and publishes
credential.issued (that hash, the account's role and bindings, expires_at) through the outbox in the same
transaction; signing out, disabling the account or changing its password publishes credential.revoked. So the
cookie is accepted by intake, routing, supervision and notify alike, and a revocation ends it everywhere.

Sign-in answers only once supervision's own consumer has applied the session from the registry: the session is then
usable here, and the other services, which read the same one-partition topic, have in practice read it as well (the
residual window — another service's consumer lagging behind supervision's — is documented in ARCHITECTURE.md).
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from services.supervision.adapters import account_store as store
from services.supervision.domain import accounts as domain
from services.supervision.metrics import SIGN_INS
from shared.auth import token_hash
from shared.clock import Clock
from shared.contracts.credentials import CredentialIssued, CredentialRevoked
from shared.settings import Settings
from shared.street import Street
from shared.topics import Topics
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

DEMO_PASSWORD = "wangge-demo"
# Ended and expired sessions stay this long (who signed in when, from where), then a sign-in forgets them.
SESSION_RECORD_KEPT = timedelta(days=90)
# How long sign-in waits for supervision's consumer to apply the new session from the registry.
REGISTRY_WAIT_SECONDS = 15.0


class SignInRefused(Exception):
    """Sign-in refused: HTTP status, a reason people can read, and (for a lock) the seconds until it lifts."""

    def __init__(self, status: int, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class SignedIn:
    token: str           # the cookie's value: shown to the browser once, stored nowhere
    me: dict[str, Any]


def _locked(retry_after: float) -> SignInRefused:
    minutes = max(1, round(retry_after / 60))
    return SignInRefused(429, f"too many sign-in attempts; try again in {minutes} min "
                              f"(登录尝试次数过多，请 {minutes} 分钟后再试)", retry_after)


WRONG = "wrong username or password (用户名或密码错误)"


class People:
    """Accounts and sessions over supervision's tables; registry events through its outbox."""

    def __init__(self, pool: Any, topics: Topics, street: Street, settings: Settings, clock: Clock | None = None):
        self._pool = pool  # a pool, or a callable giving the runtime's (started later)
        self.clock = clock or Clock()  # the service's: sessions end and locks lift by its moment
        self.topics = topics
        self.street = street
        self.settings = settings
        self.hasher = PasswordHasher()
        # Unknown usernames are checked against this, so they cost what a known one costs (no timing oracle).
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        self.username_policy = domain.GuardPolicy(settings.sign_in_limit, timedelta(seconds=settings.sign_in_window_seconds),
                                                  timedelta(seconds=settings.sign_in_lock_seconds))
        self.address_policy = domain.GuardPolicy(settings.sign_in_address_limit,
                                                 timedelta(seconds=settings.sign_in_window_seconds),
                                                 timedelta(seconds=settings.sign_in_lock_seconds))

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool() if callable(self._pool) else self._pool

    @property
    def production(self) -> bool:
        return self.settings.profile == "production"

    # ---- passwords -------------------------------------------------------------------------------------------

    async def hash_password(self, password: str) -> str:
        """argon2id of a password, off the event loop (a third of a second of CPU)."""
        return await asyncio.to_thread(self.hasher.hash, domain.check_password(password))

    async def _verify(self, password_hash: str, password: str) -> bool:
        def verify() -> bool:
            try:
                return self.hasher.verify(password_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False
        return await asyncio.to_thread(verify)

    # ---- sessions ----------------------------------------------------------------------------------------------

    async def sign_in(self, username: str, password: str, address: str) -> SignedIn:
        """Check a password and open a session; SignInRefused (401 wrong, 429 locked, 403 disabled/demo) otherwise."""
        try:
            signed = await self._sign_in(username, password, address)
        except SignInRefused as refused:
            outcome = {401: "wrong", 429: "locked", 403: "refused"}.get(refused.status, "unavailable")
            SIGN_INS.labels("supervision", outcome).inc()
            raise
        SIGN_INS.labels("supervision", "ok").inc()
        return signed

    async def _sign_in(self, username: str, password: str, address: str) -> SignedIn:
        username = domain.normal_username(username)
        at = self.clock.now()
        # Count the attempt first, against the address and the username (known or not), in one transaction.
        async with self.pool.acquire() as conn, conn.transaction():
            by_address = domain.claim(await store.guard_for_update(conn, "address", address), at, self.address_policy)
            if not by_address.allowed:
                raise _locked(by_address.retry_after)
            by_name = domain.claim(await store.guard_for_update(conn, "username", username[:100]), at,
                                   self.username_policy)
            if not by_name.allowed:
                raise _locked(by_name.retry_after)
            await store.save_guard(conn, "address", address, by_address.guard)
            await store.save_guard(conn, "username", username[:100], by_name.guard)
            account = await store.account(conn, username)
        # Too long a password is refused only after it was counted and "checked" (a wrong guess is a wrong guess).
        good = await self._verify(account["password_hash"] if account else self._dummy_hash,
                                  password[:domain.MAX_PASSWORD_CHARS])
        if not good or account is None or len(password) > domain.MAX_PASSWORD_CHARS:
            async with self.pool.acquire() as conn:
                await store.prune_guards(conn, at - timedelta(days=1))
            if by_name.locks_now or by_address.locks_now:
                lock = max(g.guard.locked_until for g in (by_name, by_address) if g.guard.locked_until is not None)
                raise _locked((lock - at).total_seconds())
            # The delay follows the username's failures (an office behind one address is not slowed by a
            # colleague's typos; the address has its own lock).
            await asyncio.sleep(self.username_policy.delay(by_name.guard.attempts))
            raise SignInRefused(401, WRONG)
        if account["disabled_at"] is not None:
            raise SignInRefused(403, "this account is disabled (账户已停用，请联系管理员)")
        if account["demo"] and self.production:
            raise SignInRefused(403, "demo accounts are refused by the production profile (生产环境不允许演示账户)")
        token = secrets.token_urlsafe(32)
        digest = token_hash(token)
        expires_at = at + timedelta(hours=self.settings.session_hours)
        async with UnitOfWork(self.pool) as uow:
            await store.forgive(uow.conn, username, address)
            await store.prune_sessions(uow.conn, at - SESSION_RECORD_KEPT)
            await store.insert_session(uow.conn, digest, username, expires_at, address)
            self._issue(uow, account, digest, expires_at)
            await uow.commit()
        await self._until_usable(digest)
        return SignedIn(token, self.me(account, expires_at))

    def _issue(self, uow: UnitOfWork, account: asyncpg.Record, digest: str, expires_at: Any) -> None:
        event = CredentialIssued(token_sha256=digest, name=account["username"], role=account["role"],
                                 owner_code=account["owner_code"], worker_id=account["worker_id"],
                                 expires_at=expires_at, demo=account["demo"])
        uow.emit(self.topics.credentials, event.envelope(source="supervision"), key=digest)

    def _revoke(self, uow: UnitOfWork, digests: list[str], reason: str) -> None:
        for digest in digests:
            event = CredentialRevoked(token_sha256=digest, reason=reason)
            uow.emit(self.topics.credentials, event.envelope(source="supervision"), key=digest)

    async def _until_usable(self, digest: str) -> None:
        """Wait until supervision's consumer has applied the session from the registry (then every request with the
        cookie succeeds here, and the other services read the same topic alongside)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REGISTRY_WAIT_SECONDS
        while not await self.pool.fetchval(
                "SELECT 1 FROM credentials WHERE token_sha256 = $1 AND registry_offset IS NOT NULL "
                "AND revoked_at IS NULL", digest):
            if loop.time() > deadline:
                raise SignInRefused(503, "signed in, but the session is not usable yet: Kafka is slow; try again "
                                         "(会话尚未生效，请稍后重试)")
            await asyncio.sleep(0.05)

    async def current(self, token: str | None) -> dict[str, Any] | None:
        """Who the session cookie stands for, or None (none, unknown, ended, expired, or a disabled account)."""
        if not token:
            return None
        row = await store.session(self.pool, token_hash(token), self.clock.now())
        if row is None or (row["demo"] and self.production):
            return None
        return self.me(row, row["expires_at"])

    async def sign_out(self, token: str | None) -> None:
        """End the session (idempotent) and revoke it everywhere."""
        if not token:
            return
        digest = token_hash(token)
        async with UnitOfWork(self.pool) as uow:
            if await store.end_session(uow.conn, digest, "signed out"):
                self._revoke(uow, [digest], "signed out (已退出登录)")
            await uow.commit()

    def me(self, account: Any, expires_at: Any) -> dict[str, Any]:
        """The session answer the pages read (web/src/common/session.js)."""
        return {"username": account["username"], "display_name": account["display_name"], "role": account["role"],
                "owner_code": account["owner_code"], "worker_id": account["worker_id"],
                "unit_grids": list(self.street.coordinator_grids().get(account["worker_id"], ())) if account["role"] == "terminal" else [],
                "expires_at": expires_at}

    # ---- accounts ----------------------------------------------------------------------------------------------

    async def add(self, *, username: str, display_name: str, kind: str, password: str, owner_code: str | None = None,
                  worker_id: str | None = None, demo: bool = False, password_hash: str | None = None,
                  replace: bool = False) -> dict[str, Any]:
        """A new account (AccountError: why not; the username taken is one)."""
        username = domain.check_username(domain.normal_username(username))
        display_name = display_name.strip()
        if not display_name or len(display_name) > 100:
            raise domain.AccountError("display_name: 1-100 characters (姓名不能为空)")
        bound = domain.binding(self.street, kind, owner_code, worker_id)
        hashed = password_hash or await self.hash_password(password)
        async with UnitOfWork(self.pool) as uow:
            if not await store.insert_account(uow.conn, username=username, display_name=display_name, kind=kind,
                                              role=bound.role, owner_code=bound.owner_code, worker_id=bound.worker_id,
                                              password_hash=hashed, demo=demo, replace=replace):
                raise domain.AccountError(f"username {username!r} is taken (用户名已存在)")
            await uow.commit()
        return await self.view(username)

    async def view(self, username: str) -> dict[str, Any] | None:
        rows = [r for r in await self.list() if r["username"] == username]
        return rows[0] if rows else None

    async def list(self) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            return [{**dict(r), "disabled": r["disabled_at"] is not None, "kind_label": domain.KIND_LABELS[r["kind"]]}
                    for r in await store.accounts(conn)]

    async def set_disabled(self, username: str, disabled: bool) -> bool:
        """Disable (ending every session of it, everywhere) or enable an account; False if there is none."""
        username = domain.normal_username(username)
        async with UnitOfWork(self.pool) as uow:
            if not await store.set_disabled(uow.conn, username, disabled):
                return False
            if disabled:
                self._revoke(uow, await store.end_sessions_of(uow.conn, username, "account disabled"),
                             "account disabled (账户已停用)")
            await uow.commit()
        return True

    async def set_password(self, username: str, password: str) -> bool:
        """A new password: the account's sessions end (whoever knew the old one is out) and its lock is lifted."""
        username = domain.normal_username(username)
        hashed = await self.hash_password(password)
        async with UnitOfWork(self.pool) as uow:
            if not await store.set_password(uow.conn, username, hashed):
                return False
            self._revoke(uow, await store.end_sessions_of(uow.conn, username, "password changed"),
                         "password changed (密码已更改)")
            await store.unlock(uow.conn, username)
            await uow.commit()
        return True

    async def seed_demo(self) -> list[dict[str, Any]]:
        """The demo people of DESIGN.md (password wangge-demo, demo-flagged): operator, w001, one per owner code."""
        hashed = await self.hash_password(DEMO_PASSWORD)  # one hash for all: the password is public anyway
        people = [("operator", "指挥中心值班员", "operator", None, None)]
        w001 = next((p for p in self.street.people if p.person_id == "W001"), None)
        if w001 is not None:
            people.append(("w001", w001.name, "coordinator", None, "W001"))
        people += [(code.lower(), name, "owner", code, None)
                   for code, name in sorted(domain.owner_codes(self.street).items())]
        made = []
        for username, name, kind, owner_code, worker_id in people:
            made.append(await self.add(username=username, display_name=name, kind=kind, password=DEMO_PASSWORD,
                                       owner_code=owner_code, worker_id=worker_id, demo=True, password_hash=hashed,
                                       replace=True))
        return made
