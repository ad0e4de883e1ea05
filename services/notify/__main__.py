"""`python -m services.notify`: serve the notify service (consumer, delivery worker, HTTP API)."""
from __future__ import annotations

import argparse

from shared.serve import build_and_serve
from shared.settings import get_settings

from services.notify.bootstrap import build


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m services.notify",
        description="Serve wangge's notify service: it consumes wangge.cases, keeps residents' contacts, sends "
        "acknowledgement SMS through the gateway at WANGGE_SMS_GATEWAY_URL (for development: "
        "python -m deploy.local.sms_sink) and publishes each reply on wangge.replies. HTTP on WANGGE_HTTP_HOST (127.0.0.1): "
        "/api/v1/deliveries, /healthz, /readyz, /metrics, /docs. Configuration: WANGGE_* environment "
        "variables (see shared/settings.py).",
    )
    parser.add_argument("--port", type=int, default=settings.notify_port,
                        help=f"HTTP port (default: WANGGE_NOTIFY_PORT, now {settings.notify_port})")
    args = parser.parse_args(argv)
    return build_and_serve(build, "notify", args.port)


if __name__ == "__main__":
    raise SystemExit(main())
