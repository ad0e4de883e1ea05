"""The fault run in full: reports stream in while each service, then the broker, then PostgreSQL is killed with
SIGKILL and restarted; afterwards every report must be exactly one case, one task and one acknowledgement.

    .venv/bin/python -m bench.faults --reports 10000 --rate 200

It is the suite's test (tests/e2e/test_faults.py, 1,000 reports at 80/s there) run with more reports at a
higher rate, through `./dev test` (which starts Kafka and PostgreSQL). Its verdict is the test's: the exit code
says whether anything was lost or doubled; the time it took is printed.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=10_000, help="reports streamed (default 10,000)")
    parser.add_argument("--rate", type=float, default=200, help="reports per second (default 200)")
    parser.add_argument("--overlap-reports", type=int, default=6_000,
                        help="reports streamed while the broker and PostgreSQL are killed 1.5 s apart (default 6,000)")
    parser.add_argument("--overlap-rate", type=float, default=200,
                        help="their rate per second (default 200)")
    args = parser.parse_args(argv)
    env = {**os.environ, "WANGGE_FAULT_REPORTS": str(args.reports), "WANGGE_FAULT_RATE": str(args.rate),
           "WANGGE_FAULT_OVERLAP_REPORTS": str(args.overlap_reports), "WANGGE_FAULT_OVERLAP_RATE": str(args.overlap_rate)}
    print(f"fault run: {args.reports:,} reports at {args.rate:g}/s, each service, the broker and PostgreSQL "
          f"killed (SIGKILL) and restarted on the way; then {args.overlap_reports:,} at {args.overlap_rate:g}/s with "
          "the broker and PostgreSQL killed 1.5 s apart, both orders, and no restart of any service …", flush=True)
    started = time.monotonic()
    rc = subprocess.call([str(REPO / "dev"), "test", "tests/e2e/test_faults.py", "-q", "-p", "no:cacheprovider"],
                         cwd=REPO, env=env)
    verdict = "nothing lost, nothing doubled" if rc == 0 else "FAILED: see the test's output above"
    print(f"fault run: {verdict} ({time.monotonic() - started:.0f} s)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
