import asyncio
from tests.e2e.test_faults import FaultRun, SERVICES, kill_kafka, kill_postgres, start_kafka, start_postgres

async def test_repro(base_settings, tmp_path):
    run = FaultRun(base_settings, tmp_path, 6000, 200)
    print("LOGS", tmp_path, run.prefix)
    try:
        await run.start()
        async def faults(seconds):
            step = seconds / 8
            for name in SERVICES:
                await asyncio.sleep(step)
                run.fleet.kill(name)
                await asyncio.sleep(1)
                run.fleet.start(name)
            await asyncio.sleep(step)
            kill_kafka()
            await asyncio.sleep(2)
            kill_postgres()
            await asyncio.sleep(2)
            await start_kafka()
            await start_postgres()
        await run.stream_with(faults)
        await run.assert_groups_catch_up(120)
        await run.assert_every_report_once()
    finally:
        import subprocess
        for name, proc in run.fleet.procs.items():
            subprocess.run(["/work/main/.venv/bin/py-spy", "dump", "--pid", str(proc.pid)], stdout=open(tmp_path / f"{name}.dump", "w"), stderr=subprocess.STDOUT)
        await run.close()
