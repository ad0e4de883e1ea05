"""The credential registry on `wangge.credentials` (compacted, key: the token's SHA-256).

Every service learns credentials from this topic into its own table, so a token issued once is
checked by all four services and a revocation reaches each of them within a second or two.
Tokens never travel or rest in clear: only their hash does.
"""
from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from shared.contracts.registry import EventModel, event

# screen: the LED wall's machine credential (大屏), read-only — the live figures and what the big screen shows,
# nothing an operator can do.
# resident: a phone proven by a one-time SMS code (notify's /api/v1/resident/sessions); the credential's name is the
# resident's opaque id (shared/residents.py), never the phone, which only notify holds.
Role = Literal["terminal", "hotline", "owner", "operator", "admin", "screen", "resident"]
ROLES: tuple[str, ...] = ("terminal", "hotline", "owner", "operator", "admin", "screen", "resident")


@event
class CredentialIssued(EventModel):
    """A bearer token (by its hash) now stands for this client and role until it expires or is revoked."""

    TYPE = "credential.issued"
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    name: str = Field(min_length=1, max_length=100)
    role: Role
    owner_code: str | None = Field(default=None, max_length=50, description="owner: the one owner code it acts for")
    worker_id: str | None = Field(default=None, max_length=50, description="terminal: the coordinator")
    device_id: str | None = Field(default=None, max_length=50, description="terminal: the device")
    expires_at: AwareDatetime | None = None
    demo: bool = Field(default=False, description="a fixed development credential: refused by the production profile")
    # A machine credential's signing key (owners' systems, terminal gateways, the hotline bridge): the public half
    # only, and its id, which the signed records name. The private half is printed once to whoever issued it.
    signing_key_id: str | None = Field(default=None, pattern=r"^k[0-9a-f]{24}$",
                                       description="the id signed Kafka records name (header wangge-signer)")
    signing_public_key: str | None = Field(default=None, pattern=r"^[A-Za-z0-9+/]{43}=$",
                                           description="Ed25519 public key, base64 of its 32 bytes")


@event
class CredentialRevoked(EventModel):
    """The token (by its hash) is no longer accepted anywhere."""

    TYPE = "credential.revoked"
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    reason: str = Field(default="revoked", max_length=300)
