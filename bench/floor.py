"""The floor: what one case costs at the very least on the stack the design card names, on this machine.

    .venv/bin/python -m bench.floor            (./dev infra is enough; ./dev up is fine too, idle)

Measures the parts every case must pass through, with nothing of wangge's own logic in the way and at the
most favourable batch size (--batch, default 500: the most a service's consumer takes at once):

- Kafka through aiokafka, with the services' own settings (idempotent producer with acks=all, read_committed
  consumer, offsets committed after each batch): CPU per record produced and per record consumed, in the
  Python client and in the broker, for an envelope of a case event's size (Envelope.from_json on each read).
- PostgreSQL through asyncpg: CPU per row of the idempotent consumer's own writes, a batch per transaction:
  the claim of the event id, one effect row, and an outbox row written, read back by the relay and deleted.
- The records' Ed25519 signatures (shared/signing.py): every record a service sends is signed, and every one a
  process handles is checked, in every profile; CPU per signature made and per signature checked, and per record
  placed in a batch signed together (its hashes) and checked by its path to the batch's signature.
- faust-streaming, which the design card puts under the live figures (an agent over wangge.cases, tables backed by
  changelog topics), with the live process's settings: CPU per event an agent takes, beyond the plain read of its
  record above, and per table row set, beyond the changelog record it produces.

It multiplies them by what one case moves today: Kafka records written and read, PostgreSQL rows
written, signatures made and checked and records placed and checked in signed batches, events the live figures'
agent took and table rows it set, as counted by the last `bench.e2e` run (.local/bench/e2e-counts.json; --counts
FILE, or the figures given with --written, --read, --rows, --signed, --checked, --placed, --proved, --streamed,
--table-rows). What it leaves out —
the services' own code, validating the data, the SMS over HTTP, asyncio, smaller batches at a steady pace — only adds to the real cost; so a floor
beside issue 17's goal (≤ 2 ms a case, and ≤ 2.5 × this floor) says how much room wangge's own code has.
The CPU of the broker and of PostgreSQL is read by bench.support's accounting (this stack's processes only, exited
backends included), and each unit is checked against the least it can honestly cost: a unit below it says the
accounting is broken, and the run ends in FAIL (exit code 2). Saves its figures for bench.e2e's table of the
sitting (bench/goals.py). Figures, not assertions.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import sys
import tempfile
import time
import uuid
from typing import Any
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
import uvloop

from bench import goals
from bench.goals import Plausible, check_plausible
from bench.support import CpuReading, by_component, component_of, cpu_used, read_cpu, stack_roots, state_dir, verdict
from shared.contracts import Envelope
from shared.settings import Settings, get_settings
from shared.topics import cluster_replication

REPO = Path(__file__).resolve().parents[1]
COUNTS = state_dir() / "bench" / "e2e-counts.json"
# Without a bench.e2e run to count from: what a case moved in the burst of 2026-12-02 (3,000 reports).
# Signatures: those of the contract's records a case makes (case.reported, .accepted, .dispatched, contact, task,
# reply) and the checks of the processes that handle them (2026-12-07, from each consumer's handled types), each
# record sent alone: the most they can cost (sent together, a batch shares one signature and one check).
# The live figures' agent: the three case events of a burst's case, and one row of its cases table each (2026-12-08).
DEFAULT_COUNTS = {"kafka_written": 15.0, "kafka_read": 24.0, "pg_rows": 40.0, "signed": 6.0, "checked": 14.0,
                  "placed": 0.0, "proved": 0.0, "streamed": 3.0, "table_rows": 3.0}


@dataclass
class UnitCosts:
    """Microseconds of CPU per unit, split by who spends them."""

    produce_client: float
    produce_broker: float
    consume_client: float
    consume_broker: float
    row_postgres: float
    row_client: float
    # After the others, with defaults: a floor saved before signatures were measured still loads (as the least).
    sign_client: float = 5.0
    check_client: float = 9.0
    # A record's share of a signed batch: its leaf and tree hashed when sent, its leaf and path when checked.
    place_client: float = 0.3
    prove_client: float = 0.3
    # faust's own path (a floor saved before it was measured loads with the least it costs): an event through an
    # agent beyond its record's plain read, and a table row set beyond the changelog record produced for it.
    stream_event: float = 20.0
    table_row: float = 20.0


# The least each unit can honestly cost (µs of CPU), about a fifth of the least this 2-core machine measured at
# batches of 500 (2026-12-06, three runs beside other stacks' tests: a record produced 17.3 client + 17.3–38.0 broker,
# consumed 7.3 + 6.0–9.7, a row 1.1 client + 3.3–3.9 PostgreSQL): a floor of plausibility for the floor's own
# figures, and for bench.e2e's when no floor has been measured.
# Signatures: libsodium signed in 25 and checked in 45 µs here (2026-12-06, shared/signing.py); SHA-256 of a case
# event about 1.5 µs (2026-12-07). faust: an event through an agent about 230 µs beyond its plain read, a table row
# about 200 µs beyond its changelog record (2026-12-08, the stack idle).
LEAST_UNITS = UnitCosts(produce_client=3.5, produce_broker=3.0, consume_client=1.5, consume_broker=1.0,
                        row_postgres=0.6, row_client=0.2, sign_client=5.0, check_client=9.0, place_client=0.3,
                        prove_client=0.3, stream_event=20.0, table_row=20.0)


def case_event(i: int) -> Envelope:
    """An envelope the size of a case.accepted (masked reporter, a description, a place)."""
    return Envelope.new("case.accepted", 1, {
        "case_no": f"20261202-{i:04d}", "category": "CM04", "unit_grid": "370402001001001",
        "description": "垃圾箱损坏，垃圾外溢，周边环境脏乱，请尽快处理", "location": {"lon": 117.575168, "lat": 34.871845},
        "address": None, "reporter": {"name": "李**", "phone": "139****1001"},
        "observed_at": "2026-11-27T09:12:00+08:00"}, source="intake", case_id=str(uuid.uuid4()))


def _used(before: CpuReading, roots: dict[str, int], name: str, missing: dict[str, str]) -> float:
    """CPU seconds `name` used since `before` (NaN, and why in `missing`, if it cannot be told)."""
    used, why = cpu_used(before, read_cpu(roots))
    # Every process of the component: a cluster's three nodes, a failover cluster's two members.
    gone = {key: reason for key, reason in why.items() if component_of(key) == name}
    if gone or name not in by_component(used):
        missing[name] = "; ".join(f"{k}: {r}" for k, r in gone.items()) or "not found (is this stack's ./dev infra running?)"
        return math.nan
    return by_component(used)[name]


async def _scratch_topic(bootstrap: str, topic: str) -> tuple[AIOKafkaAdminClient, int]:
    """Create a 6-partition topic to measure on; the started admin client (the caller deletes the topic and closes
    it) and the topic's replication factor."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    # Replicated as the stack's own topics are (3 copies, min.insync 2 on a cluster): a cluster's floor includes
    # the followers' fetches, which the stack pays for every record too.
    replicas, min_insync = await cluster_replication(admin, bootstrap)
    await admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=replicas,
                                        topic_configs={"min.insync.replicas": str(min_insync)})])
    return admin, replicas


async def kafka_costs(bootstrap: str, records: int, batch: int, roots: dict[str, int],
                      missing: dict[str, str]) -> tuple[float, float, float, float, int]:
    """(client, broker) µs per record produced, (client, broker) µs per record consumed, and the record size."""
    tag = uuid.uuid4().hex[:6]
    topic = f"bench-floor-{tag}"
    admin, _ = await _scratch_topic(bootstrap, topic)
    try:
        values = []
        for i in range(records):
            envelope = case_event(i)
            values.append((envelope.to_json(), envelope.case_id.encode()))
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=2)
        await producer.start()
        try:
            client, broker = time.process_time(), read_cpu(roots)
            for start in range(0, records, batch):
                # As the outbox relay sends: a batch queued in order, then every acknowledgement awaited.
                pending = [await producer.send(topic, value, key=key) for value, key in values[start:start + batch]]
                await asyncio.gather(*pending)
            produced = (time.process_time() - client, _used(broker, roots, "kafka", missing))
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"bench-floor-{tag}",
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    isolation_level="read_committed", max_poll_records=batch)
        await consumer.start()
        try:
            client, broker = time.process_time(), read_cpu(roots)
            seen = 0
            while seen < records:
                fetched = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 30)
                for partition_records in fetched.values():
                    for record in partition_records:
                        Envelope.from_json(record.value)
                    seen += len(partition_records)
                if fetched:
                    await consumer.commit()
            consumed = (time.process_time() - client, _used(broker, roots, "kafka", missing))
        finally:
            await consumer.stop()
    finally:
        await admin.delete_topics([topic])
        await admin.close()
    per = 1e6 / records
    return produced[0] * per, produced[1] * per, consumed[0] * per, consumed[1] * per, len(values[0][0])


async def postgres_costs(dsn: str, messages: int, batch: int, roots: dict[str, int],
                         missing: dict[str, str]) -> tuple[float, float]:
    """(PostgreSQL, client) µs per row written: claim + effect + outbox row relayed, a batch per transaction."""
    schema = f"bench_floor_{uuid.uuid4().hex[:6]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"""
            CREATE SCHEMA "{schema}"; SET search_path = "{schema}";
            CREATE TABLE processed_events (consumer text, event_id text, PRIMARY KEY (consumer, event_id));
            CREATE TABLE effects (id uuid PRIMARY KEY, state text NOT NULL, data jsonb NOT NULL);
            CREATE TABLE outbox (seq bigserial PRIMARY KEY, topic text, key text, event_id text, event_type text,
                                 payload bytea)""")
        ids = [str(uuid.uuid4()) for _ in range(messages)]
        payload = case_event(0).to_json()
        postgres, client = read_cpu(roots), time.process_time()
        for start in range(0, messages, batch):
            chunk = ids[start:start + batch]
            async with conn.transaction():
                await conn.fetch("""INSERT INTO processed_events (consumer, event_id) SELECT 'floor', unnest($1::text[])
                                    ON CONFLICT DO NOTHING RETURNING event_id""", chunk)
                await conn.execute("""INSERT INTO effects (id, state, data)
                                      SELECT unnest($1::uuid[]), 'accepted', '{"owner": "huanwei"}'""", chunk)
                await conn.execute("""INSERT INTO outbox (topic, key, event_id, event_type, payload)
                                      SELECT 'wangge.cases', k, k, 'case.accepted', $2 FROM unnest($1::text[]) k""",
                                   chunk, payload)
            async with conn.transaction():
                rows = await conn.fetch("SELECT seq, topic, key, event_type, payload FROM outbox ORDER BY seq LIMIT $1",
                                        batch)
                await conn.execute("DELETE FROM outbox WHERE seq = ANY($1::bigint[])", [r["seq"] for r in rows])
        used_postgres = _used(postgres, roots, "postgresql", missing)
        used_client = time.process_time() - client
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
    rows_written = 4 * messages  # claim, effect, outbox insert, outbox delete
    return 1e6 * used_postgres / rows_written, 1e6 * used_client / rows_written


async def stream_costs(bootstrap: str, records: int, consume_client: float, produce_client: float) -> tuple[float, float]:
    """µs of CPU per event through a faust agent beyond the plain read of its record (`consume_client`), and per table
    row set beyond the changelog record it sends (`produce_client`), with the live process's faust settings
    (services/supervision/live/streams.py). faust hands each record to the agent through its own queues and tasks
    (a task raced against flow control per record, the stream's channel), which is what costs here."""
    tag = uuid.uuid4().hex[:6]
    topic = f"bench-floor-stream-{tag}"
    admin, replicas = await _scratch_topic(bootstrap, topic)
    try:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        await producer.start()
        try:
            for i in range(records):
                envelope = case_event(i)
                await producer.send(topic, envelope.to_json(), key=envelope.case_id.encode())
            await producer.flush()
        finally:
            await producer.stop()
        read = await _faust_cpu_per_event(bootstrap, topic, records, replicas, f"{topic}-read", set_rows=False)
        written = await _faust_cpu_per_event(bootstrap, topic, records, replicas, f"{topic}-rows", set_rows=True)
    finally:
        ours = [name for name in await admin.list_topics() if name.startswith(topic)]
        await admin.delete_topics(ours)
        await admin.close()
    return max(read - consume_client, 0.0), max(written - read - produce_client, 0.0)


async def _faust_cpu_per_event(bootstrap: str, topic: str, records: int, replicas: int, app_id: str, *,
                               set_rows: bool) -> float:
    """µs of this process's CPU per event a faust agent takes off `topic` (each setting a table row if `set_rows`),
    from its first event to its last."""
    import faust

    datadir = tempfile.mkdtemp(prefix=f"{app_id}-")
    app = faust.App(app_id, broker=f"kafka://{bootstrap}", store="memory://", datadir=datadir, web_enabled=False,
                    autodiscover=False, consumer_auto_offset_reset="earliest", topic_partitions=6,
                    topic_replication_factor=replicas, table_standby_replicas=0, stream_wait_empty=False,
                    producer_linger=0.02)
    source = app.topic(topic, key_serializer="raw", value_serializer="raw")
    table = app.Table("rows", default=None, partitions=6)
    seen, started, done = 0, 0.0, asyncio.Event()

    async def follow(stream: Any) -> None:
        nonlocal seen, started
        async for event in stream.events():
            if not seen:
                started = time.process_time()
            if set_rows:
                table[event.key] = {"state": "accepted"}
            seen += 1
            if seen == records:
                done.set()

    app.agent(source, name="follow")(follow)
    try:
        await app.start()
        await asyncio.wait_for(done.wait(), 600)
        used = time.process_time() - started
    finally:
        await app.stop()
        shutil.rmtree(datadir, ignore_errors=True)
    # The first event's own cost is not in `used`: spread the rest over the events after it.
    return 1e6 * used / max(records - 1, 1)


def signature_costs(records: int) -> tuple[float, float, float, float]:
    """µs of CPU per signature made and checked, on records the size of a case event, as the services make and check
    them (shared/signing.py: over topic, key and value); and per record placed in a signed batch and checked by its
    path, beyond the batch's one signature (at shared/signing.py's BATCH_LIMIT records a batch)."""
    from shared.signing import BATCH_LIMIT, Signer, Verifier, development_key

    key = development_key("intake")
    signer = Signer("intake", key)
    values = [(case_event(i).to_json(), str(uuid.uuid4()).encode()) for i in range(records)]
    alone = _timed_signatures(signer, Verifier({"intake": key.public_key()}), values, together=False)
    batched = _timed_signatures(signer, Verifier({"intake": key.public_key()}), values, together=True)
    sign, check = alone[0] / records, alone[1] / records
    roots = -(-records // BATCH_LIMIT)
    place, prove = (batched[0] - roots * sign) / records, (batched[1] - roots * check) / records
    return 1e6 * sign, 1e6 * check, 1e6 * max(place, 0.0), 1e6 * max(prove, 0.0)


def _timed_signatures(signer: Any, verifier: Any, values: list[tuple[bytes, bytes]], *,
                      together: bool) -> tuple[float, float]:
    """CPU seconds to sign these records (alone or as batches) and to check them all."""
    started = time.process_time()
    signed = (signer.batch_headers([("wangge.cases", k, value) for value, k in values]) if together
              else [signer.headers(value, topic="wangge.cases", key=k) for value, k in values])
    sign = time.process_time() - started
    started = time.process_time()
    for headers, (value, k) in zip(signed, values):
        who, why = verifier.signer(headers, value, topic="wangge.cases", key=k)
        if who != "intake":
            raise RuntimeError(f"the floor's own signature did not check: {why}")
    return sign, time.process_time() - started


def load_counts(path: Path | None, overrides: dict[str, float | None]) -> tuple[dict[str, float], str]:
    """What one case moves (Kafka records written and read, PostgreSQL rows), and where that came from."""
    counts, origin = dict(DEFAULT_COUNTS), "the defaults (no bench.e2e run counted yet)"
    source = path or COUNTS
    if source.exists():
        saved = json.loads(source.read_text())
        counts.update({k: float(saved[k]) for k in DEFAULT_COUNTS if k in saved})
        origin = f"{source.relative_to(REPO) if source.is_relative_to(REPO) else source} ({saved.get('run', '?')})"
    given = {k: v for k, v in overrides.items() if v is not None}
    if given:
        counts.update(given)
        origin += ", with " + ", ".join(f"{k}={v:g}" for k, v in given.items())
    return counts, origin


async def measure_units(settings: Settings, records: int, batch: int) -> tuple[UnitCosts, int, dict[str, str]]:
    """The CPU of each unit at batches of `batch`, the size of a record, and why a server's CPU could not be read."""
    roots = {name: pid for name, pid in stack_roots(settings).items() if component_of(name) in ("kafka", "postgresql")}
    missing = {name: "not found (is this stack's ./dev infra running?)" for name in ("kafka", "postgresql")
               if name not in roots}
    p_client, p_broker, c_client, c_broker, size = await kafka_costs(settings.kafka_bootstrap, records, batch, roots,
                                                                     missing)
    r_postgres, r_client = await postgres_costs(settings.database_url, records, batch, roots, missing)
    sign, check, place, prove = signature_costs(min(records, 5_000))
    stream_event, table_row = await stream_costs(settings.kafka_bootstrap, min(records, 20_000), c_client, p_client)
    return (UnitCosts(p_client, p_broker, c_client, c_broker, r_postgres, r_client, sign, check, place, prove,
                      stream_event, table_row), size, missing)


def floor_of(units: UnitCosts, counts: dict[str, float]) -> dict[str, float]:
    """µs of CPU per case at the floor, by who spends it: the broker, PostgreSQL, the Python clients (the signatures
    included: the services' processes make and check them; and faust's own path in the live figures' process)."""
    written, read, rows = counts["kafka_written"], counts["kafka_read"], counts["pg_rows"]
    return {"kafka": written * units.produce_broker + read * units.consume_broker,
            "postgresql": rows * units.row_postgres,
            "clients": written * units.produce_client + read * units.consume_client + rows * units.row_client
            + signatures_of(units, counts) + streaming_of(units, counts)}


def streaming_of(units: UnitCosts, counts: dict[str, float]) -> float:
    """µs of CPU per case for faust's own path: the events the live figures' agent takes, the table rows it sets."""
    return counts.get("streamed", 0.0) * units.stream_event + counts.get("table_rows", 0.0) * units.table_row


def signatures_of(units: UnitCosts, counts: dict[str, float]) -> float:
    """µs of CPU per case for the signatures a case's records get made and checked, and their places in batches."""
    return (counts.get("signed", 0.0) * units.sign_client + counts.get("checked", 0.0) * units.check_client
            + counts.get("placed", 0.0) * units.place_client + counts.get("proved", 0.0) * units.prove_client)


def unit_checks(units: UnitCosts) -> list[Plausible]:
    """Each unit against the least it can honestly cost."""
    labels = {"produce_client": "a record produced: the client", "produce_broker": "a record produced: the broker",
              "consume_client": "a record consumed: the client", "consume_broker": "a record consumed: the broker",
              "row_postgres": "a row written: PostgreSQL", "row_client": "a row written: the client",
              "sign_client": "a signature made", "check_client": "a signature checked",
              "place_client": "a record placed in a signed batch", "prove_client": "a record checked by its path",
              "stream_event": "an event through a faust agent", "table_row": "a faust table row set"}
    return [Plausible(f"floor: {label}", getattr(units, name), getattr(LEAST_UNITS, name), "µs")
            for name, label in labels.items()]


def print_floor(units: UnitCosts, size: int, batch: int, counts: dict[str, float], origin: str) -> dict[str, float]:
    """The units and the floor of a case; returns the floor's µs per case by component."""
    print(f"\nCPU per unit at batches of {batch} (µs):            client   server")
    print(f"  a record produced ({size} bytes, acks=all)   {units.produce_client:8.1f} {units.produce_broker:8.1f} (broker)")
    print(f"  a record consumed and its envelope read    {units.consume_client:8.1f} {units.consume_broker:8.1f} (broker)")
    print(f"  a row written in PostgreSQL                {units.row_client:8.1f} {units.row_postgres:8.1f} (postgres)")
    print(f"  a signature made (Ed25519, libsodium)      {units.sign_client:8.1f}")
    print(f"  a signature checked                        {units.check_client:8.1f}")
    print(f"  a record placed in a signed batch (hashes)  {units.place_client:8.1f}")
    print(f"  a record checked by its path in the batch  {units.prove_client:8.1f}")
    print(f"  {'an event through a faust agent (+ its read)':<43}{units.stream_event:8.1f}")
    print(f"  {'a faust table row set (+ its changelog)':<43}{units.table_row:8.1f}")
    written, read, rows = counts["kafka_written"], counts["kafka_read"], counts["pg_rows"]
    shares = floor_of(units, counts)
    floor = sum(shares.values())
    print(f"\none case moves, by {origin}:")
    print(f"  {written:5.1f} Kafka records written   → {written * (units.produce_client + units.produce_broker):7.0f} µs")
    print(f"  {read:5.1f} Kafka records read      → {read * (units.consume_client + units.consume_broker):7.0f} µs")
    print(f"  {rows:5.1f} PostgreSQL rows written  → {rows * (units.row_client + units.row_postgres):7.0f} µs")
    signed, checked = counts.get("signed", 0.0), counts.get("checked", 0.0)
    placed, proved = counts.get("placed", 0.0), counts.get("proved", 0.0)
    print(f"  {signed:5.2f} signatures made, {checked:4.2f} checked, {placed:4.1f} records placed in batches and "
          f"{proved:4.1f} checked by their paths → {signatures_of(units, counts):7.0f} µs")
    streamed, table_rows = counts.get("streamed", 0.0), counts.get("table_rows", 0.0)
    print(f"  {streamed:5.1f} events through the live figures' faust agent, {table_rows:4.1f} table rows set "
          f"→ {streaming_of(units, counts):7.0f} µs")
    print(f"  by who spends it: the broker {shares['kafka']:.0f} µs, PostgreSQL {shares['postgresql']:.0f} µs, "
          f"the Python clients {shares['clients']:.0f} µs (signatures and faust included)")
    print(f"  the floor, before any of wangge's own code: {floor / 1000:.2f} ms of CPU per case "
          f"→ at most {goals.CORES * 1e6 / floor:,.0f} cases/s on {goals.CORES} cores")
    return shares


def floor_figures(units: UnitCosts, size: int, batch: int, counts: dict[str, float], origin: str,
                  shares: dict[str, float], plausible: bool) -> dict:
    """What bench/goals.py's table needs of a floor measured now."""
    return {"units": asdict(units), "record_bytes": size, "batch": batch, "counts": counts, "origin": origin,
            "components_us": shares, "ms_per_case": sum(shares.values()) / 1000, "plausible": plausible}


async def run(records: int, batch: int, counts: dict[str, float], origin: str) -> int:
    settings = get_settings()
    print(f"measuring Kafka ({records:,} records) and PostgreSQL ({records:,} messages) at batches of {batch} …",
          flush=True)
    units, size, missing = await measure_units(settings, records, batch)
    shares = print_floor(units, size, batch, counts, origin)
    plausible = check_plausible(unit_checks(units), missing)
    goals.save("floor", floor_figures(units, size, batch, counts, origin, shares, plausible))
    floor = sum(shares.values())
    print("\nissue 17's goals against the floor:")
    verdict(f"CPU per case ≤ {goals.CPU_PER_CASE_MS:g} ms is above the floor", f"floor {floor / 1000:.2f} ms",
            plausible and floor <= goals.CPU_PER_CASE_MS * 1000)
    verdict(f"{goals.BURST_TASKS_PER_S:,} cases/s fits {goals.CORES} cores at the floor",
            f"≤ {goals.CORES * 1e6 / floor:,.0f} cases/s", plausible and goals.CORES * 1e6 / floor >= goals.BURST_TASKS_PER_S)
    return goals.EXIT_OK if plausible else goals.EXIT_IMPLAUSIBLE


def load_units() -> tuple[UnitCosts, str]:
    """The units of the last plausible bench.floor run of this stack, or the least they can cost."""
    saved = goals.load("floor")
    if saved and saved.get("plausible"):
        return UnitCosts(**saved["units"]), f"bench.floor of {saved['at']}"
    return LEAST_UNITS, "the least each unit can cost (no bench.floor run saved)"


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=30_000, help="records and messages to measure with (default 30,000)")
    parser.add_argument("--batch", type=int, default=500, help="records per batch and per transaction (default 500)")
    parser.add_argument("--counts", type=Path, help=f"what a case moves, as bench.e2e saves it (default {COUNTS.relative_to(REPO)})")
    parser.add_argument("--written", type=float, help="Kafka records written per case (instead of the counted figure)")
    parser.add_argument("--read", type=float, help="Kafka records read by the system per case")
    parser.add_argument("--rows", type=float, help="PostgreSQL rows written (inserted, updated, deleted) per case")
    parser.add_argument("--signed", type=float, help="signatures made per case (records the services send)")
    parser.add_argument("--checked", type=float, help="signatures checked per case (records each process handles)")
    parser.add_argument("--placed", type=float, help="records per case sent under a batch's signature")
    parser.add_argument("--proved", type=float, help="records per case checked by their path to a batch's signature")
    parser.add_argument("--streamed", type=float, help="events per case the live figures' faust agent takes")
    parser.add_argument("--table-rows", type=float, help="faust table rows per case the live figures set")
    args = parser.parse_args(argv)
    if args.records < args.batch or args.batch < 1:
        parser.error("--records must be at least --batch, and --batch at least 1")
    counts, origin = load_counts(args.counts, {"kafka_written": args.written, "kafka_read": args.read,
                                               "pg_rows": args.rows, "signed": args.signed,
                                               "checked": args.checked, "placed": args.placed,
                                               "proved": args.proved, "streamed": args.streamed,
                                               "table_rows": args.table_rows})
    # On uvloop, as uvicorn runs the services: the floor's clients cost what the services' own would.
    return uvloop.run(run(args.records, args.batch, counts, origin))


if __name__ == "__main__":
    sys.exit(main())
