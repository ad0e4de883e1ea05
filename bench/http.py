"""HTTP intake benchmark: `POST /api/v1/reports` with 32 connections (wrk), against the system `./dev up` started.

    .venv/bin/python -m bench.http --seconds 30

Each request is a new report (its own external_id) from the demo terminal credential. Prints accepted reports
per second, latency percentiles, and whether the pipeline behind intake kept up: the outbox backlog and the
consumers' lag sampled every second from the services' /metrics, and how long after the last request every
consumer had caught up. Installs wrk from Debian's packages on first use (as root). Goal (issue 17): ≥ 500
accepted reports/s, p99 < 100 ms, the pipeline keeping up. Figures, not assertions — but the figures are checked:
every accepted report must show as at least one Kafka record written and one PostgreSQL transaction, else the run
ends in FAIL (exit code 2). Saves its figures for bench.e2e's table of the sitting (bench/goals.py).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from bench import goals
from bench.goals import Plausible, check_plausible
from bench.support import kafka_traffic, postgres_writes, verdict
from shared.settings import Settings, get_settings

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "wrk" / "reports.lua"


def metrics_ports(settings: Settings) -> list[int]:
    """Each service's port (this stack's, WANGGE_<SERVICE>_PORT)."""
    return [settings.intake_port, settings.routing_port, settings.supervision_port, settings.notify_port]
_GAUGE = re.compile(r'^(wangge_consumer_lag|wangge_outbox_backlog)\{[^}]*\} ([0-9.e+-]+)$')


def ensure_wrk() -> str:
    """The wrk binary, installed from Debian's packages if missing."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("wrk is not installed: run `sudo apt-get install -y wrk`, or this benchmark as root")
    print("installing wrk from Debian's packages (first run only)…", flush=True)
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]
    if subprocess.run([*apt, "install", "-y", "-qq", "wrk"], stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run([*apt, "update", "-qq"], check=True)
        subprocess.run([*apt, "install", "-y", "-qq", "wrk"], check=True, stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or sys.exit("wrk did not install")


async def backlog(ports: list[int]) -> tuple[float, float]:
    """(outbox rows not relayed, messages the consumers are behind), over every service."""
    outbox = lag = 0.0
    async with httpx.AsyncClient(timeout=5) as http:
        for port in ports:
            try:
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            except httpx.HTTPError:
                continue
            for line in text.splitlines():
                if m := _GAUGE.match(line):
                    if m[1] == "wangge_outbox_backlog":
                        outbox += float(m[2])
                    else:
                        lag += float(m[2])
    return outbox, lag


async def run(url: str, seconds: int, connections: int, threads: int) -> int:
    wrk = ensure_wrk()
    settings = get_settings()
    ports = metrics_ports(settings)
    traffic_before = await kafka_traffic(settings.kafka_bootstrap)
    writes_before = await postgres_writes(settings.database_url)
    tag = f"wrk-{uuid.uuid4().hex[:6]}"
    print(f"POST {url}/api/v1/reports: {connections} connections, {threads} threads, {seconds} s (tag {tag}) …",
          flush=True)
    proc = await asyncio.create_subprocess_exec(
        wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(SCRIPT), url,
        env={**os.environ, "WANGGE_BENCH_TAG": tag}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    samples: list[tuple[float, float, float]] = []
    started = time.monotonic()
    while proc.returncode is None:
        try:
            await asyncio.wait_for(proc.wait(), 1.0)
        except asyncio.TimeoutError:
            pass
        samples.append((time.monotonic() - started, *await backlog(ports)))
    output = (await proc.stdout.read()).decode(errors="replace")
    ended = time.monotonic()
    drained_after = None
    while time.monotonic() - ended < 300:
        outbox, lag = await backlog(ports)
        if outbox == 0 and lag == 0:
            drained_after = time.monotonic() - ended
            break
        await asyncio.sleep(0.5)
    figures = dict(re.findall(r"^(wrk-\S+) (.*)$", output, re.M))
    summary = re.search(r"^wrk: (\d+) requests, (\d+) errors.*$", output, re.M)
    if not summary or "wrk-rate" not in figures:
        print(output)
        return 1
    requests, errors = int(summary[1]), int(summary[2])
    print(summary[0])
    accepted = (requests - errors) / seconds
    print(f"accepted reports     {requests - errors}  → {accepted:.0f}/s (wrk's rate {figures['wrk-rate']}/s)")
    print(f"latency              {figures['wrk-latency-ms']}")
    peak_outbox = max((s[1] for s in samples), default=0)
    peak_lag = max((s[2] for s in samples), default=0)
    print(f"behind intake        peak outbox backlog {peak_outbox:.0f}, peak consumer lag {peak_lag:.0f} (sampled each second)")
    print("caught up            " + (f"{drained_after:.1f} s after the last request" if drained_after is not None
                                       else "not within 300 s of the last request"))
    p99 = float(re.search(r"p99 ([0-9.]+)", figures["wrk-latency-ms"])[1])
    await asyncio.sleep(11)  # idle backends report their statistics within ten seconds
    traffic_after = await kafka_traffic(settings.kafka_bootstrap)
    writes_after = await postgres_writes(settings.database_url)
    taken = requests - errors
    # Each accepted report is stored (a transaction) and published (a record at least): fewer says the counting is
    # wrong, or intake answered without doing the work.
    plausible = check_plausible([
        Plausible("Kafka records written per accepted report", (traffic_after.written - traffic_before.written) / taken, 1, ""),
        Plausible("PostgreSQL transactions per accepted report", (writes_after[1] - writes_before[1]) / taken, 1, ""),
    ] if taken else [])
    print("\nissue 17's goals:")
    verdict(f"≥ {goals.HTTP_ACCEPTED_PER_S:,.0f} accepted reports/s", f"{accepted:,.0f}/s",
            plausible and accepted >= goals.HTTP_ACCEPTED_PER_S)
    verdict(f"p99 < {goals.HTTP_P99_MS:g} ms", f"{p99:.0f} ms", plausible and p99 < goals.HTTP_P99_MS)
    # "Keeps up": nothing left behind a few seconds after the last request (a burst's tail is not falling behind).
    verdict("the pipeline behind intake keeps up", "caught up" if drained_after is not None else "behind",
            plausible and drained_after is not None and drained_after < goals.HTTP_CAUGHT_UP_S)
    saved = goals.save("http", {"accepted_per_s": accepted, "p99_ms": p99, "caught_up_s": drained_after,
                                "connections": connections, "seconds": seconds, "errors": errors,
                                "peak_outbox": peak_outbox, "peak_lag": peak_lag, "plausible": plausible})
    print(f"\n  (figures kept for the sitting's table: {saved})")
    return goals.EXIT_OK if plausible else goals.EXIT_IMPLAUSIBLE


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    parser = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=f"http://127.0.0.1:{get_settings().intake_port}",
                        help="intake's base URL (default: ./dev up's intake, WANGGE_INTAKE_PORT)")
    parser.add_argument("--seconds", type=int, default=30, help="how long wrk sends (default 30)")
    parser.add_argument("--connections", type=int, default=32, help="open connections (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    args = parser.parse_args(argv)
    if not re.match(r"^https?://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$", args.url):
        parser.error("--url: only loopback addresses are benchmarked here")
    return asyncio.run(run(args.url, args.seconds, args.connections, args.threads))


if __name__ == "__main__":
    sys.exit(main())
