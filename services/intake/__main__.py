"""`python -m services.intake`: serve intake (reports over HTTP and from wangge.reports, held reports)."""
from __future__ import annotations

from services.intake.bootstrap import build
from shared.serve import serve_command

DESCRIPTION = (
    "Serve wangge's intake (受理): it takes reports over HTTP (POST /api/v1/reports) and from wangge.reports, "
    "numbers the cases and publishes case.reported / case.accepted on wangge.cases; the command center "
    "classifies, locates, rejects or merges held reports (POST /api/v1/cases/{case_no}/classify|locate|reject|"
    "merge). Credentials come from the shared registry: python -m shared.credentials issue|revoke|seed-demo. "
    "HTTP on WANGGE_HTTP_HOST (127.0.0.1): /healthz, /readyz, /metrics, /docs. Configuration: WANGGE_* "
    "environment variables (see `./dev env` and shared/settings.py)."
)


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    return serve_command(argv, service="intake", description=DESCRIPTION, build=build)


if __name__ == "__main__":
    raise SystemExit(main())
