"""Which PostgreSQL statements a case costs, by service role: calls and time per case, and each role's backend CPU.

Needs pg_stat_statements, which `./dev` loads only when asked (WANGGE_PG_STAT_STATEMENTS=1 before PostgreSQL starts:
deploy/local/postgres.sh). Around any run (a bench.e2e burst, say):

    .venv/bin/python -m bench.statements start
    .venv/bin/python -m bench.e2e --reports 3000
    .venv/bin/python -m bench.statements report --cases 3500     (warm-up reports included: they were cases too)

`start` empties pg_stat_statements and notes each backend's CPU so far; `report` prints, per role (each service has
its own: wangge_intake …), the statements per case, the transactions per case (commits and statements run outside
an explicit transaction), execution time per case and the CPU its backends used per case (backends that came and went
between the two are not counted: the pools keep theirs), then each role's statements by calls and by time.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
from collections import defaultdict
from pathlib import Path

import asyncpg

from bench.support import state_dir
from shared.settings import get_settings

SNAPSHOT = "statements-start.json"


def _ticks(pid: int) -> int | None:
    """utime + stime of one process, in clock ticks (None: gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


async def _backends(conn: asyncpg.Connection) -> dict[int, str]:
    rows = await conn.fetch("SELECT pid, usename FROM pg_stat_activity WHERE datname = current_database()"
                            " AND backend_type = 'client backend'")
    return {r["pid"]: r["usename"] for r in rows}


async def start(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_stat_statements_reset()")
        backends = await _backends(conn)
    finally:
        await conn.close()
    snapshot = {str(pid): [role, _ticks(pid)] for pid, role in backends.items()}
    path = state_dir() / "bench" / SNAPSHOT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(snapshot))
    print(f"pg_stat_statements reset; {len(snapshot)} backends noted in {path}")


def _short(query: str, width: int) -> str:
    text = re.sub(r"\s+", " ", query).strip()
    return text if len(text) <= width else text[: width - 1] + "…"


async def report(dsn: str, cases: int, top: int, width: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT r.rolname AS role, s.query, s.calls, s.total_exec_time AS ms, s.total_plan_time AS plan_ms, s.plans, s.rows, s.toplevel
               FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
               WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())""")
        backends = await _backends(conn)
    finally:
        await conn.close()
    snapshot = json.loads((state_dir() / "bench" / SNAPSHOT).read_text())
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    cpu: dict[str, float] = defaultdict(float)
    for pid, role in backends.items():
        before = snapshot.get(str(pid))
        now = _ticks(pid)
        if before is not None and before[1] is not None and now is not None:
            cpu[role] += (now - before[1]) * tick_ms
    by_role: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for row in rows:
        by_role[row["role"]].append(row)
    print(f"per case ({cases} cases); statements = top-level calls, BEGIN and COMMIT included; nested = run inside"
          " another (triggers, functions)")
    print(f"{'role':<20} {'statements':>10} {'nested':>8} {'commits':>8} {'exec ms':>8} {'plans':>7} {'plan ms':>8}"
          f" {'backend CPU ms':>15}")
    totals = [0.0] * 7
    for role in sorted(by_role, key=lambda r: -sum(x["calls"] for x in by_role[r] if x["toplevel"])):
        mine = by_role[role]
        statements = sum(x["calls"] for x in mine if x["toplevel"]) / cases
        nested = sum(x["calls"] for x in mine if not x["toplevel"]) / cases
        commits = sum(x["calls"] for x in mine if x["toplevel"] and x["query"].strip().upper() in ("COMMIT", "COMMIT;"))
        ms = sum(x["ms"] for x in mine if x["toplevel"]) / cases
        plans = sum(x["plans"] or 0 for x in mine if x["toplevel"]) / cases
        plan_ms = sum(x["plan_ms"] or 0 for x in mine if x["toplevel"]) / cases
        figures = (statements, nested, commits / cases, ms, plans, plan_ms, cpu.get(role, 0.0) / cases)
        totals = [a + b for a, b in zip(totals, figures)]
        print(_line(role, figures))
    print(_line("all", totals))
    for role in sorted(by_role):
        mine = sorted(by_role[role], key=lambda x: -x["calls"])[:top]
        print(f"\n{role}: top {len(mine)} by calls — calls/case, exec µs/case, plans/case, plan µs/case, rows/call,"
              " statement")
        for x in mine:
            print(f"  {x['calls'] / cases:>7.3f} {1000 * x['ms'] / cases:>8.1f} {(x['plans'] or 0) / cases:>7.3f}"
                  f" {1000 * (x['plan_ms'] or 0) / cases:>8.1f} {x['rows'] / max(1, x['calls']):>7.1f}"
                  f" {'  ' if x['toplevel'] else '↳ '}{_short(x['query'], width)}")


def _line(label: str, f: "tuple[float, ...] | list[float]") -> str:
    return (f"{label:<20} {f[0]:>10.2f} {f[1]:>8.2f} {f[2]:>8.3f} {f[3]:>8.3f} {f[4]:>7.2f} {f[5]:>8.3f}"
            f" {f[6]:>15.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("start", "report"))
    parser.add_argument("--cases", type=int, default=1, help="divide by this many cases (report)")
    parser.add_argument("--top", type=int, default=15, help="statements listed per role (report)")
    parser.add_argument("--width", type=int, default=110, help="characters of each statement shown (report)")
    args = parser.parse_args()
    dsn = get_settings().database_url
    if args.what == "start":
        asyncio.run(start(dsn))
    else:
        asyncio.run(report(dsn, args.cases, args.top, args.width))


if __name__ == "__main__":
    main()
