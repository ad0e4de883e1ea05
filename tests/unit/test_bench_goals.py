"""The benchmarks' own rules (bench/support.py, bench/goals.py, bench/e2e.py): how a component's CPU is summed from
the process table, that a figure of work below its floor of plausibility makes the run FAIL, and that the sitting's
table names every goal of issue 17."""
from __future__ import annotations

import math
import os

import pytest

from bench import goals
from bench.e2e import main as e2e_main
from bench.e2e import plausibility
from bench.floor import LEAST_UNITS, UnitCosts, floor_of
from bench.goals import Plausible, check_plausible, sitting_goals
from bench.support import CpuReading, Proc, cpu_used, parse_stat, subtree_ticks

# What bench.floor measured on this machine (2026-12-06; faust's 2026-12-08), µs.
UNITS = UnitCosts(produce_client=17.3, produce_broker=17.3, consume_client=7.3, consume_broker=6.0, row_postgres=3.3,
                  row_client=1.1, sign_client=25.0, check_client=45.0, place_client=4.0, prove_client=8.0,
                  stream_event=248.0, table_row=130.0)
MOVED = {"kafka_written": 12.0, "kafka_read": 17.0, "pg_rows": 40.0, "pg_commits": 9.0, "signed": 6.0, "checked": 14.0,
         "streamed": 3.0, "table_rows": 4.0}
SERVICES = {"intake": 3.0, "routing": 4.0, "supervision": 3.5, "notify": 4.5}


def _stat(pid: int, name: str, ppid: int, utime: int, stime: int, cutime: int, cstime: int, start: int) -> str:
    fields = ["S", ppid, 1, 1, 0, -1, 4194560, 0, 0, 0, 0, utime, stime, cutime, cstime, 20, 0, 1, 0, start]
    return f"{pid} ({name}) " + " ".join(map(str, fields)) + " 1000 100"


def test_a_stat_line_is_read_after_the_last_parenthesis_of_the_name():
    proc = parse_stat(42, _stat(42, "postgres: a (b) c", 7, 100, 20, 300, 40, 999))
    assert proc == Proc(pid=42, ppid=7, start=999, own=120, reaped=340)


def test_a_component_is_its_root_every_descendant_and_what_they_reaped_and_nothing_else():
    table = {
        10: Proc(10, 1, 5, own=100, reaped=5000),  # the postmaster: 5,000 ticks of backends that exited
        11: Proc(11, 10, 6, own=700, reaped=0),  # a backend
        12: Proc(12, 10, 6, own=300, reaped=0),  # another
        13: Proc(13, 12, 7, own=50, reaped=10),  # a descendant further down
        20: Proc(20, 1, 5, own=9999, reaped=9999),  # another cluster's postmaster
        21: Proc(21, 20, 6, own=9999, reaped=0),
    }
    assert subtree_ticks(table, 10) == 100 + 5000 + 700 + 300 + 50 + 10
    assert subtree_ticks(table, 99) == 0


def test_a_backend_that_exits_between_two_readings_keeps_its_cpu():
    # Before: the backend alive with 800 ticks. After: it exited, the postmaster reaped it (and 50 more ticks of work).
    before = {10: Proc(10, 1, 5, own=100, reaped=0), 11: Proc(11, 10, 6, own=800, reaped=0)}
    after = {10: Proc(10, 1, 5, own=100, reaped=850)}
    assert subtree_ticks(after, 10) - subtree_ticks(before, 10) == 50


def test_two_readings_of_different_processes_are_not_subtracted():
    before = CpuReading({"intake": 500, "postgresql": 1000}, {"intake": (11, 5), "postgresql": (10, 1)})
    after = CpuReading({"intake": 20, "postgresql": 1500, "notify": 9}, {"intake": (77, 9), "postgresql": (10, 1),
                                                                         "notify": (80, 9)})
    used, missing = cpu_used(before, after)
    assert "intake" not in used and "restarted" in missing["intake"]
    assert "started during the run" in missing["notify"]
    assert used["postgresql"] == pytest.approx(500 / os.sysconf("SC_CLK_TCK"))


def test_a_near_zero_or_unread_figure_fails_and_says_why(capsys):
    assert not Plausible("PostgreSQL: CPU per case", 20.0, 240.0, "µs").passed  # issue 17's 0.02 ms a case
    assert not Plausible("x", math.nan, 1.0, "").passed
    assert not Plausible("x", 0.0, 0.0, "").passed  # no work counted is never plausible for work that happened
    assert Plausible("x", 300.0, 240.0, "µs").passed
    assert not check_plausible([Plausible("PostgreSQL: CPU per case", 20.0, 240.0, "µs")])
    out = capsys.readouterr().out
    assert "FAIL" in out and "not to be trusted" in out
    assert not check_plausible([], {"postgresql": "not found"})
    assert check_plausible([Plausible("x", 300.0, 240.0, "µs")])


def _used(postgresql: float) -> dict[str, float]:
    """CPU seconds over 1,000 cases: the services, the broker and PostgreSQL as given."""
    return {**SERVICES, "kafka": 2.0, "postgresql": postgresql, "e2e": 5.0}


def test_the_end_to_end_run_fails_on_postgresql_reading_near_zero():
    handled = {name: 3000.0 for name in SERVICES}
    checks, absent = plausibility(_used(0.02), {}, handled, MOVED, 6.0, UNITS, 1000)  # 0.02 ms a case
    failed = [c.label for c in checks if not c.passed]
    assert len(failed) == 1 and failed[0].startswith("PostgreSQL: CPU per case") and not absent
    checks, absent = plausibility(_used(2.5), {}, handled, MOVED, 6.0, UNITS, 1000)
    assert all(c.passed for c in checks) and not absent


def test_the_end_to_end_run_fails_when_a_component_or_the_services_metrics_cannot_be_read():
    used = _used(2.5)
    del used["postgresql"]
    checks, absent = plausibility(used, {"sms_sink": "restarted"}, {}, MOVED, 6.0, UNITS, 1000)
    assert "postgresql" in absent and "sms_sink" not in absent  # the gateway's stand-in is not wangge's
    assert {c.label for c in checks if not c.passed} >= {f"{s}: messages consumed in the run (/metrics)" for s in SERVICES}


def test_kafka_records_below_what_the_benchmark_itself_sent_and_read_fail():
    handled = {name: 3000.0 for name in SERVICES}
    checks, _ = plausibility(_used(2.5), {}, handled, {**MOVED, "kafka_written": 0.4}, 6.0, UNITS, 1000)
    assert [c.label for c in checks if not c.passed] == ["Kafka: records written per case (≥ those this benchmark sent, read)"]


def test_signatures_unread_or_near_zero_fail_the_run():
    handled = {name: 3000.0 for name in SERVICES}
    checks, _ = plausibility(_used(2.5), {}, handled, {**MOVED, "signed": 0.0, "checked": 0.01}, 6.0, UNITS, 1000)
    assert [c.label for c in checks if not c.passed] == ["signatures made per case (/metrics)",
                                                        "signatures checked per case (/metrics)"]


def test_the_floor_counts_the_signatures_a_case_gets_made_and_checked_into_the_python_clients_share():
    without = floor_of(UNITS, {**MOVED, "signed": 0.0, "checked": 0.0})
    with_them = floor_of(UNITS, MOVED)
    assert with_them["clients"] - without["clients"] == pytest.approx(6 * 25.0 + 14 * 45.0)
    # Sent together, a batch shares one signature and one check; each record still costs its hashes.
    batched = floor_of(UNITS, {**MOVED, "signed": 0.1, "checked": 0.4, "placed": 6.0, "proved": 14.0})
    assert batched["clients"] - without["clients"] == pytest.approx(0.1 * 25.0 + 0.4 * 45.0 + 6 * 4.0 + 14 * 8.0)
    assert (with_them["kafka"], with_them["postgresql"]) == (without["kafka"], without["postgresql"])


def test_the_floor_counts_faust_s_own_path_for_each_event_and_table_row_of_the_live_figures():
    without = floor_of(UNITS, {**MOVED, "streamed": 0.0, "table_rows": 0.0})
    with_them = floor_of(UNITS, MOVED)
    assert with_them["clients"] - without["clients"] == pytest.approx(3 * 248.0 + 4 * 130.0)
    # Beyond the records' own cost, which the broker's and the clients' Kafka shares count already.
    assert (with_them["kafka"], with_them["postgresql"]) == (without["kafka"], without["postgresql"])


def test_the_live_figures_taking_fewer_events_than_a_case_has_fail_the_run():
    handled = {name: 3000.0 for name in SERVICES}
    checks, _ = plausibility(_used(2.5), {}, handled, {**MOVED, "streamed": 0.3}, 6.0, UNITS, 1000)
    assert [c.label for c in checks if not c.passed] == ["live figures: events its faust agent took per case (≥ 2)"]


def test_a_floor_saved_before_faust_was_measured_still_loads_with_the_least_it_costs():
    saved = {k: v for k, v in vars(UNITS).items() if k not in ("stream_event", "table_row")}
    units = UnitCosts(**saved)
    assert (units.stream_event, units.table_row) == (LEAST_UNITS.stream_event, LEAST_UNITS.table_row)


def test_a_floor_saved_before_signatures_were_measured_still_loads_with_the_least_they_cost():
    saved = {k: v for k, v in vars(UNITS).items() if k not in ("sign_client", "check_client")}
    units = UnitCosts(**saved)
    assert (units.sign_client, units.check_client) == (LEAST_UNITS.sign_client, LEAST_UNITS.check_client)


def test_the_least_units_are_below_what_this_machine_measured():
    for name, least in vars(LEAST_UNITS).items():
        assert 0 < least < getattr(UNITS, name)


BURST = {"run_id": "b1", "reports": 3000, "task_rate": 1200.0, "reply_rate": 600.0, "cpu_ms_per_case": 1.8,
         "kafka_written": 9.0, "kafka_read": 11.0, "gateway_ms": 5.0, "complete": True, "plausible": True,
         "at_epoch": 0}
STEADY = {"run_id": "s1", "reports": 12000, "rate": 200.0, "seconds": 60.0, "p99_task_ms": 80.0,
          "p99_reply_ms": 600.0, "cpu_ms_per_case": 1.5, "complete": True, "plausible": True, "at_epoch": 0}
HTTP = {"accepted_per_s": 700.0, "p99_ms": 60.0, "caught_up_s": 1.0, "connections": 32, "plausible": True,
        "at_epoch": 0}
FLOOR = {"ms_per_case": 0.9, "components_us": {"kafka": 200.0, "postgresql": 400.0, "clients": 300.0}, "at_epoch": 0}
BASELINES = {"two_row_tx_per_s": 9000.0, "rows_per_s_in_100_row_batches": 500000.0, "kafka_records_per_s": 300000.0}


def test_the_sittings_table_names_every_goal_of_issue_17_with_the_floor_and_the_baselines():
    table = sitting_goals(BURST, STEADY, HTTP, FLOOR, BASELINES, this_run="b1")
    labels = " | ".join(g.label for g in table)
    for goal in ("CPU per case, every process ≤ 2 ms", "≤ 2.5 × the floor", "every task on its owner's topic ≥ 1,000",
                 "every acknowledgement out ≥ 500", "p99 report → task < 100 ms", "p99 report → acknowledgement < 1000",
                 "≥ 500 accepted/s", "p99 < 100 ms", "keeping up", "written per case < 12", "read per case < 17"):
        assert goal in labels
    assert all(g.passed for g in table)
    cpu = table[0]
    assert "floor 0.90 ms" in cpu.floor and cpu.source == "this run"
    burst = next(g for g in table if "owner's topic" in g.label)
    assert "9,000 two-row tx/s" in burst.baselines and "2,222 cases/s" in burst.floor


def test_a_goal_of_an_implausible_run_fails_whatever_its_figure_and_an_unrun_goal_says_so():
    table = sitting_goals({**BURST, "plausible": False}, None, None, FLOOR, None, this_run="b1")
    assert not any(g.passed for g in table if g.passed is not None)
    unrun = [g for g in table if g.passed is None]
    assert any("bench.http" in g.source for g in unrun) and any("--rate 200" in g.source for g in unrun)


def test_a_steady_run_shorter_than_the_goals_minute_does_not_pass():
    table = sitting_goals(None, {**STEADY, "reports": 2000, "seconds": 10.0}, None, None, None)
    steady = [g for g in table if g.label.startswith("steady")]
    assert steady and not any(g.passed for g in steady)


def test_help_says_how_to_run_the_whole_sitting(capsys):
    with pytest.raises(SystemExit):
        e2e_main(["--help"])
    out = capsys.readouterr().out
    for step in ("bench.floor", "bench.http", "--rate 200 --reports 12000", "--reports 3000 --baselines"):
        assert step in out
    assert goals.EXIT_IMPLAUSIBLE == 2


def test_cases_sharing_a_batchs_transaction_pass_and_no_transaction_at_all_fails():
    # A consumer handles a batch in one transaction: under a steady stream most batches hold a case or a few, so a
    # case can cost less than one transaction; none at all means PostgreSQL's counters were not read.
    handled = {name: 3000.0 for name in SERVICES}
    label = "PostgreSQL: transactions per case (≥ its share of a batch's)"
    shared, _ = plausibility(_used(2.5), {}, handled, {**MOVED, "pg_commits": 0.4}, 6.0, UNITS, 1000)
    assert label not in [c.label for c in shared if not c.passed]
    none, _ = plausibility(_used(2.5), {}, handled, {**MOVED, "pg_commits": 0.0}, 6.0, UNITS, 1000)
    assert [c.label for c in none if not c.passed] == [label]
