"""Settings read from the environment (WANGGE_*), one object per process."""
from __future__ import annotations

import os
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.signing import SERVICES, key_problems

REPO_ROOT = Path(__file__).resolve().parent.parent
# A shared secret shorter than this is guessable; the production profile refuses it.
MIN_SECRET_CHARS = 16


class UnsafeConfiguration(Exception):
    """The production profile is missing something it needs to start safely; the message lists what."""


def trusted_networks(spec: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """WANGGE_TRUSTED_PROXIES parsed: addresses or networks, comma-separated (ValueError names a bad one)."""
    networks = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        try:
            networks.append(ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"not an address or network: {part!r}") from None
    return tuple(networks)


class Settings(BaseSettings):
    """Everything a service needs to find its infrastructure and its street."""

    model_config = SettingsConfigDict(env_prefix="WANGGE_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:19092"
    # Production: SASL_PLAINTEXT or SASL_SSL with a SCRAM user per service (shared/kafka_security.py).
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_username: str = ""
    kafka_password: str = ""
    # The most copies of each partition a topic wangge creates gets. What it gets is read from the cluster:
    # min(this, 3, brokers), with min.insync.replicas 2 for 3 copies (shared/replication.py replication_for); 1 on one node.
    kafka_replication_factor: int = Field(default=3, ge=1)
    # The database owner's connection: migrations (python -m shared.migrate) and the admin commands run as it, and a
    # service with no connection of its own below uses it too (development, tests).
    database_url: str = "postgresql://wangge@127.0.0.1:15432/wangge"
    # One PostgreSQL role per service, granted its own schema only (DESIGN "Personal data": only notify holds
    # phones — enforced by the database, not by convention). WANGGE_<SERVICE>_DATABASE_URL; supervision's live
    # process uses supervision's. Empty: WANGGE_DATABASE_URL. The production profile checks at start that the role
    # cannot read another service's schema (shared/db_roles.py).
    intake_database_url: str = ""
    routing_database_url: str = ""
    supervision_database_url: str = ""
    notify_database_url: str = ""
    # Prefixes keep test runs apart on one broker/database; production leaves them empty
    # so topics carry exactly the contract's names.
    topic_prefix: str = ""
    schema_prefix: str = ""
    street_dir: Path = Field(default=REPO_ROOT.parent / "shared" / "data")
    street_timezone: str = "Asia/Shanghai"
    # The street's configuration folder (`<name>-config.toml`: work periods, stage limits, escalation; and
    # `<name>-calendar.csv`, holidays the chinesecalendar package does not know yet). Empty: the street
    # folder if it holds a *-config.toml, else <repo>/streets/<name> (name: the street's file prefix).
    street_config_dir: Path | None = None
    http_host: str = "127.0.0.1"
    intake_port: int = 8101
    routing_port: int = 8102
    supervision_port: int = 8103
    notify_port: int = 8104
    sms_gateway_url: str = "http://127.0.0.1:8109/sms"
    sms_signature: str = "文化路街道"
    # Messages in flight to the SMS gateway at once, each on its own kept-alive connection
    # (WANGGE_SMS_GATEWAY_CONNECTIONS): what a burst of acknowledgements goes out at is this many over the gateway's
    # answer time, so it is the knob to turn down for a gateway that limits connections.
    sms_gateway_connections: int = Field(default=64, ge=1, le=1024)
    # Replies by e-mail (a resident who reported online and gave an address): the SMTP server and the sender.
    # ./dev up runs a local one (deploy/local/mail_sink.py). WANGGE_SMTP_HOST, WANGGE_SMTP_PORT, …
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_sender: str = "wangge@localhost"
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: str = ""
    log_level: str = "INFO"
    # development accepts the fixed demo credentials of ./dev up; production refuses them.
    profile: Literal["development", "production"] = "development"
    # Owners' updates on Kafka must carry their credential's signature (shared/auth.py sign_update);
    # always so in production, optional (checked when present) in development.
    require_signed_updates: bool = False
    # Ed25519 keys binding every Kafka write to who may make it (shared/signing.py): each process's own private key
    # (base64 of the 32-byte seed; WANGGE_INTAKE_SIGNING_KEY …, WANGGE_ADMIN_SIGNING_KEY for the credentials CLI
    # only) and every signer's public key (`intake:base64,routing:…,supervision:…,notify:…,admin:…`). Required by
    # the production profile; empty in development: fixed development keys (never for a real street).
    intake_signing_key: str = ""
    routing_signing_key: str = ""
    supervision_signing_key: str = ""
    notify_signing_key: str = ""
    admin_signing_key: str = ""
    signing_public_keys: str = ""
    # Replies to residents are retried for as long as they are still useful.
    reply_ttl_hours: float = 24.0
    # How long after the survey window closes notify erases the residents' names and phone numbers
    # (DESIGN "Personal data"); rejected reports count from the rejection. WANGGE_ERASE_AFTER_DAYS.
    erase_after_days: float = 30.0
    erasure_poll_seconds: float = 60.0
    # How often a topic carrying residents' phones (wangge.reports, wangge.contacts) is cut below what its one reader
    # has committed (shared/trim.py): the longest a phone its reader has taken stays readable on Kafka, give or take
    # the reader's commit interval. WANGGE_TRIM_INTERVAL_SECONDS.
    trim_interval_seconds: float = Field(default=10.0, gt=0)
    # The shared secret the SMS gateway's inbound-reply callback sends in X-Gateway-Token, compared in constant
    # time. Required (at least 16 characters) by the production profile; ./dev up makes one for the local sink.
    # Empty in development: the callback refuses every request rather than trusting anyone.
    sms_inbound_token: str = ""
    # The addresses (or networks) the SMS gateway calls the inbound callback from, comma-separated: a callback from
    # anywhere else is refused (403) before its secret is even compared. Required by the production profile (notify).
    # Empty in development: notify hears any address (with the secret), and the front door routes the callback from
    # none (deploy/local/nginx.sh renders its allow-list from this same setting; the local sink calls notify directly).
    # The client address is taken as for the guessing limits (WANGGE_TRUSTED_PROXIES). WANGGE_SMS_GATEWAY_ADDRESSES.
    sms_gateway_addresses: str = ""
    # Addresses (or networks) of the proxies in front of the services, comma-separated: only a hop they added to
    # X-Forwarded-For is believed, so the residents' guessing limits key on the real client. Default: loopback,
    # where the front door (nginx) runs locally. WANGGE_TRUSTED_PROXIES.
    trusted_proxies: str = "127.0.0.1,::1"
    # How long a consumer waits before retrying when PostgreSQL or Kafka is unreachable.
    retry_backoff_seconds: float = 1.0
    # …doubling on each failure up to this (with jitter), so a long outage is not hammered.
    retry_backoff_cap_seconds: float = 30.0
    # Inbound messages larger than this are rejected unread (no contract message comes near it).
    max_message_bytes: int = 512 * 1024
    # The largest record the producer sends (the broker's message.max.bytes must be at least this);
    # consumers fetch at least twice this per partition, so a large record never stalls a fetch.
    kafka_max_request_bytes: int = 1048576
    # How often consumers ask the broker for end offsets (lag), and after how long a partition with
    # lag and no progress makes /readyz answer 503.
    consumer_lag_interval_seconds: float = 5.0
    consumer_stall_seconds: float = 60.0
    # After how long without progress the watchdog tears a consumer or loop down and rebuilds it (shared/watchdog.py);
    # 0: at the stall limit above. Longer lets /readyz say "stalled" (and an alert fire) before anything is undone.
    watchdog_stall_seconds: float = 0.0
    # A service started while PostgreSQL or Kafka is away waits for them this long (retrying, saying so in its
    # log) before it gives up and exits for its supervisor: one restarted in the middle of an outage comes up
    # by itself when the outage ends, instead of exiting into a state no one restarts.
    startup_wait_seconds: float = 300.0
    # A process whose /healthz has said "needs a restart" this long, with no supervisor restarting it, restarts
    # itself (shared/self_restart.py); 0 leaves it to the supervisor alone. Longer than Kubernetes' default
    # liveness probe takes (3 × 10 s), so a real supervisor acts first.
    self_restart_seconds: float = 60.0
    # The outbox relay is woken by its schema's NOTIFY at every commit that wrote to the outbox (shared/outbox.py); the
    # poll only backs that up. At 0.5 s the four relays were half of the transactions of an idle stack (8.8 of 16.8 a
    # second, bench.statements over 30 s idle).
    outbox_poll_seconds: float = 2.0
    # The deadline poller looks again at the next deadline in its index, but at least this often (a clock opened
    # by another instance since), and refreshes the clock gauges (counts over every running clock) this often.
    deadline_poll_seconds: float = 1.0
    deadline_gauge_seconds: float = 10.0
    # An owner's update (wangge.task-updates) that came before supervision folded its case's dispatch is held this
    # long for it, then refused with the reason it gets then; the held ones are looked at this often.
    # Claims (processed_events) older than this are pruned every claims_prune_seconds, in batches, while every
    # consumer group of the service has committed everywhere and is at most claims_prune_max_behind records behind
    # (shared/claims.py says why that is safe).
    claims_keep_hours: float = Field(default=168.0, gt=0)
    claims_prune_seconds: float = Field(default=3600.0, gt=0)
    claims_prune_batch: int = Field(default=5000, ge=1)
    claims_prune_max_behind: int = Field(default=10000, ge=0)
    held_update_seconds: float = Field(default=600.0, gt=0)
    held_update_poll_seconds: float = Field(default=30.0, gt=0)
    # At most this many of one owner's updates are held at once; beyond, refused at once with the reason. An owner's
    # system that answers for cases that will never come (a bug, a stolen key) fills no table: a real owner rarely
    # holds more than the tasks dispatched to it in the moment the case log lags.
    held_updates_per_owner: int = Field(default=1000, ge=1)
    # How often supervision keeps past days' figures (the statistics sum kept days: docs/STATISTICS.md).
    stats_keep_seconds: float = 60.0
    # Hostile HTTP (shared/http.py): a report is a few KB, so a request body above this is refused with 413
    # before a handler sees it; JSON nested deeper than max_json_depth is refused with 422.
    # People's sign-in (supervision's /api/v1/sessions): how long a session lasts, and how guessing is slowed and
    # locked — per username (known or not) and per client address, so many attempts in a window lock it for a while.
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    sign_in_limit: int = Field(default=5, ge=1)
    sign_in_address_limit: int = Field(default=30, ge=1)
    sign_in_window_seconds: float = Field(default=900.0, gt=0)
    sign_in_lock_seconds: float = Field(default=900.0, gt=0)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_json_depth: int = Field(default=32, ge=2)
    # Photos (POST /api/v1/media, shared/media.py): where they are stored (default $WANGGE_STATE_DIR/media, else
    # <repo>/.local/media), the largest file taken, the most pixels decoded (a decompression bomb is refused before
    # it is decoded). How many photos one message may carry is the contract's (shared/contracts/common.py).
    # Server-sent event streams of the live figures one credential may hold open at once (429 beyond).
    live_streams_per_credential: int = Field(default=4, ge=1)
    # Uvicorn, reachable without nginx inside the network (shared/serve.py): a request's headers must arrive whole
    # within this (h11/httptools wait for ever: a slow-header client would hold a connection), and be at most
    # http_max_header_bytes; connections beyond http_max_connections at once are answered 503.
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    http_max_header_bytes: int = Field(default=32 * 1024, ge=4096)
    http_max_connections: int = Field(default=2048, ge=16)
    media_dir: Path | None = None
    media_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    media_max_pixels: int = Field(default=40_000_000, ge=10_000)
    # Photos in an S3-compatible bucket instead of the folder (shared/media_s3.py): with several instances (or
    # machines) every one must serve every photo, so they share a bucket. Set the endpoint (http(s)://host:port) to
    # use it; the access key and secret are a key pair of that server (production requires both). Path-style
    # addressing, so a bucket name needs no DNS entry of its own. `./dev`: WANGGE_MEDIA=s3 starts SeaweedFS for it.
    media_s3_endpoint: str = ""
    media_s3_bucket: str = "wangge-media"
    media_s3_access_key: str = ""
    media_s3_secret_key: str = ""
    media_s3_region: str = "us-east-1"
    # A request to the store (one photo) that takes longer than this is an unavailable store: 503, retry.
    media_s3_timeout_seconds: float = Field(default=10.0, gt=0)

    # Residents (/my/, shared/residents.py): the key of their opaque ids and of the signed survey links. Required (at
    # least 16 characters) by the production profile for intake and notify, which must share it; ./dev up makes one.
    # Empty in development: a fixed development key (so a test stack works without one).
    resident_key: str = ""
    # Where residents reach the front door: the survey SMS links to <public_url>/my/?s=<signed token>.
    public_url: str = "http://127.0.0.1:8100"
    # The one-time SMS code that proves a resident's phone: how long it lasts, how many wrong tries void it, and how
    # many codes a phone, and a client address, may ask for within the window.
    resident_code_seconds: float = Field(default=300.0, gt=0)
    resident_code_tries: int = Field(default=5, ge=1)
    resident_code_phone_limit: int = Field(default=5, ge=1)
    resident_code_address_limit: int = Field(default=20, ge=1)
    resident_code_window_seconds: float = Field(default=3600.0, gt=0)
    resident_session_hours: float = Field(default=24.0 * 7, gt=0, le=24 * 90)

    def resident_secret(self) -> bytes:
        """The key of residents' ids and survey links (a fixed one in development when none is set)."""
        return (self.resident_key or "wangge-development-resident-key").encode()

    def production_problems(self, service: str) -> list[str]:
        """What the production profile lacks for `service` to start safely (empty: nothing, or not production)."""
        if self.profile != "production":
            return []
        problems = []
        if service == "notify" and len(self.sms_inbound_token) < MIN_SECRET_CHARS:
            problems.append(f"WANGGE_SMS_INBOUND_TOKEN: the SMS gateway's callback secret is "
                            f"{'not set' if not self.sms_inbound_token else 'too short'} "
                            f"(at least {MIN_SECRET_CHARS} characters, e.g. `openssl rand -hex 32`)")
        if service in ("intake", "notify") and len(self.resident_key) < MIN_SECRET_CHARS:
            problems.append(f"WANGGE_RESIDENT_KEY: the key of residents' ids and survey links is "
                            f"{'not set' if not self.resident_key else 'too short'} "
                            f"(at least {MIN_SECRET_CHARS} characters, the same for intake and notify)")
        # Kafka is the root of trust (the registry, every case event): reachable without a password, anyone on the
        # network publishes and reads. Each service connects as its own SCRAM user (its ACLs: shared/kafka_security.py).
        if self.kafka_security_protocol == "PLAINTEXT":
            problems.append("WANGGE_KAFKA_SECURITY_PROTOCOL: PLAINTEXT lets anyone who reaches the broker publish and "
                            "read; set SASL_SSL (or SASL_PLAINTEXT on a private network) with this service's own "
                            "SCRAM user (`python -m shared.kafka_security plan` makes one per principal)")
        elif not (self.kafka_username and self.kafka_password):
            problems.append(f"WANGGE_KAFKA_USERNAME / WANGGE_KAFKA_PASSWORD: {service}'s SCRAM user is not set "
                            "(`python -m shared.kafka_security plan` writes one per principal)")
        if self.media_s3_endpoint and service in ("intake", "supervision") and not (
                self.media_s3_access_key and len(self.media_s3_secret_key) >= MIN_SECRET_CHARS):
            problems.append("WANGGE_MEDIA_S3_ACCESS_KEY / WANGGE_MEDIA_S3_SECRET_KEY: the photo store "
                            f"{self.media_s3_endpoint} is set but its key pair is "
                            f"{'not set' if not self.media_s3_secret_key else 'incomplete or too short'} "
                            f"(the secret at least {MIN_SECRET_CHARS} characters; a key pair of that server)")
        if service in SERVICES:
            problems += key_problems(self, service)
        try:
            trusted_networks(self.trusted_proxies)
        except ValueError as exc:
            problems.append(f"WANGGE_TRUSTED_PROXIES: {exc}")
        try:
            gateways = trusted_networks(self.sms_gateway_addresses)
        except ValueError as exc:
            problems.append(f"WANGGE_SMS_GATEWAY_ADDRESSES: {exc}")
        else:
            # The callback answers a resident's survey and reopens a case: only the gateway may call it, so a leaked
            # secret alone is not enough. The front door's allow-list is rendered from the same setting.
            if service == "notify" and not gateways:
                problems.append("WANGGE_SMS_GATEWAY_ADDRESSES: the addresses (or networks) the SMS gateway calls the "
                                "inbound callback from are not set (comma-separated, e.g. 198.51.100.5,2001:db8::/64); "
                                "a callback from anywhere else is refused")
        return problems

    def watchdog_limit(self) -> float:
        """Seconds without progress before the watchdog rebuilds (watchdog_stall_seconds, else the stall limit)."""
        return self.watchdog_stall_seconds or self.consumer_stall_seconds

    def service_database_url(self, service: str) -> str:
        """The connection `service` (intake, routing, supervision, notify) works with: its own role's, else the owner's."""
        return getattr(self, f"{service}_database_url", "") or self.database_url

    def service_role(self, service: str) -> str | None:
        """The PostgreSQL role of `service`'s own connection (None: it has none, and works as the owner)."""
        url = getattr(self, f"{service}_database_url", "")
        if not url:
            return None
        user = urlsplit(url).username
        return unquote(user) if user else None

    def media_folder(self) -> Path:
        """Where the folder media store keeps photos."""
        if self.media_dir is not None:
            return self.media_dir
        state = os.environ.get("WANGGE_STATE_DIR")
        return (Path(state) if state else REPO_ROOT / ".local") / "media"

    def schema(self, service: str) -> str:
        """The PostgreSQL schema a service owns."""
        return f"{self.schema_prefix}{service}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
