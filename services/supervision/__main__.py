"""`python -m services.supervision`: serve the supervision service."""
from __future__ import annotations

import argparse
import sys

from services.supervision.bootstrap import build
from shared.serve import build_and_serve
from shared.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m services.supervision",
        description="Run wangge's supervision service (督办): it folds wangge.cases into a case read model, "
        "keeps each case's handling clock in PostgreSQL, sends 催办 at 75% of the limit and 超期/督办 with "
        "escalation at 100%, and serves /api/v1/cases, /api/v1/stats/summary, /healthz, /readyz, /metrics "
        "and /docs. Configured by WANGGE_* environment variables (Kafka, PostgreSQL, WANGGE_STREET_DIR, "
        "WANGGE_DEADLINE_POLL_SECONDS).",
    )
    parser.add_argument("--port", type=int, default=settings.supervision_port,
                        help=f"HTTP port (default: WANGGE_SUPERVISION_PORT or {settings.supervision_port})")
    args = parser.parse_args(argv)
    return build_and_serve(build, "supervision", args.port)


if __name__ == "__main__":
    sys.exit(main())
