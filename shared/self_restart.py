"""A process that says it cannot go on by itself (its /healthz answers 503) is restarted by its supervisor:
systemd, Kubernetes' liveness probe, `./dev up` when it is run. Where no supervisor acts — `./dev up` is run once,
not kept watching — the process restarts itself after WANGGE_SELF_RESTART_SECONDS of that state: it replaces
itself (exec) with a fresh run of the same command, as a supervisor would after killing it. What it held in
flight is in PostgreSQL or replayed from Kafka, as after any kill (the fault test's guarantee)."""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)


def restart_itself() -> None:
    """Replace this process with a fresh run of the command that started it (same pid, same arguments)."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def watch(name: str, problem: Callable[[], str | None], after: float, *, interval: float = 1.0,
          restart: Callable[[], None] = restart_itself) -> threading.Thread | None:
    """Watch `problem()` from a thread of its own (the event loop may be what is stuck) and call `restart` once it has
    said the same process needs a restart for `after` seconds; None (nothing watched) when `after` is 0."""
    if after <= 0:
        return None

    def loop() -> None:
        since: float | None = None
        while True:
            time.sleep(interval)
            why = problem()
            if why is None:
                since = None
                continue
            since = since or time.monotonic()
            if time.monotonic() - since >= after:
                log.error("%s: %s — for %.0f s, and no supervisor restarted it: it restarts itself", name, why,
                          time.monotonic() - since)
                restart()
                return

    thread = threading.Thread(target=loop, name=f"{name}:self-restart", daemon=True)
    thread.start()
    return thread
