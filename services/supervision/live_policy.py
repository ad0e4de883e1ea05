"""The street's policy in force in one supervision process, followed from its street_config table."""
from __future__ import annotations

import logging

from services.supervision.adapters import config_store
from services.supervision.domain.policy import StreetPolicy
from shared.street_config import StreetConfigError, from_mapping

log = logging.getLogger(__name__)


class LivePolicy:
    """The street's policy under the current configuration (supervision's street_config table), shared by
    the fold and the poller of one process: cached, and reloaded when the table's version moved (checked
    once per poll, and set at once by the admin route that committed a change)."""

    def __init__(self, policy: StreetPolicy):
        self.policy = policy

    async def refresh(self, conn) -> StreetPolicy:
        """Reload if another instance (or this one) committed a newer configuration."""
        version = await config_store.version(conn)
        if version and version != self.policy.version:
            row = await config_store.current(conn)
            if row is not None:
                self.set(row["config"], row["version"])
        return self.policy

    def set(self, config: dict, version: int) -> None:
        """Follow a committed configuration (an invalid stored one is logged and ignored)."""
        try:
            parsed = from_mapping(config, f"street_config version {version}")
        except StreetConfigError as exc:
            log.error("%s; keeping version %d", exc, self.policy.version)
            return
        if version > self.policy.version or self.policy.version == 0:
            self.policy = self.policy.with_config(parsed, version)
            log.info("street configuration version %d in force", version)
