"""Accounts' pure rules: kinds and their roles and bindings, a coordinator's unit grids, guessing counted and locked."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.supervision.domain.accounts import (AccountError, Guard, GuardPolicy, binding, check_password,
                                                  check_username, claim, normal_username)

pytestmark = pytest.mark.unit

AT = datetime(2026, 12, 6, 9, 0, tzinfo=timezone(timedelta(hours=8)))
POLICY = GuardPolicy(limit=3, window=timedelta(minutes=15), lock=timedelta(minutes=15))


def test_kinds_map_to_the_registry_roles_with_their_bindings(demo_street):
    assert binding(demo_street, "operator", None, None).role == "operator"
    assert binding(demo_street, "admin", None, None).role == "admin"
    coordinator = binding(demo_street, "coordinator", "huanwei", "W001")
    assert (coordinator.role, coordinator.worker_id, coordinator.owner_code) == ("terminal", "W001", None)
    owner = binding(demo_street, "owner", "370402001001", "W001")
    assert (owner.role, owner.owner_code, owner.worker_id) == ("owner", "370402001001", None)
    for kind, code, worker in (("owner", "nope", None), ("owner", None, None), ("coordinator", None, "W9999"), ("coordinator", None, "S001"),
                               ("coordinator", None, None), ("mayor", None, None)):
        with pytest.raises(AccountError):
            binding(demo_street, kind, code, worker)


def test_usernames_and_passwords():
    assert normal_username("  ZhangSan ") == "zhangsan"
    assert check_username("huanwei-01") == "huanwei-01" and check_username("370402001001") == "370402001001"
    for bad in ("", "-x", "张三", "a b", "x" * 51, "a/b"):
        with pytest.raises(AccountError):
            check_username(bad)
    with pytest.raises(AccountError):
        check_password("short")
    with pytest.raises(AccountError):
        check_password("x" * 201)


def test_attempts_are_counted_then_locked_and_the_lock_lifts():
    guard = Guard()
    for n in range(1, 3):
        c = claim(guard, AT, POLICY)
        assert c.allowed and c.guard.attempts == n and not c.locks_now
        guard = c.guard
    last = claim(guard, AT, POLICY)
    assert last.allowed and last.locks_now and last.guard.locked_until == AT + POLICY.lock
    refused = claim(last.guard, AT + timedelta(minutes=5), POLICY)
    assert not refused.allowed and refused.retry_after == 600
    after = claim(last.guard, AT + timedelta(minutes=16), POLICY)
    assert after.allowed and after.guard.attempts == 1 and after.guard.locked_until is None


def test_the_count_starts_afresh_after_its_window_and_the_delay_doubles_to_a_cap():
    guard = claim(claim(Guard(), AT, POLICY).guard, AT, POLICY).guard
    assert claim(guard, AT + timedelta(minutes=20), POLICY).guard.attempts == 1
    assert [POLICY.delay(n) for n in range(0, 7)] == [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 4.0]
