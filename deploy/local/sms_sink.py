"""A fake SMS gateway for development and tests: accepts, de-duplicates on ref, shows what it got.

    python -m deploy.local.sms_sink [--port 8109] [--log FILE]
    curl http://127.0.0.1:8109/sms                                  # what was "sent", newest last
    curl -X POST 'http://127.0.0.1:8109/sms/fail-next?status=503&count=2'   # make the next 2 fail

It behaves like the real gateways we integrate with in the ways that matter to the notify
service: a repeated `ref` is answered 200 but delivered once (that is what makes a resend after a
crash harmless), an invalid mobile number is refused with 400, and outages can be simulated.
"""
from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from shared.clock import now
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

DEFAULT_PORT = 8109
# The sink is a development tool holding residents' numbers in clear: never expose it beyond this host.
LOOPBACK = "127.0.0.1"
MOBILE = re.compile(r"^1[3-9]\d{9}$")


class SmsRequest(BaseModel):
    """One message as the notify service posts it."""

    to: str = Field(min_length=1, max_length=30, description="mainland mobile number, 11 digits")
    text: str = Field(min_length=1, max_length=1000)
    ref: str = Field(min_length=1, max_length=100, description="the sender's delivery id; repeats are de-duplicated")


@dataclass
class SinkState:
    """What the sink received, and the failures it was told to simulate."""

    log_path: Path | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    by_ref: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_status: int = 503
    fail_remaining: int = 0

    def record(self, request: SmsRequest) -> dict[str, Any]:
        """Keep a message once per ref; a repeat only bumps its counter."""
        known = self.by_ref.get(request.ref)
        if known is not None:
            known["repeats"] += 1
            return known
        entry = {
            "ref": request.ref,
            "to": request.to,
            "text": request.text,
            "received_at": now().isoformat(),
            "repeats": 0,
        }
        self.messages.append(entry)
        self.by_ref[request.ref] = entry
        if self.log_path is not None:
            with self.log_path.open("ab") as out:
                out.write(orjson.dumps(entry) + b"\n")
        return entry

    def take_failure(self) -> int | None:
        """The status to answer with if a simulated failure is armed (and disarm one)."""
        if self.fail_remaining <= 0:
            return None
        self.fail_remaining -= 1
        return self.fail_status


def create_sink_app(log_path: Path | None = None) -> FastAPI:
    """The sink as an ASGI app (tests run it in-process); its state is `app.state.sink`."""
    app = FastAPI(title="wangge fake SMS gateway", version="0.1.0",
                  description="Development stand-in for the SMS gateway. Never use with real numbers in production.")
    state = SinkState(log_path=log_path)
    app.state.sink = state

    @app.post("/sms")
    async def send_sms(request: SmsRequest) -> JSONResponse:
        """Accept one message (200), de-duplicating on ref; 400 for a number that is not a mobile."""
        failure = state.take_failure()
        if failure is not None:
            return JSONResponse({"status": "error", "reason": f"simulated failure ({failure})"}, failure)
        if not MOBILE.match(request.to):
            return JSONResponse({"status": "rejected", "reason": "not a mainland mobile number (11 digits, 1[3-9]…)"}, 400)
        entry = state.record(request)
        return JSONResponse({"status": "accepted", "ref": request.ref, "duplicate": entry["repeats"] > 0})

    @app.get("/sms")
    async def list_sms() -> dict[str, Any]:
        """Every distinct message received, newest last, with how often each ref was repeated."""
        return {"count": len(state.messages), "messages": state.messages}

    @app.delete("/sms")
    async def clear_sms() -> dict[str, Any]:
        """Forget what was received (the --log file is kept)."""
        state.messages.clear()
        state.by_ref.clear()
        return {"status": "cleared"}

    @app.post("/sms/fail-next")
    async def fail_next(
        status: int = Query(503, ge=400, le=599, description="HTTP status to answer with"),
        count: int = Query(1, ge=0, le=1000, description="how many following requests fail (0 disarms)"),
    ) -> dict[str, Any]:
        """Make the next `count` POST /sms answer `status` without recording anything."""
        state.fail_status, state.fail_remaining = status, count
        return {"status": "armed", "fail_status": status, "remaining": count}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The sink is up."""
        return {"status": "ok", "service": "sms-sink"}

    return app


def main(argv: list[str] | None = None) -> int:
    """Command line: serve the sink on 127.0.0.1."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.local.sms_sink",
        description="Fake SMS gateway for local development and tests, listening on 127.0.0.1 only. "
        "POST /sms {to, text, ref} → 200 (a repeated ref is recorded once); GET /sms lists what was "
        "received, newest last; DELETE /sms forgets it; POST /sms/fail-next?status=503&count=1 makes "
        "the next requests fail, to exercise retries. Point the services at it with "
        "WANGGE_SMS_GATEWAY_URL=http://127.0.0.1:PORT/sms.",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("WANGGE_SMS_SINK_PORT", DEFAULT_PORT)),
                        help=f"port on 127.0.0.1 (default: $WANGGE_SMS_SINK_PORT or {DEFAULT_PORT})")
    parser.add_argument("--log", type=Path, metavar="FILE",
                        help="also append each distinct message to FILE as one JSON line")
    args = parser.parse_args(argv)

    import uvicorn

    uvicorn.run(create_sink_app(args.log), host=LOOPBACK, port=args.port, access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
