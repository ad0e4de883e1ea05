"""Before/after: a backlog of case events on wangge.cases drained by one supervision instance (events/s, CPU ms/event
of the supervision process). Run from the repository with its environment (./dev env): `python -m bench.supervision_backlog [cases]`.
One supervision instance in this process, its own topic and schema prefixes (dropped after)."""
import asyncio
import time
import uuid

from aiokafka import AIOKafkaProducer

from shared.settings import Settings
from shared.topics import Topics, ensure_topics
from shared.clock import now
from shared.contracts.cases import CaseReported, CaseAccepted, CaseDispatched
from shared.contracts.common import TimeLimit
from shared.worktime import WorkCalendar
from services.supervision.bootstrap import build
from tests.support import signature_of
from tests.conftest import drop_schemas, delete_topics

GRID = "3704020010010101"


async def main(n_cases: int) -> None:
    tag = uuid.uuid4().hex[:8]
    settings = Settings().model_copy(update={"topic_prefix": f"b{tag}.", "schema_prefix": f"b{tag}_"})
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, topics.fixed())
    at = now().replace(microsecond=0)
    due = WorkCalendar(zone=at.tzinfo).deadline(at, 4, "work_hours")
    envelopes = []
    chunk = []
    for i in range(n_cases):
        cid, no = uuid.uuid4().hex, f"2026{tag}{i:05d}"
        envelopes += [
            CaseReported(case_no=no, source="terminal", external_id=f"x{no}", category="CM04", description="垃圾外溢",
                         observed_at=at, unit_grid=GRID).envelope(source="intake", case_id=cid),
            CaseAccepted(case_no=no, category="CM04", unit_grid=GRID, description="垃圾外溢")
            .envelope(source="intake", case_id=cid)]
        chunk.append(CaseDispatched(case_no=no, owner="huanwei", category="CM04", unit_grid=GRID, priority="normal",
                                    time_limit=TimeLimit(value=4, unit="work_hours"), dispatched_at=at, due_at=due)
                     .envelope(source="routing", case_id=cid))
        if len(chunk) == 20:  # routing's dispatches come a little after the acceptances
            envelopes += chunk
            chunk = []
    envelopes += chunk
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, linger_ms=20)
    await producer.start()
    try:
        futures = []
        for e in envelopes:
            payload = e.to_json()
            futures.append(await producer.send(topics.cases, payload, key=e.case_id.encode(),
                                               headers=signature_of(payload)))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    service = build(settings, manage_runtime=False)
    cpu0, t0 = time.process_time(), time.perf_counter()
    await service.runtime.start()
    try:
        pool = service.runtime.pool
        while await pool.fetchval("SELECT count(*) FROM cases WHERE events_seen = 3") < n_cases:
            if time.perf_counter() - t0 > 900:
                raise SystemExit("timed out")
            await asyncio.sleep(0.2)
        cpu = time.process_time() - cpu0
        span = await pool.fetchval("SELECT extract(epoch FROM max(recorded_at) - min(recorded_at)) FROM case_events")
        n = len(envelopes)
        print(f"{n} events, {n_cases} cases: drained in {float(span):.1f} s = {n / float(span):.0f} events/s; "
              f"supervision process CPU {cpu * 1000 / n:.2f} ms/event (start included)")
    finally:
        await service.runtime.stop()
        await drop_schemas(settings)
        await delete_topics(settings)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("cases", type=int, nargs="?", default=1667,
                        help="cases in the backlog, three events each (report, acceptance, dispatch); default 1667")
    asyncio.run(main(parser.parse_args().cases))
