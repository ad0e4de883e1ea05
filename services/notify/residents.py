"""Residents on the web (/my/): a phone proven by a one-time SMS code gets a session; the resident's own cases;
the survey answered from the signed link of the survey SMS.

notify does this because it alone holds residents' phones (DESIGN "Personal data"). The session is a credential of
the registry like people's (services/supervision/people.py): credential.issued with role `resident` and, as its
name, the opaque resident id (shared/residents.py), so intake accepts the cookie for photos and reports and can
check the phone a report gives against it, while the phone itself never leaves notify.

Guessing is bounded three ways: a code is 6 digits and dies after 5 wrong tries or 5 minutes; a phone and a client
address may ask for only so many codes an hour (an SMS costs money and annoys its owner); a client address's wrong
codes are counted over all phones. Neither the code nor the full phone is ever logged.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared.auth import token_hash
from shared.clock import now
from shared.contracts.credentials import CredentialIssued, CredentialRevoked
from shared.personal_data import mask_phone_number, sms_number
from shared.residents import code_hash, new_code, resident_id
from shared.runtime import ServiceRuntime

from services.notify.adapters import resident_store as store
from services.notify.adapters.channels import SmsChannel
from services.notify.domain.delivery import Message, Outcome
from services.notify.handlers import SOURCE
from services.notify.metrics import RESIDENT_CODES, SERVICE

log = logging.getLogger(__name__)

REGISTRY_WAIT_SECONDS = 15.0
# Wrong codes from one client address within the code window, over all phones, before it must wait.
MAX_WRONG_PER_ADDRESS = 20


class ResidentRefused(Exception):
    """HTTP status, a reason a resident can read, and for 429 the seconds to wait."""

    def __init__(self, status: int, reason: str, retry_after: int | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class ResidentSession:
    token: str  # the cookie's value: given to the browser once, stored nowhere (only its hash)
    me: dict[str, Any]


def me(rid: str, phone_norm: str, expires_at: Any) -> dict[str, Any]:
    """What the page reads about the signed-in resident: the phone is theirs, shown back to them only."""
    return {"resident_id": rid, "phone": phone_norm, "phone_masked": mask_phone_number(phone_norm),
            "expires_at": expires_at}


class Residents:
    def __init__(self, runtime: ServiceRuntime):
        self.runtime = runtime
        self.settings = runtime.settings
        self.key = runtime.settings.resident_secret()

    def _phone(self, phone: str) -> str:
        number = sms_number(phone)
        if number is None:
            raise ResidentRefused(422, "a mainland mobile number is needed: the code comes by SMS "
                                       "(请输入11位手机号码，验证码将以短信发送)")
        return number

    async def send_code(self, phone: str, client_ip: str) -> dict[str, Any]:
        """Text a new one-time code to the phone, within the per-phone and per-address limits."""
        number = self._phone(phone)
        at = now()
        window = timedelta(seconds=self.settings.resident_code_window_seconds)
        code = new_code()
        async with self.runtime.uow() as uow:
            # One phone at a time (two requests racing must not both pass the count).
            await uow.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('resident-code:' || $1, 0))", number)
            by_phone, by_ip = await store.codes_asked(uow.conn, phone_norm=number, client_ip=client_ip,
                                                      since=at - window)
            if by_phone >= self.settings.resident_code_phone_limit or by_ip >= self.settings.resident_code_address_limit:
                RESIDENT_CODES.labels(SERVICE, "throttled").inc()
                raise ResidentRefused(429, "too many codes asked for; try again later (验证码请求过于频繁，请稍后再试)",
                                      int(window.total_seconds()))
            await store.add_code(uow.conn, phone_norm=number, code_hash=code_hash(self.key, number, code),
                                 client_ip=client_ip, expires_at=at + timedelta(seconds=self.settings.resident_code_seconds),
                                 forget_before=at - 2 * window)
            await uow.commit()
        minutes = max(1, round(self.settings.resident_code_seconds / 60))
        text = f"【{self.settings.sms_signature}】您的验证码是{code}，{minutes}分钟内有效，请勿告诉他人。"
        async with SmsChannel(self.settings.sms_gateway_url) as channel:
            result = await channel.send(Message(ref=f"code-{uuid.uuid4()}", to=number, text=text))
        if result.outcome is not Outcome.DELIVERED:
            RESIDENT_CODES.labels(SERVICE, "unsent").inc()
            log.warning("resident code to %s not sent: %s", mask_phone_number(number), result.detail)
            raise ResidentRefused(503, "the SMS could not be sent now; try again shortly (短信暂时无法发送，请稍后重试)")
        RESIDENT_CODES.labels(SERVICE, "sent").inc()
        log.info("resident code sent to %s", mask_phone_number(number))
        return {"phone": mask_phone_number(number), "expires_in": int(self.settings.resident_code_seconds)}

    async def sign_in(self, phone: str, code: str, client_ip: str) -> ResidentSession:
        """Check the code; a right one opens a session (a registry credential), a wrong one counts."""
        number = self._phone(phone)
        at = now()
        async with self.runtime.uow() as uow:
            if await store.failures_of(uow.conn, client_ip, at - timedelta(seconds=self.settings.resident_code_window_seconds)) \
                    >= MAX_WRONG_PER_ADDRESS:
                RESIDENT_CODES.labels(SERVICE, "throttled").inc()
                raise ResidentRefused(429, "too many wrong codes; try again later (验证码错误次数过多，请稍后再试)",
                                      int(self.settings.resident_code_window_seconds))
            row = await store.live_code_for_update(uow.conn, number, at, self.settings.resident_code_tries)
            good = row is not None and secrets.compare_digest(row["code_hash"], code_hash(self.key, number, code))
            if not good:
                await store.wrong_try(uow.conn, row["id"] if row else None, client_ip)
                await uow.commit()
                RESIDENT_CODES.labels(SERVICE, "wrong").inc()
                raise ResidentRefused(401, "wrong or expired code; ask for a new one if needed "
                                           "(验证码错误或已过期，请重新获取)")
            await store.use_code(uow.conn, row["id"])
            token = secrets.token_urlsafe(32)
            digest = token_hash(token)
            rid = resident_id(self.key, number)
            expires_at = at + timedelta(hours=self.settings.resident_session_hours)
            await store.add_session(uow.conn, digest=digest, resident_id=rid, phone_norm=number, expires_at=expires_at)
            event = CredentialIssued(token_sha256=digest, name=rid, role="resident", expires_at=expires_at)
            uow.emit(self.runtime.topics.credentials, event.envelope(source=SOURCE), key=digest)
            await uow.commit()
        await self._until_usable(digest)
        RESIDENT_CODES.labels(SERVICE, "proven").inc()
        return ResidentSession(token, me(rid, number, expires_at))

    async def _until_usable(self, digest: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REGISTRY_WAIT_SECONDS
        while not await store.usable(self.runtime.pool, digest):
            if loop.time() > deadline:
                raise ResidentRefused(503, "signed in, but the session is not usable yet; try again "
                                           "(会话尚未生效，请稍后重试)")
            await asyncio.sleep(0.05)

    async def current(self, token: str | None) -> dict[str, Any] | None:
        if not token:
            return None
        row = await store.session(self.runtime.pool, token_hash(token))
        return me(row["resident_id"], row["phone_norm"], row["expires_at"]) if row else None

    async def sign_out(self, token: str | None) -> None:
        if not token:
            return
        digest = token_hash(token)
        async with self.runtime.uow() as uow:
            if await store.end_session(uow.conn, digest):
                event = CredentialRevoked(token_sha256=digest, reason="signed out (已退出登录)")
                uow.emit(self.runtime.topics.credentials, event.envelope(source=SOURCE), key=digest)
            await uow.commit()
