"""People who sign in: account kinds and the roles they act with, their unit grids, and how guessing is slowed and
locked. Pure: no I/O (the tables are services/supervision/adapters/account_store.py)."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.street import Street

# An account kind acts with one of the registry's roles (shared/auth.py Client): a coordinator (网格员) is a
# terminal bound to their worker id, an owner's staff member acts for one owner code.
KIND_ROLES: dict[str, str] = {"operator": "operator", "coordinator": "terminal", "owner": "owner", "admin": "admin"}
KIND_LABELS: dict[str, str] = {"operator": "指挥中心", "coordinator": "网格员", "owner": "责任单位", "admin": "管理员"}
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,49}$")
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 200  # argon2 takes any length; a megabyte password is only a way to burn CPU


class AccountError(ValueError):
    """An account cannot be made or changed like this; the message says why (Chinese and English)."""


def normal_username(text: str) -> str:
    """How a username is stored and looked up: trimmed, lower case."""
    return text.strip().lower()


def check_username(username: str) -> str:
    if not USERNAME.match(username):
        raise AccountError("username: 1-50 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit "
                           "(用户名只能包含小写字母、数字和 . _ -)")
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS or len(password) > MAX_PASSWORD_CHARS:
        raise AccountError(f"password: {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters "
                           f"(密码长度须为 {MIN_PASSWORD_CHARS}-{MAX_PASSWORD_CHARS} 位)")
    return password


@dataclass(frozen=True)
class Binding:
    """What an account of a kind is bound to, checked against the street."""

    role: str
    owner_code: str | None
    worker_id: str | None


def binding(street: Street, kind: str, owner_code: str | None, worker_id: str | None) -> Binding:
    """The role and bindings of a new account; AccountError if the kind needs a binding the street does not know."""
    if kind not in KIND_ROLES:
        raise AccountError(f"kind: one of {', '.join(KIND_ROLES)} (账户类型无效)")
    if kind == "owner":
        if owner_code not in owner_codes(street):
            raise AccountError(f"owner_code {owner_code!r} is not a department or community of the street (责任单位代码无效)")
        return Binding("owner", owner_code, None)
    if kind == "coordinator":
        if worker_id is None or worker_id not in street.coordinator_grids():
            raise AccountError(f"worker_id {worker_id!r} is not a coordinator of a unit grid of the street "
                               "(网格员编号无效)")
        return Binding("terminal", None, worker_id)
    return Binding(KIND_ROLES[kind], None, None)


def owner_codes(street: Street) -> dict[str, str]:
    """Every code a task can be owned by (departments and communities) → its name."""
    codes = {d.code: d.name for d in street.departments.values()}
    codes.update({g.code: g.name for g in street.level("community")})
    return codes


# ---- guessing --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GuardPolicy:
    """How many attempts a username (or a client address) has in a window before it is locked, and for how long."""

    limit: int
    window: timedelta
    lock: timedelta
    max_delay: float = 4.0

    def delay(self, attempts: int) -> float:
        """Seconds a failed attempt waits before its answer: doubling from a quarter of a second, capped."""
        return 0.0 if attempts <= 0 else min(self.max_delay, 0.25 * 2 ** (attempts - 1))


@dataclass(frozen=True)
class Guard:
    """The attempts counted against one username or address in its window, and its lock."""

    attempts: int = 0
    window_started: datetime | None = None
    locked_until: datetime | None = None


@dataclass(frozen=True)
class Claim:
    """The outcome of counting one attempt: allowed (its password is checked) or refused while locked."""

    allowed: bool
    guard: Guard
    retry_after: float = 0.0

    @property
    def locks_now(self) -> bool:
        """This attempt was the last the limit allows: should it fail, the answer is the lock."""
        return self.allowed and self.guard.locked_until is not None


def claim(guard: Guard, at: datetime, policy: GuardPolicy) -> Claim:
    """Count an attempt before its password is checked (a burst of parallel guesses cannot outrun the lock)."""
    if guard.locked_until is not None and guard.locked_until > at:
        return Claim(False, guard, (guard.locked_until - at).total_seconds())
    if (guard.locked_until is not None or guard.window_started is None
            or at - guard.window_started > policy.window):
        guard = Guard(0, at, None)  # a lock served, or the window over: a fresh count
    guard = replace(guard, attempts=guard.attempts + 1)
    if guard.attempts >= policy.limit:
        guard = replace(guard, locked_until=at + policy.lock)
    return Claim(True, guard)
