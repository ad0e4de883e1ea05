"""The street's time rules on `wangge.street-config` (internal, compacted, key: "street").

Supervision owns the configuration in force (edited through PUT /api/v1/admin/street-config) and publishes
every version, in the transaction that commits it, and again at each start; routing and notify keep
the latest version they have seen (shared/street_rules.py). A replayed or older version changes nothing.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.contracts.registry import EventModel, event

# One street per deployment: one key, so compaction keeps exactly the configuration in force.
STREET_CONFIG_KEY = "street"


@event
class StreetConfigChanged(EventModel):
    """The street's time rules in force: their version and the whole configuration (the `config` of
    GET /api/v1/admin/street-config: calendar, reminder, stages, escalation, survey)."""

    TYPE = "street.config-changed"
    street_version: int = Field(ge=1, description="the configuration's version; a higher one replaces a lower one")
    config: dict[str, Any]
    changed_by: str = Field(max_length=200, description="who made this version (seed, admin:<name>)")
