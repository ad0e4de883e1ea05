"""`python -m services.notify`: serve the notify service (consumer, delivery worker, HTTP API)."""
from __future__ import annotations

from services.notify.bootstrap import build
from shared.serve import serve_command

DESCRIPTION = (
    "Serve wangge's notify service: it consumes wangge.cases, keeps residents' contacts and followers, sends "
    "every reply (acknowledgement, rejection, progress, explanation, resolution, survey) by SMS through the "
    "gateway at WANGGE_SMS_GATEWAY_URL (for development: python -m deploy.local.sms_sink), retrying for "
    "WANGGE_REPLY_TTL_HOURS, and publishes each reply on wangge.replies. HTTP on WANGGE_HTTP_HOST (127.0.0.1): "
    "/api/v1/deliveries (operators), /api/v1/surveys/{case_no} and /api/v1/my-case (residents), "
    "/api/v1/sms/inbound (the gateway's reply callback), /healthz, /readyz, /metrics, /docs. Configuration: "
    "WANGGE_* environment variables (see shared/settings.py)."
)


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    return serve_command(argv, service="notify", description=DESCRIPTION, build=build)


if __name__ == "__main__":
    raise SystemExit(main())
