"""Which PostgreSQL statements a case costs, by service role: calls and time per case, and the CPU of each.

Needs pg_stat_statements, which `./dev` loads only when asked (WANGGE_PG_STAT_STATEMENTS=1 before PostgreSQL starts:
deploy/local/postgres.sh). Around any run (a bench.e2e burst, say):

    .venv/bin/python -m bench.statements start
    .venv/bin/python -m bench.e2e --reports 3000
    .venv/bin/python -m bench.statements report --cases 3500     (warm-up reports included: they were cases too)

`start` empties pg_stat_statements and notes the CPU of every PostgreSQL process so far; `report` prints, per role
(each service has its own: wangge_intake …), the statements per case, the explicit transactions (COMMITs) per case,
execution and planning per case and the CPU its backends used per case (backends born since count whole), then the
CPU of every kind of PostgreSQL process (walwriter, autovacuum…, ended ones together) and each role's statements by
calls.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import asyncpg

from bench.support import state_dir

REPO = Path(__file__).resolve().parents[1]
from shared.settings import get_settings

SNAPSHOT = "statements-start.json"


def _exited_ticks(pid: int) -> int:
    """cutime + cstime of the postmaster: what its children that ended used (autovacuum workers, closed backends)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[13]) + int(fields[14])


def _postmaster() -> int:
    where = subprocess.run([str(REPO / "deploy" / "local" / "postgres.sh"), "where"], capture_output=True, text=True,
                           check=True).stdout.strip()
    return int((Path(where) / "data" / "postmaster.pid").read_text().split()[0])


def _processes(postmaster: int) -> dict[int, tuple[str, int]]:
    """Every child of the postmaster: pid → (what it is — the role for a client backend, else its title —, ticks)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[1]) != postmaster:
                continue
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        words = title.removeprefix("postgres:").split()
        kind = words[0] if len(words) >= 3 and "(" in words[2] else " ".join(words[:3]) or "?"
        found[int(entry.name)] = (kind, int(stat[11]) + int(stat[12]))
    return found


async def start(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_stat_statements_reset()")
    finally:
        await conn.close()
    postmaster = _postmaster()
    snapshot = {"postmaster": postmaster, "exited": _exited_ticks(postmaster),
                "processes": {str(pid): list(v) for pid, v in _processes(postmaster).items()}}
    path = state_dir() / "bench" / SNAPSHOT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(snapshot))
    print(f"pg_stat_statements reset; {len(snapshot['processes'])} PostgreSQL processes noted in {path}")


def _cpu_since(snapshot: dict) -> dict[str, float]:
    """CPU ms per kind of PostgreSQL process since the snapshot: processes born since count whole; those that ended
    are in 'exited (…)' (the postmaster's children's time, whoever they were)."""
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    postmaster = snapshot["postmaster"]
    cpu: dict[str, float] = defaultdict(float)
    for pid, (kind, ticks) in _processes(postmaster).items():
        before = snapshot["processes"].get(str(pid))
        cpu[kind] += (ticks - (before[1] if before else 0)) * tick_ms
    cpu["exited (autovacuum workers, closed backends)"] += (_exited_ticks(postmaster) - snapshot["exited"]) * tick_ms
    return cpu


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
    finally:
        await conn.close()
    cpu = _cpu_since(json.loads((state_dir() / "bench" / SNAPSHOT).read_text()))
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
    print("\nPostgreSQL CPU ms per case by process: " + ", ".join(
        f"{kind} {ms / cases:.3f}" for kind, ms in sorted(cpu.items(), key=lambda kv: -kv[1]) if ms > 0))
    print(f"  all PostgreSQL: {sum(cpu.values()) / cases:.3f} ms per case")
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
