"""Residents on the web (/my/): a phone proven by a one-time SMS code — or an e-mail address proven by a code sent
by e-mail, for one who reported with only an e-mail — gets a session; the resident's own cases; the survey answered
from the signed link of the survey SMS.

notify does this because it alone holds residents' phones (DESIGN "Personal data"). The session is a credential of
the registry like people's (services/supervision/people.py): credential.issued with role `resident` and, as its
name, the opaque resident id (shared/residents.py), so intake accepts the cookie for photos and reports and can
check the phone a report gives against it, while the phone itself never leaves notify.

Guessing is bounded three ways, the same for a phone and an e-mail address: a code is 6 digits and dies after 5
wrong tries or 5 minutes; a phone (or e-mail address) and a client address may ask for only so many codes an hour
(an SMS costs money, and both annoy their owner); a client address's wrong codes are counted over all phones and
addresses. Neither the code nor the full phone or address is ever logged.
"""
from __future__ import annotations

import asyncio
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared.auth import token_hash
from shared.clock import Clock
from shared.contracts.credentials import CredentialIssued, CredentialRevoked
from shared.personal_data import mask_email, mask_phone_number, sms_number
from shared.residents import EMAIL_PREFIX, code_hash, email_resident_id, new_code, normalise_email, resident_id
from shared.runtime import ServiceRuntime

from services.notify.adapters import resident_store as store
from services.notify.adapters.channels import SmsChannel
from services.notify.adapters.email import EmailChannel
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


@dataclass(frozen=True)
class Proof:
    """What a code proves: a mobile number (the code comes by SMS) or an e-mail address (by e-mail)."""

    column: str   # resident_store's column: phone_norm or email_norm
    address: str  # normalised
    resident_id: str
    keyed: str    # what the code's HMAC is keyed to (the phone, or "email:<address>": never the one for the other)

    @property
    def masked(self) -> str:
        return (mask_phone_number(self.address) if self.column == "phone_norm" else mask_email(self.address)) or "***"


def me(rid: str, phone_norm: str | None, expires_at: Any, email_norm: str | None = None) -> dict[str, Any]:
    """What the page reads about the signed-in resident: the phone (or e-mail) is theirs, shown back to them only."""
    return {"resident_id": rid, "phone": phone_norm, "phone_masked": mask_phone_number(phone_norm),
            "email": email_norm, "email_masked": mask_email(email_norm), "expires_at": expires_at}


class Residents:
    def __init__(self, runtime: ServiceRuntime, clock: Clock | None = None):
        self.runtime = runtime
        self.clock = clock or Clock()  # notify's: codes and sessions end, and throttling windows pass, by its moment
        self.settings = runtime.settings
        self.key = runtime.settings.resident_secret()
        s = runtime.settings
        # Codes by e-mail go straight to the SMTP server (not through the delivery queue: a code is useless after
        # five minutes, and the resident is waiting on the page to read it).
        self._email = EmailChannel(host=s.smtp_host, port=s.smtp_port, sender=s.smtp_sender, signature=s.sms_signature,
                                   starttls=s.smtp_starttls, username=s.smtp_username, password=s.smtp_password)

    def _proof(self, phone: str | None, email: str | None) -> Proof:
        if email is not None and phone is None:
            address = normalise_email(email)
            if address is None:
                raise ResidentRefused(422, "an e-mail address is needed: the code comes by e-mail "
                                           "(请输入正确的电子邮箱，验证码将以邮件发送)")
            return Proof("email_norm", address, email_resident_id(self.key, address), EMAIL_PREFIX + address)
        number = sms_number(phone) if email is None else None
        if number is None:
            raise ResidentRefused(422, "a mainland mobile number (or, instead, an e-mail address) is needed: the code "
                                       "comes by SMS (请输入11位手机号码，验证码将以短信发送)")
        return Proof("phone_norm", number, resident_id(self.key, number), number)

    async def send_code(self, phone: str | None, client_ip: str, email: str | None = None) -> dict[str, Any]:
        """Send a new one-time code to the phone (SMS) or the e-mail address, within the per-address (phone or
        e-mail) and per-client limits."""
        proof = self._proof(phone, email)
        at = self.clock.now()
        window = timedelta(seconds=self.settings.resident_code_window_seconds)
        code = new_code()
        async with self.runtime.uow() as uow:
            # One phone or address at a time (two requests racing must not both pass the count).
            await uow.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('resident-code:' || $1, 0))",
                                   proof.keyed)
            by_address, by_ip = await store.codes_asked(uow.conn, column=proof.column, address=proof.address,
                                                        client_ip=client_ip, since=at - window)
            if by_address >= self.settings.resident_code_phone_limit or by_ip >= self.settings.resident_code_address_limit:
                RESIDENT_CODES.labels(SERVICE, "throttled").inc()
                raise ResidentRefused(429, "too many codes asked for; try again later (验证码请求过于频繁，请稍后再试)",
                                      int(window.total_seconds()))
            await store.add_code(uow.conn, column=proof.column, address=proof.address,
                                 code_hash=code_hash(self.key, proof.keyed, code), client_ip=client_ip,
                                 expires_at=at + timedelta(seconds=self.settings.resident_code_seconds),
                                 forget_before=at - 2 * window)
            await uow.commit()
        minutes = max(1, round(self.settings.resident_code_seconds / 60))
        text = f"【{self.settings.sms_signature}】您的验证码是{code}，{minutes}分钟内有效，请勿告诉他人。"
        message = Message(ref=f"code-{uuid.uuid4()}", to=proof.address, text=text, kind="code")
        if proof.column == "email_norm":
            result = await self._email.send(message)
        else:
            async with SmsChannel(self.settings.sms_gateway_url) as channel:
                result = await channel.send(message)
        if result.outcome is not Outcome.DELIVERED:
            RESIDENT_CODES.labels(SERVICE, "unsent").inc()
            # The server's answer may quote the address: never logged in full.
            log.warning("resident code to %s not sent: %s", proof.masked,
                        re.sub(re.escape(proof.address), proof.masked, result.detail or "", flags=re.IGNORECASE))
            if proof.column == "email_norm":
                raise ResidentRefused(503, "the e-mail could not be sent now; try again shortly "
                                           "(邮件暂时无法发送，请稍后重试)")
            raise ResidentRefused(503, "the SMS could not be sent now; try again shortly (短信暂时无法发送，请稍后重试)")
        RESIDENT_CODES.labels(SERVICE, "sent").inc()
        log.info("resident code sent to %s", proof.masked)
        answer: dict[str, Any] = {"expires_in": int(self.settings.resident_code_seconds)}
        if proof.column == "email_norm":
            return {**answer, "phone": None, "email": proof.masked}
        return {**answer, "phone": proof.masked, "email": None}

    async def sign_in(self, phone: str | None, code: str, client_ip: str, email: str | None = None) -> ResidentSession:
        """Check the code; a right one opens a session (a registry credential), a wrong one counts."""
        proof = self._proof(phone, email)
        at = self.clock.now()
        async with self.runtime.uow() as uow:
            if await store.failures_of(uow.conn, client_ip, at - timedelta(seconds=self.settings.resident_code_window_seconds)) \
                    >= MAX_WRONG_PER_ADDRESS:
                RESIDENT_CODES.labels(SERVICE, "throttled").inc()
                raise ResidentRefused(429, "too many wrong codes; try again later (验证码错误次数过多，请稍后再试)",
                                      int(self.settings.resident_code_window_seconds))
            row = await store.live_code_for_update(uow.conn, column=proof.column, address=proof.address, at=at,
                                                   max_tries=self.settings.resident_code_tries)
            good = row is not None and secrets.compare_digest(row["code_hash"], code_hash(self.key, proof.keyed, code))
            if not good:
                await store.wrong_try(uow.conn, row["id"] if row else None, client_ip)
                await uow.commit()
                RESIDENT_CODES.labels(SERVICE, "wrong").inc()
                raise ResidentRefused(401, "wrong or expired code; ask for a new one if needed "
                                           "(验证码错误或已过期，请重新获取)")
            await store.use_code(uow.conn, row["id"])
            token = secrets.token_urlsafe(32)
            digest = token_hash(token)
            rid = proof.resident_id
            expires_at = at + timedelta(hours=self.settings.resident_session_hours)
            await store.add_session(uow.conn, digest=digest, resident_id=rid, column=proof.column,
                                    address=proof.address, expires_at=expires_at)
            event = CredentialIssued(token_sha256=digest, name=rid, role="resident", expires_at=expires_at)
            uow.emit(self.runtime.topics.credentials, event.envelope(source=SOURCE), key=digest)
            await uow.commit()
        await self._until_usable(digest)
        RESIDENT_CODES.labels(SERVICE, "proven").inc()
        if proof.column == "email_norm":
            return ResidentSession(token, me(rid, None, expires_at, proof.address))
        return ResidentSession(token, me(rid, proof.address, expires_at))

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
        row = await store.session(self.runtime.pool, token_hash(token), self.clock.now())
        return me(row["resident_id"], row["phone_norm"], row["expires_at"], row["email_norm"]) if row else None

    async def sign_out(self, token: str | None) -> None:
        if not token:
            return
        digest = token_hash(token)
        async with self.runtime.uow() as uow:
            if await store.end_session(uow.conn, digest):
                event = CredentialRevoked(token_sha256=digest, reason="signed out (已退出登录)")
                uow.emit(self.runtime.topics.credentials, event.envelope(source=SOURCE), key=digest)
            await uow.commit()
