"""Intake's own metrics: photos taken and refused (POST /api/v1/media)."""
from __future__ import annotations

from prometheus_client import Counter

MEDIA_UPLOADS = Counter(
    "wangge_media_uploads_total",
    "Photo uploads: stored (new), duplicate (the same photo again: one copy kept), or refused and why",
    ["service", "outcome"],
)
