"""HTTP intake benchmark: `POST /api/v1/reports` with 32 connections (wrk), against the system `./dev up` started.

    .venv/bin/python -m bench.http --seconds 30

Each request is a new report (its own external_id) from the demo terminal credential. Prints accepted reports
per second, latency percentiles, and whether the pipeline behind intake kept up: the outbox backlog and the
consumers' lag sampled every second from the services' /metrics, and how long after the last request every
consumer had caught up. Installs wrk from Debian's packages on first use (as root). Goal (issue 7): ≥ 1,000
accepted reports/s, p99 < 50 ms, the pipeline keeping up. Figures, not assertions.
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

from bench.support import verdict

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "wrk" / "reports.lua"
METRICS = {"intake": 8101, "routing": 8102, "supervision": 8103, "notify": 8104}
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


async def backlog() -> tuple[float, float]:
    """(outbox rows not relayed, messages the consumers are behind), over every service."""
    outbox = lag = 0.0
    async with httpx.AsyncClient(timeout=5) as http:
        for port in METRICS.values():
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
        samples.append((time.monotonic() - started, *await backlog()))
    output = (await proc.stdout.read()).decode(errors="replace")
    ended = time.monotonic()
    drained_after = None
    while time.monotonic() - ended < 300:
        outbox, lag = await backlog()
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
    print("\nissue 7's goals:")
    verdict("≥ 1,000 accepted reports/s", f"{accepted:,.0f}/s", accepted >= 1000)
    verdict("p99 < 50 ms", f"{p99:.0f} ms", p99 < 50)
    # "Keeps up": nothing left behind a few seconds after the last request (a burst's tail is not falling behind).
    verdict("the pipeline behind intake keeps up", "caught up" if drained_after is not None else "behind",
            drained_after is not None and drained_after < 5)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    parser = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8101", help="intake's base URL (default: ./dev up's intake)")
    parser.add_argument("--seconds", type=int, default=30, help="how long wrk sends (default 30)")
    parser.add_argument("--connections", type=int, default=32, help="open connections (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    args = parser.parse_args(argv)
    if not re.match(r"^https?://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$", args.url):
        parser.error("--url: only loopback addresses are benchmarked here")
    return asyncio.run(run(args.url, args.seconds, args.connections, args.threads))


if __name__ == "__main__":
    sys.exit(main())
