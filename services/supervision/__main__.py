"""`python -m services.supervision`: serve the supervision service."""
from __future__ import annotations

import sys

from services.supervision.bootstrap import build
from shared.serve import serve_command

DESCRIPTION = (
    "Run wangge's supervision service (督办): it folds wangge.cases into a case read model, keeps each "
    "case's handling clock in PostgreSQL, sends 催办 at 75% of the limit and 超期/督办 with escalation at "
    "100%, and serves /api/v1/cases, /api/v1/stats/summary, /healthz, /readyz, /metrics and /docs. "
    "Configured by WANGGE_* environment variables (Kafka, PostgreSQL, WANGGE_STREET_DIR, "
    "WANGGE_DEADLINE_POLL_SECONDS). `python -m services.supervision accounts --help`: the accounts people sign "
    "in with."
)


def main(argv: list[str] | None = None) -> int:
    """Command line entry: `accounts …` manages people's accounts; anything else serves."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["accounts"]:
        from services.supervision.entrypoints.accounts_cli import main as accounts
        return accounts(args[1:])
    return serve_command(argv, service="supervision", description=DESCRIPTION, build=build)


if __name__ == "__main__":
    raise SystemExit(main())
