"""A fake SMS gateway for development and tests: accepts, de-duplicates on ref, shows what it got.

    python -m deploy.local.sms_sink [--port 8109] [--log FILE] [--callback URL [--callback-token T]]
    curl http://127.0.0.1:8109/sms                                  # what was "sent", newest last
    curl -X POST 'http://127.0.0.1:8109/sms/fail-next?status=503&count=2'   # make the next 2 fail
    curl -X POST http://127.0.0.1:8109/control -H 'Content-Type: application/json' -d '{"status": 503, "seconds": 60}'  # down for a minute
    curl -X POST http://127.0.0.1:8109/control -H 'Content-Type: application/json' -d '{"status": 200}'                 # healed now
    curl -X POST http://127.0.0.1:8109/control -H 'Content-Type: application/json' -d '{"status": 200, "delay_ms": 5}'  # answer in 5 ms, like a real gateway
    curl -X POST http://127.0.0.1:8109/sms/reply -H 'Content-Type: application/json' -d '{"from": "13900001001", "text": "1"}'  # a resident answers

It behaves like the real gateways we integrate with in the ways that matter to the notify
service: a repeated idempotency key (`ref` in the body or the Idempotency-Key header) is answered
200 but delivered once (that is what makes a resend after a crash harmless), an invalid mobile
number is refused with 400, outages can be simulated, and a resident's SMS reply is posted to the
service's inbound callback (POST /api/v1/sms/inbound on notify).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from shared.clock import now

DEFAULT_PORT = 8109
# The sink is a development tool holding residents' numbers in clear: never expose it beyond this host.
LOOPBACK = "127.0.0.1"
MOBILE = re.compile(r"^1[3-9]\d{9}$")


class SmsRequest(BaseModel):
    """One message as the notify service posts it."""

    to: str = Field(min_length=1, max_length=30, description="mainland mobile number, 11 digits")
    text: str = Field(min_length=1, max_length=1000)
    ref: str = Field(min_length=1, max_length=100, description="the sender's delivery id; repeats are de-duplicated")


class Control(BaseModel):
    """How the sink answers from now on: `status` 200 heals it; another status fails every POST /sms
    for `seconds` (or until healed when omitted)."""

    status: int = Field(ge=200, le=599)
    seconds: float | None = Field(default=None, gt=0, le=86400)
    delay_ms: float | None = Field(default=None, ge=0, le=60000,
                                   description="answer every POST /sms this long after it arrived (kept until changed)")


class ResidentReply(BaseModel):
    """A resident's SMS back to the service number."""

    model_config = ConfigDict(populate_by_name=True)

    sender: str = Field(alias="from", min_length=1, max_length=30)
    text: str = Field(max_length=1000)


@dataclass
class SinkState:
    """What the sink received, and the failures it was told to simulate."""

    log_path: Path | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    by_ref: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_status: int = 503
    fail_remaining: int = 0
    down_status: int = 503
    down_until: float | None = None  # time.monotonic(); inf = until healed
    rejected_posts: int = 0
    delay: float = 0.0  # seconds before each POST /sms is answered: a real gateway is not instant

    def record(self, request: SmsRequest, key: str) -> dict[str, Any]:
        """Keep a message once per idempotency key; a repeat only bumps its counter."""
        known = self.by_ref.get(key)
        if known is not None:
            known["repeats"] += 1
            return known
        entry = {
            "ref": key,
            "to": request.to,
            "text": request.text,
            "received_at": now().isoformat(),
            "repeats": 0,
        }
        self.messages.append(entry)
        self.by_ref[key] = entry
        if self.log_path is not None:
            with self.log_path.open("ab") as out:
                out.write(orjson.dumps(entry) + b"\n")
        return entry

    def take_failure(self) -> int | None:
        """The status to answer with if a simulated failure is armed (and disarm one) or the sink is down."""
        if self.fail_remaining > 0:
            self.fail_remaining -= 1
            return self.fail_status
        if self.down_until is not None:
            if time.monotonic() < self.down_until:
                return self.down_status
            self.down_until = None
        return None

    def control(self, order: Control) -> dict[str, Any]:
        """Go down with `status` for `seconds` (or until healed), or heal with 200; `delay_ms` sets the answer time."""
        if order.delay_ms is not None:
            self.delay = order.delay_ms / 1000
        if order.status < 300:
            self.down_until, self.fail_remaining = None, 0
            return {"status": "up", "delay_ms": self.delay * 1000}
        self.down_status = order.status
        self.down_until = time.monotonic() + order.seconds if order.seconds else float("inf")
        return {"status": "down", "answers": order.status, "seconds": order.seconds, "delay_ms": self.delay * 1000}


def create_sink_app(log_path: Path | None = None, callback_url: str | None = None, callback_token: str | None = None,
                    callback_transport: httpx.AsyncBaseTransport | None = None, delay_ms: float = 0) -> FastAPI:
    """The sink as an ASGI app (tests run it in-process); its state is `app.state.sink`. A test may pass
    `callback_transport` to reach an in-process callback."""
    app = FastAPI(title="wangge fake SMS gateway", version="0.1.0",
                  description="Development stand-in for the SMS gateway. Never use with real numbers in production.")
    state = SinkState(log_path=log_path, delay=delay_ms / 1000)
    app.state.sink = state

    @app.post("/sms")
    async def send_sms(request: SmsRequest, idempotency_key: str | None = Header(None, max_length=100)) -> JSONResponse:
        """Accept one message (200), de-duplicating on the Idempotency-Key header, else on ref; 400 for a
        number that is not a mobile."""
        if state.delay:
            await asyncio.sleep(state.delay)
        failure = state.take_failure()
        if failure is not None:
            state.rejected_posts += 1
            return JSONResponse({"status": "error", "reason": f"simulated failure ({failure})"}, failure)
        if not MOBILE.match(request.to):
            state.rejected_posts += 1
            return JSONResponse({"status": "rejected", "reason": "not a mainland mobile number (11 digits, 1[3-9]…)"}, 400)
        key = idempotency_key or request.ref
        entry = state.record(request, key)
        return JSONResponse({"status": "accepted", "ref": key, "duplicate": entry["repeats"] > 0})

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

    @app.post("/control")
    async def control(order: Control) -> dict[str, Any]:
        """Simulate an outage: {"status": 503, "seconds": 60} fails every POST /sms for a minute;
        {"status": 200} heals at once."""
        return state.control(order)

    @app.post("/sms/reply")
    async def resident_reply(reply: ResidentReply) -> JSONResponse:
        """Play a resident texting back: forwarded to the service's inbound callback, its answer returned."""
        if not callback_url:
            return JSONResponse({"status": "error", "reason": "no --callback URL configured"}, 409)
        headers = {"X-Gateway-Token": callback_token} if callback_token else {}
        async with httpx.AsyncClient(timeout=10, transport=callback_transport) as client:
            try:
                answer = await client.post(callback_url, json={"from": reply.sender, "text": reply.text},
                                           headers=headers)
            except httpx.HTTPError as exc:
                return JSONResponse({"status": "error", "reason": f"callback unreachable: {exc}"}, 502)
        try:
            body: Any = answer.json()
        except ValueError:
            body = answer.text
        return JSONResponse({"status": "forwarded", "callback_status": answer.status_code, "answer": body})

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
        "the next requests fail, to exercise retries; POST /control {\"status\": 503, \"seconds\": 60} is down "
        "for a minute and {\"status\": 200} heals; POST /sms/reply {\"from\", \"text\"} posts a resident's "
        "answer to --callback. Point the services at it with WANGGE_SMS_GATEWAY_URL=http://127.0.0.1:PORT/sms.",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("WANGGE_SMS_SINK_PORT", DEFAULT_PORT)),
                        help=f"port on 127.0.0.1 (default: $WANGGE_SMS_SINK_PORT or {DEFAULT_PORT})")
    parser.add_argument("--log", type=Path, metavar="FILE",
                        help="also append each distinct message to FILE as one JSON line")
    parser.add_argument("--callback", metavar="URL",
                        default=os.environ.get("WANGGE_SMS_SINK_CALLBACK", "http://127.0.0.1:"
                                               f"{os.environ.get('WANGGE_NOTIFY_PORT', '8104')}/api/v1/sms/inbound"),
                        help="where POST /sms/reply forwards a resident's SMS (default: notify's inbound callback)")
    parser.add_argument("--callback-token", metavar="TOKEN", default=os.environ.get("WANGGE_SMS_INBOUND_TOKEN", ""),
                        help="sent as X-Gateway-Token (default: $WANGGE_SMS_INBOUND_TOKEN)")
    parser.add_argument("--delay-ms", type=float, default=0, metavar="MS",
                        help="answer each POST /sms after MS milliseconds (default 0; POST /control {\"status\": 200, "
                        "\"delay_ms\": MS} changes it while running)")
    args = parser.parse_args(argv)
    if not 0 <= args.delay_ms <= 60000:
        parser.error("--delay-ms: between 0 and 60000 milliseconds")

    import uvicorn

    app = create_sink_app(args.log, args.callback, args.callback_token or None, delay_ms=args.delay_ms)
    uvicorn.run(app, host=LOOPBACK, port=args.port, access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
