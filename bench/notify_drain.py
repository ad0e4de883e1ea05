"""notify alone draining a backlog, as after an outage or in a fault drill: N cases (case.reported, contact.recorded,
case.accepted — 3·N events) on its topics before it starts; how fast its consumers fold them (events/s) and how
fast every acknowledgement is out at the SMS gateway's stand-in answering in --gateway-ms (acknowledgements/s), and
notify's CPU per case. On the stack `./dev infra` started (its Kafka and PostgreSQL; `eval "$(./dev env)"` first):

    .venv/bin/python -m bench.notify_drain --cases 3000

It builds notify from the tree it is run in (the current directory first on the path), so the same script measures
an older tree: `cd ../old-tree && python /path/to/bench/notify_drain.py`. notify runs in this process (its CPU is
this process's, the publishing before it started apart); the gateway's stand-in in a process of its own. Its own
topics and schema, removed after."""
from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.getcwd())

import httpx  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402

from shared.clock import now  # noqa: E402
from shared.contracts.cases import CaseAccepted, CaseReported  # noqa: E402
from shared.contracts.common import Reporter  # noqa: E402
from shared.contracts.contacts import ContactRecorded  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.signing import signer_for  # noqa: E402
from shared.topics import Topics, ensure_topics  # noqa: E402


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_of(pid: int) -> float:
    """A child's CPU seconds so far (user + system), from /proc: the gateway's stand-in, still running."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _signed(signer, payload: bytes, topic: str, key: str) -> list[tuple[str, bytes]]:
    """The headers signing `payload` as intake: bound to its topic and key where the tree signs so (issue 18), over
    the payload alone in an older tree (to measure it too)."""
    try:
        return signer.headers(payload, topic=topic, key=key)
    except TypeError:
        return signer.headers(payload)


async def _publish(settings: Settings, topics: Topics, cases: int) -> None:
    signer = signer_for(settings, "intake")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await asyncio.wait_for(producer.start(), 20)
    try:
        sends = []
        for i in range(cases):
            case_id, case_no, phone = str(uuid.uuid4()), f"20261206-{i:05d}", f"139{i:08d}"
            reported = CaseReported(case_no=case_no, source="hotline", external_id=f"b-{case_id[:8]}",
                                    description="路灯不亮", address="文化路12号",
                                    reporter=Reporter(name="张**", phone=phone[:3] + "****" + phone[-4:]),
                                    observed_at=now()).envelope(source="intake", case_id=case_id)
            contact = ContactRecorded(case_no=case_no, name="张先生", phone=phone).envelope(source="intake",
                                                                                           case_id=case_id)
            accepted = CaseAccepted(case_no=case_no, category="CM04", unit_grid="U001",
                                    description="路灯不亮").envelope(source="intake", case_id=case_id)
            for topic, envelope in ((topics.cases, reported), (topics.contacts, contact), (topics.cases, accepted)):
                payload = envelope.to_json()
                sends.append(await producer.send(topic, payload, key=case_id.encode(),
                                                 headers=_signed(signer, payload, topic, case_id)))
        await asyncio.wait_for(asyncio.gather(*sends), 120)
    finally:
        await producer.stop()


async def run(cases: int, gateway_ms: float, port: int, connections: int | None = None) -> None:
    from services.notify.bootstrap import build

    tag = uuid.uuid4().hex[:8]
    sink = subprocess.Popen([sys.executable, "-m", "deploy.local.sms_sink", "--port", str(port),
                             "--delay-ms", str(gateway_ms)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    settings = Settings().model_copy(update={"topic_prefix": f"b{tag}.", "schema_prefix": f"b{tag}_",
                                             "sms_gateway_url": f"http://127.0.0.1:{port}/sms"})
    if connections is not None:  # an older tree has no such setting (16 then, fixed)
        settings = settings.model_copy(update={"sms_gateway_connections": connections})
    topics = Topics(settings.topic_prefix)
    service = None
    try:
        await asyncio.wait_for(ensure_topics(settings.kafka_bootstrap, topics.fixed()), 60)
        await _publish(settings, topics, cases)
        async with httpx.AsyncClient() as client:  # the stand-in answering (and in gateway_ms)
            for _ in range(100):
                try:
                    await client.post(f"http://127.0.0.1:{port}/control", json={"status": 200, "delay_ms": gateway_ms})
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
        service = build(settings, manage_runtime=False)
        await asyncio.wait_for(service.runtime.start(), 60)
        await service.runtime.wait_until_consuming(60)  # migrations and joining the groups are not the drain
        cpu, sink_cpu, started = _cpu(), _cpu_of(sink.pid), time.monotonic()
        pool = service.runtime.pool
        folded = sent = None
        while sent is None:
            await asyncio.sleep(0.05)
            row = await pool.fetchrow(
                "SELECT (SELECT count(*) FROM case_status WHERE state = 'accepted') AS folded, "
                "(SELECT count(*) FROM deliveries WHERE state = 'sent' AND kind = 'acknowledgement') AS sent")
            if folded is None and row["folded"] >= cases:
                folded = time.monotonic() - started
            if row["sent"] >= cases:
                sent = time.monotonic() - started
            if time.monotonic() - started > 600:
                raise SystemExit(f"not drained in 10 minutes: {dict(row)}")
        used, sink_used = _cpu() - cpu, _cpu_of(sink.pid) - sink_cpu
        spread = await pool.fetchrow(
            "SELECT extract(epoch FROM max(sent_at) - min(sent_at)) AS seconds, max(attempts) AS attempts, "
            "count(*) FILTER (WHERE attempts > 1) AS retried FROM deliveries WHERE kind = 'acknowledgement'")
        print(f"notify drained {cases} cases ({3 * cases} events) in {sent:.1f} s, gateway answering in "
              f"{gateway_ms:g} ms:")
        print(f"  events folded: {3 * cases / folded:.0f} events/s ({folded:.1f} s for every case's state)")
        print(f"  acknowledgements out: {cases / sent:.0f}/s ({cases / max(spread['seconds'], 1e-3):.0f}/s from the first "
              f"to the last; {spread['retried']} retried, at most {spread['attempts']} attempts)")
        print(f"  notify's CPU: {1000 * used / cases:.2f} ms per case ({used:.1f} s); the gateway's stand-in's "
              f"{1000 * sink_used / cases:.2f} ms; {getattr(settings, 'sms_gateway_connections', 16)} connections "
              f"to it; load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        if service is not None:
            await asyncio.wait_for(service.runtime.stop(), 60)
        sink.terminate()
        sink.wait(10)
        from bench.support import cleanup  # noqa: PLC0415

        await asyncio.wait_for(cleanup(settings, topics, "notify"), 60)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.notify_drain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=3000, help="cases in the backlog (3 events each; default 3000)")
    parser.add_argument("--gateway-ms", type=float, default=5.0, help="the stand-in's answer time (default 5 ms)")
    parser.add_argument("--port", type=int, default=28119, help="the stand-in's port (default 28119)")
    parser.add_argument("--connections", type=int, default=None,
                        help="WANGGE_SMS_GATEWAY_CONNECTIONS for notify (default: the setting's)")
    args = parser.parse_args()
    if not 1 <= args.cases <= 100000:
        parser.error("--cases: between 1 and 100000")
    asyncio.run(run(args.cases, args.gateway_ms, args.port, args.connections))


if __name__ == "__main__":
    main()
