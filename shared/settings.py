"""Settings read from the environment (WANGGE_*), one object per process."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything a service needs to find its infrastructure and its street."""

    model_config = SettingsConfigDict(env_prefix="WANGGE_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:19092"
    database_url: str = "postgresql://wangge@127.0.0.1:15432/wangge"
    # Prefixes keep test runs apart on one broker/database; production leaves them empty
    # so topics carry exactly the contract's names.
    topic_prefix: str = ""
    schema_prefix: str = ""
    street_dir: Path = Field(default=REPO_ROOT.parent / "shared" / "data")
    street_timezone: str = "Asia/Shanghai"
    http_host: str = "127.0.0.1"
    intake_port: int = 8101
    routing_port: int = 8102
    supervision_port: int = 8103
    notify_port: int = 8104
    sms_gateway_url: str = "http://127.0.0.1:8109/sms"
    sms_signature: str = "文化路街道"
    log_level: str = "INFO"
    # development accepts the fixed demo credentials of ./dev up; production refuses them.
    profile: Literal["development", "production"] = "development"
    # Replies to residents are retried for as long as they are still useful.
    reply_ttl_hours: float = 24.0
    # How long after closing a resident may answer the survey (and an unsatisfied answer reopens the case).
    survey_window_days: float = 7.0
    # The SMS gateway's inbound-reply callback must send this in X-Gateway-Token (empty: not checked, development).
    sms_inbound_token: str = ""
    # How long a consumer waits before retrying when PostgreSQL or Kafka is unreachable.
    retry_backoff_seconds: float = 1.0
    outbox_poll_seconds: float = 0.5
    deadline_poll_seconds: float = 1.0

    def schema(self, service: str) -> str:
        """The PostgreSQL schema a service owns."""
        return f"{self.schema_prefix}{service}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
