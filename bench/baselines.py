"""What this machine's PostgreSQL and Kafka do on their own, to set wangge's figures beside:

    .venv/bin/python -m bench.baselines

- PostgreSQL (pgbench, 32 clients): transactions of two one-row inserts committed per second, and rows per
  second inserted in 100-row statements — in a schema of its own, dropped afterwards.
- Kafka (its ProducerPerformance tool, from the broker's own jars): 600-byte records per second with acks=all,
  on a topic of its own, deleted afterwards.

bench/e2e.py --baselines prints these after its own run. Figures, not assertions.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlparse

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.support import state_dir
from shared.settings import get_settings
from shared.topics import cluster_replication

REPO = Path(__file__).resolve().parents[1]
KAFKA_LIBS = state_dir() / "kafka" / "libs"  # deploy/local/kafka.sh: $WANGGE_STATE_DIR/kafka/libs
TWO_ROWS = "BEGIN;\nINSERT INTO t (a, b) VALUES (:client_id, 'x');\nINSERT INTO t (a, b) VALUES (:client_id, 'y');\nCOMMIT;\n"
HUNDRED_ROWS = "INSERT INTO t (a, b) SELECT g, md5(g::text) FROM generate_series(1, 100) g;\n"


def pgbench_binary() -> str:
    """pgbench of the project's PostgreSQL (Debian's postgresql package ships it)."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True):
        return str(candidate)
    return shutil.which("pgbench") or sys.exit("pgbench not found: deploy/local/postgres.sh install")


async def postgres_baseline(dsn: str, seconds: int, clients: int) -> dict[str, float]:
    """{'two_row_tx_per_s', 'rows_per_s_in_100_row_batches'} measured with pgbench."""
    schema = f"bench_pgbench_{uuid.uuid4().hex[:6]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"; CREATE TABLE "{schema}".t (id bigserial PRIMARY KEY, a int, b text)')
        url = urlparse(dsn)
        env = {**os.environ, "PGOPTIONS": f"-c search_path={schema}", "PGHOST": url.hostname or "127.0.0.1",
               "PGPORT": str(url.port or 5432), "PGUSER": url.username or "wangge",
               "PGDATABASE": url.path.lstrip("/") or "wangge"}
        if url.password:
            env["PGPASSWORD"] = url.password
        out: dict[str, float] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name, script, n, scale in (("two_row_tx_per_s", TWO_ROWS, clients, 1),
                                           ("rows_per_s_in_100_row_batches", HUNDRED_ROWS, 4, 100)):
                path = Path(tmp) / f"{name}.sql"
                path.write_text(script)
                result = subprocess.run([pgbench_binary(), "-n", "-f", str(path), "-c", str(n), "-j", "2",
                                         "-T", str(seconds)], env=env, capture_output=True, text=True)
                tps = re.search(r"tps = ([0-9.]+)", result.stdout)
                if not tps:
                    raise RuntimeError(f"pgbench: {result.stdout}{result.stderr}")
                out[name] = float(tps[1]) * scale
        return out
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


async def kafka_baseline(bootstrap: str, records: int) -> float:
    """600-byte records per second, acks=all, from Kafka's own ProducerPerformance."""
    topic = f"bench-baseline-{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # Replicated as the stack's topics are (read from the cluster): on three brokers, three copies.
        replicas, min_insync = await cluster_replication(admin, bootstrap)
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=replicas,
                                            topic_configs={"min.insync.replicas": str(min_insync)})])
        java = shutil.which("java") or sys.exit("java not found (JDK 17)")
        result = subprocess.run(
            [java, "-cp", f"{KAFKA_LIBS}/*", "org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
             "--num-records", str(records), "--record-size", "600", "--throughput", "-1",
             "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all"],
            capture_output=True, text=True)
        rates = re.findall(r"records sent, ([0-9.]+) records/sec", result.stdout)
        if not rates:
            raise RuntimeError(f"ProducerPerformance: {result.stdout[-2000:]}{result.stderr[-2000:]}")
        return float(rates[-1])
    finally:
        await admin.delete_topics([topic])
        await admin.close()


async def measure(seconds: int = 10, clients: int = 32, records: int = 300_000) -> dict[str, float]:
    """Every baseline, one after another (never at once: they would share the two cores)."""
    settings = get_settings()
    figures = await postgres_baseline(settings.database_url, seconds, clients)
    figures["kafka_records_per_s"] = await kafka_baseline(settings.kafka_bootstrap, records)
    return figures


def print_baselines(figures: dict[str, float]) -> None:
    """The baselines, one line each."""
    print(f"  PostgreSQL  {figures['two_row_tx_per_s']:9,.0f} two-row transactions/s (pgbench, 32 clients)")
    print(f"  PostgreSQL  {figures['rows_per_s_in_100_row_batches']:9,.0f} rows/s inserted in 100-row statements")
    print(f"  Kafka       {figures['kafka_records_per_s']:9,.0f} 600-byte records/s, acks=all (ProducerPerformance)")


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    parser = argparse.ArgumentParser(prog="python -m bench.baselines", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="seconds of each pgbench run (default 10)")
    parser.add_argument("--records", type=int, default=300_000, help="records for the Kafka producer (default 300,000)")
    args = parser.parse_args(argv)
    print("baselines of this machine (needs ./dev infra or ./dev up) …", flush=True)
    print_baselines(asyncio.run(measure(args.seconds, records=args.records)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
