"""Signed webhooks for integrators (a department's or a city platform's own system). Pure, no I/O.

What an endpoint receives, for every reply to a resident of a case it follows (its `sources`):
    POST <its configured URL>
    Content-Type: application/json
    Idempotency-Key / X-Wangge-Delivery: <delivery id>   — the same on every retry: process it once
    X-Wangge-Timestamp: <Unix seconds when signed>
    X-Wangge-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
    {"delivery_id", "case_no", "kind", "text", "signed_at"}
A receiver recomputes the signature over the raw body with its secret (constant-time compare) and refuses a
timestamp more than TOLERANCE_SECONDS away from its clock (a replayed request), then de-duplicates on the
delivery id. `verify` is that check, for receivers written in Python and for the tests.

Only configured URLs are ever called: a delivery names its endpoint by id and the URL is read from the endpoint
table at send time; redirects are not followed (a 3xx is a refusal), so no text in a message can steer a request.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from urllib.parse import urlsplit

TOLERANCE_SECONDS = 300
SIGNATURE_HEADER = "X-Wangge-Signature"
TIMESTAMP_HEADER = "X-Wangge-Timestamp"
DELIVERY_HEADER = "X-Wangge-Delivery"


def new_secret() -> str:
    """A per-endpoint key: 32 random bytes, hex."""
    return secrets.token_hex(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for this body at this time."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, *, signature: str | None, timestamp: str | None, body: bytes, now: float,
           tolerance: int = TOLERANCE_SECONDS) -> str | None:
    """Why a received webhook must be refused (None: it is genuine and fresh)."""
    if not signature or not timestamp:
        return "unsigned"
    try:
        stamp = int(timestamp)
    except ValueError:
        return "bad timestamp"
    if abs(now - stamp) > tolerance:
        return "stale timestamp (a replay?)"
    if not hmac.compare_digest(signature.encode(), sign(secret, stamp, body).encode()):
        return "bad signature"
    return None


def url_problem(url: str, *, production: bool) -> str | None:
    """Why an endpoint URL cannot be configured (None: it can). https in production; http allowed in development
    (loopback receivers in tests); never credentials in the URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a URL (网址无效)"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an http(s) URL with a host (网址须为 http(s) 地址)"
    if production and parts.scheme != "https":
        return "must be https in production (生产环境须使用 https)"
    if parts.username or parts.password:
        return "must not carry credentials (网址中不得包含用户名或密码); the signature authenticates us"
    if parts.fragment:
        return "must not have a fragment (#…)"
    if production:
        try:
            address = ipaddress.ip_address(parts.hostname)
        except ValueError:
            return None
        if address.is_loopback or address.is_private or address.is_link_local:
            return "must not be a loopback or private address in production (生产环境不得指向本机或内网地址)"
    return None


def follows(sources: list[str], case_source: str | None) -> bool:
    """Whether an endpoint receives a case's replies: every case (no sources) or cases from its sources."""
    return not sources or (case_source is not None and case_source in sources)
