"""The e-mail channel: one message per reply over SMTP (aiosmtplib), the delivery id as its Message-ID.

SMTP has no idempotency key: a reply is sent again only when a worker died mid-send (its lease ran out), and then
under the same Message-ID, which mail stores and clients use to drop the duplicate."""
from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiosmtplib

from shared.personal_data import mask_personal

from services.notify.domain.delivery import AttemptResult, Message, Outcome

SEND_TIMEOUT_SECONDS = 10.0
SUBJECTS = {
    "acknowledgement": "您反映的问题已受理", "rejection": "您反映的问题不予受理", "progress": "您反映的问题有新进展",
    "explanation": "您反映的问题的情况说明", "resolution": "您反映的问题已办结", "survey": "请评价我们的办理",
    "code": "您的验证码",  # the resident page's one-time code (services/notify/residents.py)
}


class EmailChannel:
    """Sends each message as a plain-text e-mail through one SMTP server."""

    name = "email"

    def __init__(self, *, host: str, port: int, sender: str, signature: str, starttls: bool = False,
                 username: str = "", password: str = "", timeout: float = SEND_TIMEOUT_SECONDS):
        self._host, self._port, self._sender, self._signature = host, port, sender, signature
        self._starttls, self._username, self._password, self._timeout = starttls, username, password, timeout

    async def __aenter__(self) -> "EmailChannel":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None

    def compose(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self._sender
        mail["To"] = message.to
        subject = SUBJECTS.get(message.kind, "您反映的问题")
        mail["Subject"] = f"【{self._signature}】{subject}（编号{message.case_no}）" if message.case_no \
            else f"【{self._signature}】{subject}"
        mail["Message-ID"] = f"<{message.ref}@wangge.notify>"
        mail["Date"] = formatdate(localtime=True)
        mail.set_content(message.text + "\n", charset="utf-8")
        return mail

    async def send(self, message: Message) -> AttemptResult:
        """One attempt: accepted (250) delivered; a permanent refusal (5xx) refused; the rest unavailable."""
        try:
            await aiosmtplib.send(
                self.compose(message), hostname=self._host, port=self._port, timeout=self._timeout,
                start_tls=self._starttls or False, username=self._username or None,
                password=self._password or None,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            outcome = Outcome.REFUSED if codes and all(500 <= c < 600 for c in codes) else Outcome.UNAVAILABLE
            return AttemptResult(outcome, mask_personal(f"SMTP refused the recipient: {codes}"))
        except aiosmtplib.SMTPResponseException as exc:
            outcome = Outcome.REFUSED if 500 <= exc.code < 600 else Outcome.UNAVAILABLE
            return AttemptResult(outcome, mask_personal(f"SMTP answered {exc.code}: {exc.message}")[:500])
        except (aiosmtplib.SMTPException, OSError) as exc:
            return AttemptResult(Outcome.UNAVAILABLE, mask_personal(f"SMTP server unreachable: {type(exc).__name__}: "
                                                                    f"{exc}")[:500])
        return AttemptResult(Outcome.DELIVERED)
