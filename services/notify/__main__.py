"""`python -m services.notify`: serve the notify service (consumer, delivery worker, HTTP API)."""
from __future__ import annotations

from services.notify.bootstrap import build
from shared.serve import serve_command

DESCRIPTION = (
    "Serve wangge's notify service: it consumes wangge.cases, keeps residents' contacts, sends "
    "acknowledgement SMS through the gateway at WANGGE_SMS_GATEWAY_URL (for development: "
    "python -m deploy.local.sms_sink) and publishes each reply on wangge.replies. HTTP on WANGGE_HTTP_HOST "
    "(127.0.0.1): /api/v1/deliveries, /healthz, /readyz, /metrics, /docs. Configuration: WANGGE_* environment "
    "variables (see shared/settings.py)."
)


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    return serve_command(argv, service="notify", description=DESCRIPTION, build=build)


if __name__ == "__main__":
    raise SystemExit(main())
