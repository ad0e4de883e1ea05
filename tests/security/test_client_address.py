"""The client address: X-Forwarded-For believed only as far as trusted proxies wrote it."""
from __future__ import annotations

import pytest

from shared.proxies import client_address_from
from shared.settings import Settings, trusted_networks
from shared.signing import SIGNERS, generate

LOOPBACK = trusted_networks("127.0.0.1,::1")


def test_a_direct_client_s_own_x_forwarded_for_is_ignored():
    assert client_address_from("203.0.113.9", ["10.0.0.1"], LOOPBACK) == "203.0.113.9"
    assert client_address_from("203.0.113.9", ["127.0.0.1"], LOOPBACK) == "203.0.113.9"


def test_behind_the_front_door_the_right_most_untrusted_hop_is_the_client():
    # nginx appends the address it saw to whatever the client wrote.
    assert client_address_from("127.0.0.1", ["6.6.6.6, 203.0.113.9"], LOOPBACK) == "203.0.113.9"
    assert client_address_from("127.0.0.1", ["6.6.6.6", "203.0.113.9"], LOOPBACK) == "203.0.113.9"
    # A client pretending to be one of the trusted proxies gains nothing: the hop left of it is its own too.
    assert client_address_from("127.0.0.1", ["6.6.6.6, 127.0.0.1, 203.0.113.9"], LOOPBACK) == "203.0.113.9"


def test_a_chain_of_trusted_proxies_is_walked_and_garbage_stops_the_walk():
    proxies = trusted_networks("127.0.0.1,10.1.0.0/16")
    assert client_address_from("127.0.0.1", ["6.6.6.6, 203.0.113.9, 10.1.2.3"], proxies) == "203.0.113.9"
    assert client_address_from("127.0.0.1", ["6.6.6.6, not-an-ip"], proxies) == "not-an-ip"
    assert client_address_from("127.0.0.1", [], proxies) == "127.0.0.1"
    assert client_address_from(None, ["6.6.6.6"], proxies) == "unknown"


def test_the_production_profile_names_what_is_missing():
    # Each secret given empty here: Settings would otherwise read what ./dev exported into the environment.
    problems = Settings(profile="production", sms_inbound_token="", resident_key="",
                        trusted_proxies="127.0.0.1,nginx").production_problems("notify")
    assert any("WANGGE_SMS_INBOUND_TOKEN" in p for p in problems)
    assert any("WANGGE_TRUSTED_PROXIES" in p and "nginx" in p for p in problems)
    assert any("WANGGE_RESIDENT_KEY" in p for p in problems)
    assert any("WANGGE_RESIDENT_KEY" in p
               for p in Settings(profile="production", resident_key="").production_problems("intake"))
    keys, public = generate(SIGNERS)  # its Kafka signing keys (tests/security/test_kafka_signatures.py)
    assert Settings(profile="production", sms_inbound_token="x" * 32, resident_key="k" * 32,
                    notify_signing_key=keys["notify"], signing_public_keys=public,
                    kafka_security_protocol="SASL_SSL", kafka_username="notify",
                    kafka_password="p" * 24, sms_gateway_addresses="198.51.100.5").production_problems("notify") == []
    assert Settings(profile="development").production_problems("notify") == []


@pytest.mark.parametrize("spec", ["127.0.0.1", "127.0.0.1, ::1", "10.0.0.0/8,192.168.1.1"])
def test_trusted_proxies_take_addresses_and_networks(spec: str):
    assert trusted_networks(spec)
