"""The production profile refuses an unauthenticated Kafka (issue 18: "`WANGGE_PROFILE=production` does not require
SASL"; item 1: "SASL/SCRAM (and TLS where configured) on every Kafka connection … required, or the service says
exactly what is missing and exits").

Kafka is wangge's root of trust: on PLAINTEXT anyone who reaches the broker publishes and reads. Each service must
connect as its own SCRAM user (whose ACLs tests/integration/test_kafka_security.py attacks on the real secure
broker); started without one, it names the setting and exits 2 before it connects to anything."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shared.settings import REPO_ROOT, Settings
from shared.signing import SIGNERS, generate

KEYS, PUBLIC = generate(SIGNERS)


def ready(**overrides) -> Settings:
    """A production configuration that lacks nothing (but what a test takes away)."""
    values = dict(profile="production", sms_inbound_token="x" * 32, resident_key="k" * 32,
                  sms_gateway_addresses="198.51.100.5",
                  signing_public_keys=PUBLIC, kafka_security_protocol="SASL_SSL", kafka_username="routing",
                  kafka_password="p" * 24, **{f"{s}_signing_key": KEYS[s] for s in ("intake", "routing",
                                                                                        "supervision", "notify")})
    values.update(overrides)
    return Settings(**values)


@pytest.mark.parametrize("service", ["intake", "routing", "supervision", "notify"])
def test_every_service_refuses_plaintext_kafka_and_a_missing_scram_user(service: str):
    assert ready().production_problems(service) == []
    plaintext = ready(kafka_security_protocol="PLAINTEXT").production_problems(service)
    assert any(p.startswith("WANGGE_KAFKA_SECURITY_PROTOCOL: PLAINTEXT") for p in plaintext)
    for missing in ({"kafka_username": ""}, {"kafka_password": ""}):
        problems = ready(kafka_security_protocol="SASL_PLAINTEXT", **missing).production_problems(service)
        assert any("SCRAM user is not set" in p for p in problems), missing
    # Development keeps the local PLAINTEXT broker of ./dev.
    assert ready(profile="development", kafka_security_protocol="PLAINTEXT").production_problems(service) == []


def test_a_service_started_in_production_on_plaintext_kafka_exits_naming_it():
    env = {**os.environ, "WANGGE_PROFILE": "production", "WANGGE_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
           "WANGGE_KAFKA_BOOTSTRAP": "127.0.0.1:9", "WANGGE_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"}
    started = subprocess.run([sys.executable, "-m", "services.intake", "--port", "9"], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 2, started.stderr
    assert "production profile refuses to start" in started.stderr
    assert "WANGGE_KAFKA_SECURITY_PROTOCOL: PLAINTEXT" in started.stderr
