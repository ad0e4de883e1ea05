"""A local SMTP server for development and tests (aiosmtpd): accepts every message on loopback and keeps it.

    python -m deploy.local.mail_sink [--port 8025] [--log FILE]   # one JSON line per message in FILE

notify sends residents' e-mail replies to it in ./dev up (WANGGE_SMTP_HOST/WANGGE_SMTP_PORT). It holds residents'
addresses in clear: it listens on 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import email
import email.policy
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiosmtpd.controller import Controller

DEFAULT_PORT = 8025
LOOPBACK = "127.0.0.1"


@dataclass
class MailSink:
    """The server and what it received; start/stop again on the same port (a server down, then up)."""

    port: int
    log: Path | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    _controller: Controller | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 — aiosmtpd's hook name
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = parsed.get_body(("plain",))
        record = {"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "subject": str(parsed["Subject"]),
                  "message_id": str(parsed["Message-ID"]), "text": body.get_content().strip() if body else "",
                  "at": time.time()}
        with self._lock:
            self.messages.append(record)
        if self.log is not None:
            with self.log.open("ab") as out:
                out.write(orjson.dumps(record) + b"\n")
        return "250 OK"

    def start(self) -> "MailSink":
        self._controller = Controller(self, hostname=LOOPBACK, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.messages if address in m["to"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("WANGGE_MAIL_SINK_PORT", DEFAULT_PORT)))
    parser.add_argument("--log", type=Path, default=None)
    args = parser.parse_args(argv)
    sink = MailSink(args.port, args.log).start()
    print(f"mail sink: SMTP on {LOOPBACK}:{args.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
