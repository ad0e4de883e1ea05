"""Each reporting bridge is a Kafka principal of its own (issue 18, item 2: "all terminals and the hotline share one
principal"), attacked on the real secure broker (SASL/SCRAM + ACLs, the production profile's Kafka).

`python -m shared.kafka_security plan --bridge NAME …` makes a SCRAM user per bridge (`bridge-<name>`): each writes
wangge.reports and reads the replies in consumer groups of its own. One bridge's password opens none of another's
groups, nothing beyond its topics, and removing one bridge's user shuts out that bridge alone. (Which bridge sent a
report is told by its credential's signature, to which intake scopes de-duplication: test_report_senders.py.)"""
from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError

from shared.kafka_security import DEFAULT_BRIDGES, acl_plan, bridge_principal, principals
from shared.settings import REPO_ROOT
from tests.integration.test_kafka_security import produce, read, secure, secure_broker, topics  # noqa: F401 — fixtures

# Its first test may wait for the session's secure broker (tests/integration/test_kafka_security.py).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REFUSED = (TopicAuthorizationFailedError, KafkaError)


def test_the_plan_has_a_user_per_bridge_and_no_shared_one(tmp_path):
    assert {bridge_principal(b) for b in DEFAULT_BRIDGES} <= set(principals(["huanwei"]))
    assert "bridge" not in principals(["huanwei"])
    acls = acl_plan("", ["huanwei"], bridges=["gw-east", "hotline"])
    groups = {a.principal: a.name for a in acls if a.resource == "GROUP" and a.principal.startswith("bridge-")}
    # A bridge's group prefix ends with '.', which its name cannot hold: never the start of another bridge's.
    assert groups == {"bridge-gw-east": "bridge-gw-east.", "bridge-hotline": "bridge-hotline."}
    with pytest.raises(ValueError):
        bridge_principal("hotline.x")  # would make a prefix of another's groups
    # The CLI: a user and an env file per named bridge; a bad name is refused with the reason, not a trace.
    out = tmp_path / "spec.tsv"
    done = subprocess.run([sys.executable, "-m", "shared.kafka_security", "plan", "--out", str(out),
                           "--bridge", "gw-east", "--bridge", "gw-west", "--bridge", "hotline"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    users = [line.split("\t")[1] for line in out.read_text().splitlines() if line.startswith("user\t")]
    assert {"bridge-gw-east", "bridge-gw-west", "bridge-hotline"} <= set(users) and "bridge" not in users
    assert (tmp_path / "bridge-gw-west.env").stat().st_mode & 0o077 == 0
    bad = subprocess.run([sys.executable, "-m", "shared.kafka_security", "plan", "--out", str(out),
                          "--bridge", "Gw.East"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "lower-case letters" in bad.stderr


async def test_a_bridges_password_opens_nothing_of_another_bridge(secure, topics):  # noqa: F811 — fixtures
    pw, p = secure["passwords"], secure["prefix"]
    terminals, hotline = (bridge_principal(b) for b in DEFAULT_BRIDGES)
    # Each writes reports as itself, and reads what the residents were told in its own groups.
    for bridge in (terminals, hotline):
        await produce(bridge, pw[bridge], topics.reports, b'{"probe": "report"}')
    await produce("admin", pw["admin"], topics.replies, b'{"probe": "reply"}')
    assert await read(hotline, pw[hotline], topics.replies, f"{p}{hotline}.app", want=1)
    # The hotline's password in the terminals' group (to take its place, or move its offsets): refused.
    with pytest.raises(REFUSED):
        await read(hotline, pw[hotline], topics.replies, f"{p}{terminals}.app", want=1, timeout=10)
    # …or in a group that merely starts with its own user's name.
    with pytest.raises(REFUSED):
        await read(hotline, pw[hotline], topics.replies, f"{p}{hotline}-2.app", want=1, timeout=10)
    # Nothing beyond its topics: no other report read, no case, credential, contact or owner's update written.
    with pytest.raises(REFUSED):
        await read(hotline, pw[hotline], topics.reports, f"{p}{hotline}.peek", want=1, timeout=10)
    for forbidden in (topics.cases, topics.credentials, topics.contacts, topics.task_updates):
        with pytest.raises(REFUSED):
            await produce(hotline, pw[hotline], forbidden, b"{}")
    # The shared user of before is gone: its name opens nothing (SASL refuses it).
    with pytest.raises((*REFUSED, asyncio.TimeoutError, ConnectionError)):
        await produce("bridge", pw[hotline], topics.reports, b"{}")
