"""What a service's pool asks of the server it connects to (shared/db.py session_attrs): one that accepts writes."""
from __future__ import annotations

import pytest

from shared.db import session_attrs

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("dsn", "expected"), [
    # One server: asked anyway (PostgreSQL reports both settings the check reads, so it costs no query).
    ("postgresql://wangge@127.0.0.1:15432/wangge", {"target_session_attrs": "read-write"}),
    # The failover cluster's URL (deploy/local/patroni.sh dsn) says it itself: asyncpg reads it from the URL.
    ("postgresql://wangge@127.0.0.1:15432,127.0.0.1:15433/wangge?target_session_attrs=read-write", {}),
    # Every member listed but the parameter forgotten: still never a standby.
    ("postgresql://wangge@127.0.0.1:15432,127.0.0.1:15433/wangge", {"target_session_attrs": "read-write"}),
    # An operator who wants something else says so in the URL, and is not overridden.
    ("postgresql://wangge@db-a,db-b/wangge?sslmode=require&target_session_attrs=primary", {}),
])
def test_a_pool_only_takes_a_server_that_accepts_writes_unless_the_url_says_otherwise(dsn, expected):
    assert session_attrs(dsn) == expected
