"""The pieces of issue 20's benchmarks (bench/instances.py, bench/faults_devup.py, bench/support.py) without a cluster:
the CPU accounting finds every instance, broker and failover member of a stack by its pid files and counts each once;
the side-by-side table shows the figures it is given; the fault drill counts doubles and losses from given rows; the
command lines refuse what they cannot run."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import faults_devup, instances
from bench.e2e import instance_ports
from bench.faults_devup import Counts, count, parse_faults
from bench.support import (Proc, argv_of, by_component, component_of, dsn_ports, instances_of, read_cpu, root_key, stack_roots,
                           subtree_ticks)

pytestmark = pytest.mark.unit


# ---- the accounting: every process of the stack, each counted once -------------------------------------------------

def test_a_components_processes_are_keyed_apart_and_summed_together():
    assert [root_key("intake", i) for i in (1, 2, 3)] == ["intake", "intake#2", "intake#3"]
    assert component_of("kafka#3") == "kafka" and component_of("postgresql") == "postgresql"
    used = {"intake": 1.0, "intake#2": 2.0, "intake#3": 0.5, "kafka": 3.0, "kafka#2": 1.0, "postgresql": 4.0}
    assert by_component(used) == {"intake": 3.5, "kafka": 4.0, "postgresql": 4.0}
    assert instances_of(used) == {"intake": 3, "kafka": 2, "postgresql": 1}


def test_every_port_of_a_multi_host_url_is_read_in_order():
    assert dsn_ports("postgresql://wangge@127.0.0.1:28432/wangge") == [28432]
    assert dsn_ports("postgresql://wangge:pw@127.0.0.1:28432,127.0.0.1:28433/wangge?target_session_attrs=read-write") \
        == [28432, 28433]
    assert dsn_ports("postgresql://wangge@localhost/wangge") == [5432]


def test_a_root_under_another_root_is_counted_by_itself_only():
    # Patroni (20) is its postmaster's (21) parent; the postmaster's backend (22) and what it reaped are PostgreSQL's.
    table = {20: Proc(20, 1, 1, own=40, reaped=3), 21: Proc(21, 20, 2, own=100, reaped=500),
             22: Proc(22, 21, 3, own=60, reaped=0)}
    roots = frozenset({20, 21})
    assert subtree_ticks(table, 20, roots) == 43
    assert subtree_ticks(table, 21, roots) == 660
    assert subtree_ticks(table, 20) == 703  # without the rule Patroni would take PostgreSQL's CPU too


@pytest.fixture
def fake_stack(tmp_path, monkeypatch):
    """A state folder whose ./dev pid files name real (sleeping) processes: 3 instances of intake, 2 of live, a
    three-node Kafka cluster; their command lines carry what the accounting checks (-m MODULE, kafka.Kafka)."""
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setenv("WANGGE_STATE_DIR", str(tmp_path))
    procs: list[subprocess.Popen] = []

    def spawn(pid_file: str, *marker: str) -> int:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *marker])
        procs.append(proc)
        # Between fork and exec /proc/PID/cmdline is still pytest's: wait until it is the child's own.
        deadline = time.monotonic() + 10
        while marker[-1] not in argv_of(proc.pid):
            assert time.monotonic() < deadline, f"process {proc.pid} never showed {marker} in its command line"
            time.sleep(0.01)
        (run / pid_file).write_text(f"{proc.pid}\n")
        return proc.pid

    pids = {"intake": spawn("intake.pid", "-m", "services.intake"),
            "intake#2": spawn("intake-2.pid", "-m", "services.intake"),
            "intake#3": spawn("intake-3.pid", "-m", "services.intake"),
            "live": spawn("live.pid", "-m", "services.supervision.live"),
            "live#2": spawn("live-2.pid", "-m", "services.supervision.live"),
            **{root_key("kafka", i): spawn(f"kafka-node{i}.pid", "kafka.Kafka") for i in (1, 2, 3)}}
    # A pid file whose process runs something else (a reused pid): not counted.
    spawn("routing-2.pid", "-m", "services.notify")
    try:
        yield pids
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)


def test_the_accounting_finds_every_instance_and_every_cluster_node_by_its_pid_file(fake_stack):
    settings = SimpleNamespace(database_url="postgresql://nobody@127.0.0.1:1/none")  # no PostgreSQL there
    roots = stack_roots(settings)  # type: ignore[arg-type]
    assert roots == fake_stack
    reading = read_cpu(roots)
    assert set(reading.ticks) == set(fake_stack)


def test_metrics_are_read_from_every_instance_on_its_port(fake_stack):
    settings = SimpleNamespace(intake_port=28101, routing_port=28102, supervision_port=28103, notify_port=28104)
    ports = instance_ports(settings)  # type: ignore[arg-type]
    assert ("intake", 28101) in ports and ("intake", 29101) in ports and ("intake", 30101) in ports
    assert ("routing", 29102) in ports  # a pid file names instance 2: its /metrics is asked (it may not answer)
    assert ("notify", 29104) not in ports


# ---- bench.instances ------------------------------------------------------------------------------------------------

def test_the_counts_of_instances_are_checked():
    assert instances.parse_counts("1,3") == [1, 3]
    for bad in ("", "0", "10", "1,1", "a"):
        with pytest.raises(Exception):
            instances.parse_counts(bad)
    with pytest.raises(SystemExit) as exit_:
        instances.main(["--instances", "1,12"])
    assert exit_.value.code == 2
    with pytest.raises(SystemExit):
        instances.main(["--rate", "-1"])


def test_the_ports_three_instances_take_follow_the_given_ports():
    env = {"WANGGE_INTAKE_PORT": "28101", "WANGGE_LIVE_PORT": "28105", "WANGGE_KAFKA_PORT": "28092",
           "WANGGE_KAFKA_CONTROLLER_PORT": "28093"}
    needed = instances.ports_needed(env, 3)
    assert {28101, 29101, 30101, 28105, 30105, 28092, 28192, 28292, 28293} <= set(needed)
    assert needed[30101] == "intake instance 3" and needed[28292] == "Kafka node 3"
    assert 31101 not in needed and all(port < 32768 for port in needed)


def _figures(task_rate: float, cpu: float, processes: int) -> dict:
    return {"task_rate": task_rate, "reply_rate": task_rate / 2, "p50_task_ms": 900.0, "p99_task_ms": 2100.0,
            "p50_reply_ms": 1500.0, "p99_reply_ms": 3300.0, "cpu_ms_per_case": cpu,
            "cpu_ms_by_component": {"intake": cpu / 4, "kafka": cpu / 2}, "processes": {"intake": processes, "kafka": 3},
            "kafka_written": 11.0, "kafka_read": 15.0, "complete": True, "plausible": True}


def test_the_side_by_side_table_shows_each_runs_figures_in_its_column():
    one = instances.Column(1, burst={**_figures(231.0, 10.4, 1), "floor": {"ms_per_case": 0.9},
                                     "baselines": {"two_row_tx_per_s": 4100.0, "rows_per_s_in_100_row_batches": 90000.0,
                                                   "kafka_records_per_s": 52000.0}},
                           steady=_figures(100.0, 12.0, 1), codes=[0, 0])
    three = instances.Column(3, burst=_figures(402.0, 13.0, 3), steady={}, codes=[1], note="steady not run")
    text = instances.table([one, three], 1500, 100, 20)
    lines = text.splitlines()
    assert "1 instance of each" in lines[0] and "3 instances of each" in lines[0]
    cases = next(line for line in lines if "cases/s to the owners' topics" in line)
    assert cases.split()[-2:] == ["231", "402"]
    assert any("intake" in line and "(×3)" in line for line in lines)
    assert any("floor" in line and "0.90" in line for line in lines)
    assert any("÷ floor" in line and "11.6" in line for line in lines)
    assert any("steady 100 reports/s for 20 s" in line for line in lines)
    assert any("complete, plausible" in line and "not run" in line for line in lines)
    assert instances.worst([c for col in (one, three) for c in col.codes]) == 1



def test_an_instances_run_keeps_its_figures_under_its_own_names_not_the_sittings(tmp_path, monkeypatch):
    """bench.e2e --baselines' table reads the saved burst, steady and floor: a later bench.instances run on a
    three-broker stack must leave them as the sitting's own runs saved them."""
    from bench import e2e, goals

    monkeypatch.setenv("WANGGE_STATE_DIR", str(tmp_path))
    sitting = {"burst": {"run_id": "b1", "task_rate": 1200.0}, "steady": {"run_id": "s1", "p99_task_ms": 80.0},
               "floor": {"run_id": "b1", "ms_per_case": 0.9}}
    for kind, figures in sitting.items():
        goals.save(kind, figures)
    asked: list[str] = []

    async def run_with_figures(n, timeout, rate, *, baselines=False, saved_as="", **_):
        """bench.e2e's run without a stack: its figures kept as bench.e2e keeps them (keep), under `saved_as`."""
        asked.append(saved_as)
        figures = {"run_id": f"i{len(asked)}", "task_rate": 402.0, "p99_task_ms": 300.0}
        e2e.keep(saved_as, "steady" if rate else "burst", figures, {"ms_per_case": 1.1} if baselines else None)
        return 0, figures

    monkeypatch.setattr(e2e, "run_with_figures", run_with_figures)
    args = SimpleNamespace(reports=1500, timeout=60.0, baselines=True, gateway_ms=5.0, warmup=0, floor_records=500,
                           rate=100.0, seconds=20.0)
    column = instances.Column(3)
    asyncio.run(instances.measure(column, args))

    assert asked == ["instances-3-", "instances-3-"] and column.codes == [0, 0]
    for kind, figures in sitting.items():
        assert {k: goals.load(kind)[k] for k in figures} == figures, kind
    assert goals.load("instances-3-burst")["task_rate"] == 402.0
    assert goals.load("instances-3-steady")["p99_task_ms"] == 300.0
    assert goals.load("instances-3-floor")["ms_per_case"] == 1.1

# ---- bench.faults_devup ---------------------------------------------------------------------------------------------

def test_the_faults_are_parsed_with_services_and_overlaps():
    assert parse_faults("kafka,services,postgres") == [["kafka"], ["intake", "routing", "supervision", "notify", "live"],
                                                       ["postgres"]]
    assert parse_faults("kafka+postgres,notify") == [["kafka", "postgres"], ["notify"]]
    for bad in ("kafka,,postgres", "broker"):
        with pytest.raises(Exception):
            parse_faults(bad)
    with pytest.raises(SystemExit):
        faults_devup.main(["--faults", "disk"])


def test_every_report_once_counts_nothing_doubled_or_lost():
    sent = ["d-0", "d-1"]
    cases = [("d-0", "c0", "20261207-0001"), ("d-1", "c1", "20261207-0002"), ("other-9", "c9", "20261207-0009")]
    tasks = [("c0", "t0"), ("c0", "t0"), ("c1", "t1"), ("c9", "t9")]  # a record sent again with its id: not a double
    acks = ["【网格】您反映的问题已受理，编号20261207-0001", "已受理，编号20261207-0002", "已受理，编号20261207-0009"]
    assert count(sent, cases, tasks, acks) == Counts(2, 2, 2, 2, 0, 0, {"cases": 0, "tasks": 0, "acks": 0})
    assert count(sent, cases, tasks, acks).passed


def test_a_case_dispatched_twice_an_ack_sent_twice_and_a_report_lost_are_counted():
    sent = ["d-0", "d-1", "d-2", "d-3"]
    cases = [("d-0", "c0", "20261207-0001"), ("d-1", "c1", "20261207-0002"), ("d-2", "c2", "20261207-0003"),
             ("d-2", "c2b", "20261207-0004")]  # d-2 became two cases; d-3 none
    tasks = [("c0", "t0"), ("c0", "t0-again"), ("c1", "t1"), ("c2", "t2")]  # c0 dispatched twice; c2b never
    acks = ["已受理 20261207-0001", "已受理 20261207-0002", "已受理 20261207-0002", "已受理 20261207-0003"]
    counts = count(sent, cases, tasks, acks)
    assert (counts.sent, counts.cases, counts.tasks, counts.acks) == (4, 3, 3, 3)
    assert counts.doubled == {"cases": 1, "tasks": 1, "acks": 1}
    assert counts.doubles == 3 and counts.lost == 1 and not counts.passed
    text = faults_devup.table([("a broker", counts, ""), ("the PostgreSQL primary", None, "fault not made: no leader")])
    assert "FAIL (twice: cases 1, tasks 1, acks 1)" in text and "FAIL (fault not made: no leader)" in text


def test_the_drill_finds_the_running_instances_and_brokers_by_their_pid_files(fake_stack):
    assert faults_devup.instances("intake") == {1: fake_stack["intake"], 2: fake_stack["intake#2"],
                                               3: fake_stack["intake#3"]}
    assert faults_devup.instances("routing") == {}  # routing-2.pid names a notify process
    assert faults_devup.brokers() == {i: fake_stack[root_key("kafka", i)] for i in (1, 2, 3)}


def test_a_killed_process_is_gone_before_the_drill_goes_on(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = time.monotonic()
    faults_devup.sigkill([proc.pid])
    assert proc.wait(5) == -9 and time.monotonic() - started < 10
    assert not Path(f"/proc/{proc.pid}/cmdline").exists() or proc.returncode == -9
