"""The benchmark harness's pieces that need no broker: the start-up check for missing packages,
the goals computed from a report, the charts, and that no child process outlives a run."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from bench import __main__ as bench_main
from bench import plan as bench_plan
from bench import preflight
from bench.charts import write_charts
from bench.goals import evaluate_goals
from bench.harness import CDF_POINTS, quantiles
from bench.load import workload
from bench.machine import measured_commit
from bench.report import Report
from bench.stockflow_systems import _last_per_partition
from bench.system import System

from stockflow.errors import BrokerError
from stockflow.settings import Settings

REPO = Path(__file__).resolve().parents[2]


PIPELINE_GOAL_ROW = "LocalPipeline single-line orders >= 50,000/s (compiled: pip install .)"
PURE_PIPELINE_GOAL = "LocalPipeline, pure build (editable, or no C compiler), >= 50,000/s"


# --- missing packages -----------------------------------------------------------------------


def test_missing_quixstreams_is_named_with_the_install_command() -> None:
    problems = preflight.missing(
        ["throughput"], ["pipe", "quix", "stockflow"], charts=False, found=lambda name: False
    )
    assert len(problems) == 1
    assert "quixstreams" in problems[0]
    assert "pip install -e '.[bench]'" in problems[0]


def test_nothing_is_missing_when_quix_is_not_run() -> None:
    never = lambda name: False  # noqa: E731
    assert preflight.missing(["throughput"], ["pipe", "stockflow"], charts=False, found=never) == []
    # Sections that run stockflow alone do not need the peer.
    assert preflight.missing(["core", "recovery"], ["quix"], charts=False, found=never) == []


def test_charts_and_profile_requirements() -> None:
    problems = preflight.missing(
        ["profile"], ["stockflow"], charts=True, found=lambda name: False, which=lambda name: None
    )
    assert any("matplotlib" in p for p in problems)
    assert any("py-spy" in p for p in problems)


def test_bench_without_the_peer_fails_at_once_and_starts_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(preflight, "_module_found", lambda name: name != "quixstreams")
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        bench_main.main(["--quick"])
    assert time.monotonic() - started < 5
    assert "quixstreams" in str(exit_info.value.code)
    assert "pip install -e '.[bench]'" in str(exit_info.value.code)
    assert "bench" not in capsys.readouterr().out  # no table: nothing ran


# --- goals ----------------------------------------------------------------------------------


def _run(system: str, kind: str, rate: float, cpu: float) -> dict[str, Any]:
    return {
        "system": system,
        "workload": kind,
        "rate": rate,
        "cpu_ms_per_order": cpu,
        "complete": True,
        "note": "",
    }


def _fabricated() -> Report:
    throughput = []
    for kind, sf_rate in (("spread", 9_000.0), ("hot", 5_000.0), ("multi", 3_000.0)):
        throughput += [
            _run("pipe", kind, 20_000.0, 0.04),
            _run("quix", kind, 10_000.0, 0.06),
            _run("stockflow", kind, sf_rate, 0.10),
        ]
    throughput[-1]["cpu_ms_per_order"] = 0.15  # multi: 2.5x the peer's CPU
    cdf = [(q, 10.0 + 90 * q) for q in CDF_POINTS]
    latency = [
        {"system": s, "note": "fetch wait 50 ms", "offered": 4_500.0, "cdf": cdf, **lat}
        for s, lat in (
            ("pipe", {"p50_ms": 40.0, "p99_ms": 100.0}),
            ("stockflow", {"p50_ms": 50.0, "p99_ms": 250.0}),
        )
    ]
    core = [
        {"key": "baseline", "name": "baseline", "decisions": 1, "seconds": 1, "rate": 200_000.0},
        {"key": "reserve", "name": "reserve", "decisions": 1, "seconds": 1, "rate": 350_000.0},
        {"key": "pipeline", "name": "LocalPipeline", "decisions": 1, "seconds": 1, "rate": 40e3},
    ]
    recovery = {
        "products": 1_000_000,
        "raw_read_s": 10.0,
        "replacement_decided_s": 25.0,
        "phases": {"replacement": {"assigned": 3.0, "ready": 20.0}},
        "empty_ready_s": 3.0,
        "rss_empty_mb": 100.0,
        "rss_rocksdb_mb": 450.0,
    }
    scaleout = [
        {**_run("stockflow", "spread", 9_000.0, 0.10), "note": "1 worker"},
        {**_run("stockflow-2w", "spread", 15_000.0, 0.11), "note": "2 workers"},
    ]
    return Report(
        meta={"commit": "abc1234", "nproc": "2"},
        throughput=throughput,
        latency=latency,
        core=core,
        recovery=recovery,
        scaleout=scaleout,
    )


def test_goals_are_ratios_to_the_same_run() -> None:
    goals = {g["goal"]: g for g in evaluate_goals(_fabricated())}
    met = {goal: g["met"] for goal, g in goals.items()}
    assert met["throughput (spread) >= 0.6x the Quix peer (aim 1.0x)"] is True  # 0.9x
    assert met["throughput (hot) >= 0.6x the Quix peer (aim 1.0x)"] is False  # 0.5x
    assert met["CPU per order (spread) <= 2.0x the Quix peer's"] is True  # 1.67x
    assert met["CPU per order (multi) <= 2.0x the Quix peer's"] is False  # 2.5x
    assert met["latency p50 at half max <= 1.5x the pipe's"] is True  # 1.25x
    assert met["latency p99 at half max <= 2.0x the pipe's"] is False  # 2.5x
    assert met["bare reserve >= 300,000 decisions/s"] is True
    assert met[PURE_PIPELINE_GOAL] is False
    assert met["recovery at 1M products <= 3x the raw changelog read"] is True  # 2.5x
    assert met["peak RSS <= 500 MiB at 1M products (RocksDB)"] is True
    assert met["scale-out: 2 workers vs 1 (spread; reported)"] is None
    assert goals["throughput (spread) >= 0.6x the Quix peer (aim 1.0x)"]["measured"].startswith(
        "0.900x"
    )
    assert "1.67x" in goals["scale-out: 2 workers vs 1 (spread; reported)"]["measured"]


def test_latency_goal_needs_the_pipe_at_the_same_load() -> None:
    report = _fabricated()
    report.latency[0]["offered"] = 1_000.0  # the pipe at another load: no ratio
    goals = {g["goal"]: g for g in evaluate_goals(report)}
    p50 = goals["latency p50 at half max <= 1.5x the pipe's"]
    assert p50["met"] is None
    assert "no pipe run at that load" in p50["measured"]


def test_latency_goals_are_judged_per_workload_against_that_workload_s_pipe() -> None:
    report = _fabricated()
    multi = {"workload": "multi", "note": "fetch wait 50 ms", "offered": 1_500.0}
    report.latency += [
        {**multi, "system": "pipe", "p50_ms": 60.0, "p99_ms": 150.0},
        {**multi, "system": "stockflow", "p50_ms": 120.0, "p99_ms": 240.0},
        # A pipe at the same load on another workload is not multi's reference.
        {**multi, "workload": "hot", "system": "pipe", "p50_ms": 1.0, "p99_ms": 1.0},
    ]
    goals = {g["goal"]: g for g in evaluate_goals(report)}
    assert goals["latency p50 at half max <= 1.5x the pipe's"]["met"] is True  # spread, 1.25x
    p50 = goals["latency p50 (multi) at half max <= 1.5x the pipe's"]
    assert p50["met"] is False and p50["measured"].startswith("2.00x (120.0 vs 60.0 ms")
    assert goals["latency p99 (multi) at half max <= 2.0x the pipe's"]["met"] is True  # 1.6x
    assert not any("(hot)" in goal and "latency" in goal for goal in goals)


def test_recovery_below_a_million_products_is_not_judged() -> None:
    report = _fabricated()
    assert report.recovery is not None
    report.recovery["products"] = 100_000
    goals = {g["goal"]: g for g in evaluate_goals(report)}
    recovery = goals["recovery at 1M products <= 3x the raw changelog read"]
    assert recovery["met"] is None
    assert "--scale 1.0" in recovery["measured"]


def test_the_pipeline_goal_reads_the_worker_collector_row_by_key() -> None:
    core = [
        {"key": "pipeline", "name": "LocalPipeline (whole single-line order)", "rate": 51_000.0},
        {"key": "pipeline-default-gc", "name": "LocalPipeline, Python's", "rate": 40_000.0},
    ]
    for rows in (core, core[::-1]):
        goals = {g["goal"]: g for g in evaluate_goals(Report(core=rows))}
        pipeline = goals[PURE_PIPELINE_GOAL]
        assert pipeline["met"] is True and pipeline["measured"].startswith("51,000")


def test_the_core_section_gives_the_collector_back_as_it_found_it() -> None:
    from bench.core import worker_collector

    from stockflow.garbage import BACKSTOP_FACTOR, collect_between_batches

    before = gc.get_threshold()
    with worker_collector():
        assert gc.get_threshold()[0] == Settings().gc_threshold * BACKSTOP_FACTOR
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    kept = [[] for _ in range(Settings().gc_threshold + 1)]
    assert collect_between_batches() is None  # no longer tuned: nothing collected here
    assert len(kept) > Settings().gc_threshold


def test_each_core_layer_reports_its_best_round_and_keeps_every_round() -> None:
    from bench.core import run_core

    results = run_core(400, products=20, rounds=3)
    assert [r.key for r in results] == [
        "baseline",
        "reserve",
        "writer",
        "pipeline",
        "pipeline-default-gc",
    ]
    for result in results:
        assert len(result.rates) == 3
        assert result.rate == pytest.approx(max(result.rates))
    table = Report(core=[{**vars(r), "rate": r.rate, "rates": list(r.rates)} for r in results])
    assert table._core_table() is not None


def test_the_core_section_measures_the_compiled_build_unless_told_not_to() -> None:
    assert bench_plan.plan_of(["--only", "core"]).core_compiled
    assert not bench_plan.plan_of(["--only", "core", "--no-compiled"]).core_compiled
    assert not bench_plan.plan_of(["--quick"]).core_compiled  # a smoke run builds nothing


def test_the_compiled_build_comes_from_the_measured_source_tree() -> None:
    from importlib.machinery import EXTENSION_SUFFIXES

    from bench.compiled import compiled_source_tree

    import stockflow.core.stock

    tree, why_not = compiled_source_tree()
    if str(stockflow.core.stock.__file__).endswith(tuple(EXTENSION_SUFFIXES)):
        # scripts/test-compiled.sh: this very run is on the compiled build
        assert tree is None and "compiled build already" in why_not
    else:
        assert tree is not None and why_not == ""
        assert (tree / "setup.py").is_file()
        assert Path(stockflow.core.stock.__file__).resolve().is_relative_to(tree / "src")


def test_a_compiled_build_that_fails_says_why(tmp_path: Path) -> None:
    from bench.compiled import build_compiled

    tree = tmp_path / "tree"
    (tree / "src").mkdir(parents=True)
    (tree / "pyproject.toml").write_text("[project\n")  # not TOML
    (tree / "setup.py").write_text("")
    (tree / "README.md").write_text("")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(RuntimeError, match="the wheel build failed"):
        build_compiled(tree, scratch)


def test_a_failed_build_is_told_by_its_own_error_line_not_pips_summary() -> None:
    from bench.compiled import _last

    stderr = "\n".join(
        [
            "      building 'x__mypyc' extension",
            "      error: Command '['/bin/false', '-O3']' returned non-zero exit status 1.",
            "  note: This error originates from a subprocess.",
            "ERROR: Failed to build one or more wheels",
            "WARNING: Location 'file:///opt/x/' is ignored: it is neither a file nor a directory.",
        ]
    )
    done = subprocess.CompletedProcess([], 1, stdout="", stderr=stderr)
    assert _last(done) == "error: Command '['/bin/false', '-O3']' returned non-zero exit status 1."
    done = subprocess.CompletedProcess([], 1, stdout="", stderr="\n".join(stderr.split("\n")[2:]))
    assert _last(done) == "ERROR: Failed to build one or more wheels"
    assert len(_last(subprocess.CompletedProcess([], 1, "", "error: " + "x" * 500))) == 300


def test_the_compiled_pipeline_is_a_goal_row_of_its_own_beside_the_pure_one() -> None:
    core = [
        {"key": "pipeline", "name": "LocalPipeline (whole single-line order)", "rate": 40_000.0},
        {"key": "pipeline-compiled", "name": "LocalPipeline, compiled build", "rate": 66_000.0},
    ]
    goals = {g["goal"]: g for g in evaluate_goals(Report(core=core))}
    assert goals[PURE_PIPELINE_GOAL]["met"] is False
    compiled = goals[PIPELINE_GOAL_ROW]
    assert compiled["met"] is True
    assert compiled["measured"] == "66,000 orders/s (1.65x the pure build)"


def test_the_core_table_says_why_the_compiled_build_was_not_measured() -> None:
    core = [{"key": "baseline", "name": "baseline", "decisions": 10, "rate": 1.0, "rates": [1.0]}]
    table = Report(core=core, meta={"core_compiled": "no C compiler"})._core_table()
    assert table is not None and table.caption == "compiled build not measured: no C compiler"
    table = Report(core=core)._core_table()
    assert table is not None and table.caption is None


def test_a_goal_not_measured_is_left_out() -> None:
    report = Report(throughput=[_run("stockflow", "spread", 1_000.0, 0.5)])
    assert evaluate_goals(report) == []


# --- charts ---------------------------------------------------------------------------------


def test_charts_are_png_files(tmp_path: Path) -> None:
    paths = write_charts(_fabricated(), tmp_path, "run-")
    assert sorted(p.name for p in paths) == [
        "run-latency-cdf.png",
        "run-scaleout.png",
        "run-throughput.png",
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000


def test_charts_of_an_empty_report_draw_nothing(tmp_path: Path) -> None:
    assert write_charts(Report(), tmp_path) == []


def test_quantiles_keep_the_tail() -> None:
    values = [float(v) for v in range(1, 1001)]
    points = dict(quantiles(values))
    assert points[0.0] == 1.0
    assert points[0.5] == 501.0
    assert points[0.999] == 999.0
    assert points[1.0] == 1000.0
    assert quantiles([]) == []


# --- the warm-up sample ---------------------------------------------------------------------


def test_warm_up_reads_the_last_product_of_each_partition() -> None:
    keys = [b"a", b"b", b"c", b"d", b"e"]
    partition_of = {b"a": 0, b"b": 1, b"c": 0, b"d": 2, b"e": 1}
    assert _last_per_partition(keys, partition_of) == ["c", "e", "d"]


# --- nothing left behind --------------------------------------------------------------------


class _DeadSystem(System):
    name = "dead"

    def __init__(self) -> None:
        pass

    def alive(self) -> bool:
        return False


def test_a_wait_ends_at_once_when_the_system_exits() -> None:
    started = time.monotonic()
    with pytest.raises(BrokerError, match="dead exited during the warm-up"):
        asyncio.run(_DeadSystem().watched(asyncio.sleep(60), "the warm-up"))
    assert time.monotonic() - started < 5


SCRIPT = textwrap.dedent(
    """
    import subprocess, sys, time
    from bench.procs import stopping_children

    with stopping_children(timeout=5):
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
        )
        print(child.pid, flush=True)
        if sys.argv[1] == "raise":
            time.sleep(0.5)
            raise RuntimeError("a failed run")
        time.sleep(120)
    """
)


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """True once ``pid`` no longer runs (a zombie counts as gone)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _run_script(mode: str, sig: int | None) -> tuple[int, int]:
    """Run :data:`SCRIPT`; returns (its exit status, the PID of the child it started)."""
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, mode],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    child = 0
    try:
        assert process.stdout is not None
        child = int(process.stdout.readline())
        if sig is not None:
            time.sleep(0.3)
            process.send_signal(sig)
        return process.wait(timeout=30), child
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if child and not _gone(child, 0):
            os.kill(child, signal.SIGKILL)  # our own stray: stop it by its PID


def test_children_are_stopped_when_the_run_raises() -> None:
    status, child = _run_script("raise", None)
    assert status == 1
    assert _gone(child)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_children_are_stopped_when_the_run_is_signalled(sig: int) -> None:
    status, child = _run_script("wait", sig)
    assert status != 0
    assert _gone(child)


def test_charts_redrawn_from_a_saved_run(tmp_path: Path) -> None:
    from bench.charts import main as charts_main

    saved = tmp_path / "bench.json"
    _fabricated().write_json(saved)
    assert charts_main([str(saved), str(tmp_path / "img")]) == 0
    names = sorted(p.name for p in (tmp_path / "img").iterdir())
    assert names == ["bench-latency-cdf.png", "bench-scaleout.png", "bench-throughput.png"]


def test_a_thread_blocked_on_a_condition_counts_as_idle() -> None:
    from bench.profile import summarize

    raw = "\n".join(
        [
            "thread (0x1): MainThread;run (asyncio/base_events.py:600);"
            "_apply (stockflow/_faust/batches.py:140) 30",
            "thread (0x1): MainThread;select (selectors.py:468) 50",
            "thread (0x2): stockflow-exit-watchdog;run (threading.py:975);"
            "wait (threading.py:324) 80",
            # newer py-spy versions qualify the name with its class
            "thread (0x3): Thread-1;run (threading.py:975);Condition.wait (threading.py:324) 40",
        ]
    )
    profile = summarize(raw)
    assert profile.samples == 200
    assert profile.busy == 30  # only the batch processor's samples are CPU


def test_knobs_compare_the_defaults_with_the_given_environments_only() -> None:
    plan = bench_plan.plan_of(
        ["--only", "knobs", "--knob", "PYTHONPATH=/tmp/base/src", "--knob", "A=1;B=x=y"]
    )
    assert plan.knobs == ({}, {"PYTHONPATH": "/tmp/base/src"}, {"A": "1", "B": "x=y"})
    assert plan.workload == "spread"
    assert bench_plan.plan_of(["--workload", "multi"]).knobs == bench_plan.KNOBS


def test_the_throughput_workloads_are_chosen_and_checked() -> None:
    assert bench_plan.plan_of([]).workloads == ("spread", "hot", "multi")
    assert bench_plan.plan_of(["--workloads", "zipf,spread"]).workloads == ("zipf", "spread")
    with pytest.raises(SystemExit, match="unknown workloads: nope"):
        bench_plan.plan_of(["--workloads", "spread,nope"])


def test_the_zipf_workload_sells_out_its_popular_products_only() -> None:
    load = workload("zipf", 20_000, 500)
    records = load.order_records()
    assert records == load.order_records()  # seeded: every system gets the same orders
    demand = Counter(json.loads(value)["lines"][0]["product_id"] for _key, value in records)
    ranked = [count for _product, count in demand.most_common()]
    assert load.stock == 20  # half the average demand of 40
    assert ranked[0] > 10 * ranked[len(ranked) // 2]  # skewed: the head dwarfs the median
    sold_out = sum(1 for count in ranked if count > load.stock)
    assert 0 < sold_out < len(ranked) / 2
    # One unit per order: each product reserves its demand up to its stock.
    assert load.expected_reserved == sum(min(count, load.stock) for count in ranked)
    assert load.expected_reserved < load.orders


def test_the_fast_factor_sizes_the_pipe_and_the_peer() -> None:
    plan = bench_plan.plan_of(["--orders", "100000", "--fast-factor", "3"])
    assert bench_main._orders_for(plan, "quix") == 300_000
    assert bench_main._orders_for(plan, "stockflow") == 100_000
    assert bench_plan.plan_of([]).fast_factor == 10


def test_the_recovery_state_holds_one_reservation_per_product() -> None:
    # The recovery section's changelogs are built by the processors themselves: a change of
    # theirs (a held single-line order answers nothing now) must not break the bench.
    from bench.recovery import synthesize

    from stockflow.processing.codec import decode_saga, decode_stock

    products, orders = synthesize(200, 4, 1_700_000_000_000)
    records = {key.decode(): value for part in products.values() for key, value in part}
    stocks = {key: decode_stock(v).stock for key, v in records.items() if key.startswith("s:")}
    assert len(stocks) == 200
    assert all((s.on_hand, s.reserved) == (10, 1) for s in stocks.values())
    sagas = [
        decode_saga(value)
        for part in orders.values()
        for key, value in part
        if key.startswith(b"o:")
    ]
    assert len(sagas) == 200 and all(saga.status == "reserving" for saga in sagas)


# --- latency over a run ---------------------------------------------------------------------


def test_fifths_split_a_latency_run_by_send_time() -> None:
    from bench.harness import _fifths

    # Latency climbing with the send time, as on a broker whose log grows: the first fifth
    # (sent at 0..19) answers in 10 ms, the last fifth (80..99) in 50 ms.
    timed = [(float(at), 10.0 + 10 * (at // 20)) for at in range(100)]
    assert _fifths(timed) == (10.0, 50.0)
    assert _fifths([(0.0, 7.0)]) == (7.0, 7.0)


def test_latency_table_shows_the_fifths_and_reads_older_reports() -> None:
    from rich.console import Console

    row = {
        "system": "stockflow",
        "note": "fetch wait 50 ms",
        "offered": 4_500.0,
        "sent_rate": 4_400.0,
        "answered": 90_000,
        "p50_ms": 80.0,
        "p99_ms": 200.0,
        "max_ms": 300.0,
        "cpu_cores": 0.5,
    }
    older = {**row, "system": "pipe"}  # written before the fifths existed
    report = Report(latency=[older, {**row, "p50_first_ms": 51.0, "p50_last_ms": 149.0}])
    console = Console(width=250, record=True)
    report.print(console)
    text = console.export_text()
    assert "51 / 149" in text
    assert "first/last" in text


def test_the_profile_runs_at_an_offered_load_when_asked_and_says_which() -> None:
    from rich.console import Console

    assert bench_plan.plan_of(["--only", "profile"]).profile_rate is None
    plan = bench_plan.plan_of(["--only", "profile", "--profile-rate", "11500"])
    assert plan.profile_rate == 11_500.0
    profile = {
        "threads": {"MainThread": {"busy_share": 0.5}},
        "layers_of_busy": [["stockflow.processing", 0.4]],
        "self_of_busy": [["TableStore.get (tables/store.py)", 0.12]],
        "key_of_busy": [],
    }
    for offered, title in ((11_500.0, "at 11,500 orders/s offered"), (None, "at its maximum")):
        console = Console(width=250, record=True)
        Report(profile={**profile, "offered": offered}).print(console)
        assert f"Worker profile {title}" in console.export_text()


def test_knobs_compare_latency_at_an_offered_load_beside_the_pipe() -> None:
    from bench.harness import RunResult, median_latency
    from rich.console import Console

    assert bench_plan.plan_of(["--only", "knobs"]).knob_rate is None
    plan = bench_plan.plan_of(["--only", "knobs", "--knob-rate", "11000", "--knob", "A=1"])
    assert plan.knob_rate == 11_000.0

    def run(system: str, p50: float | None) -> RunResult:
        return RunResult(system, "spread", 100, offered=11_000.0, p50_ms=p50, p99_ms=200.0)

    chosen = median_latency(
        [run("stockflow", 90.0), run("stockflow", None), run("stockflow", 70.0)]
    )
    assert chosen.p50_ms == 90.0  # a run that measured nothing counts as the slowest
    assert chosen.runs == [90.0, 70.0]
    rows = [
        {**run("stockflow", 80.0).as_dict(), "note": "defaults"},
        {**run("stockflow", 100.0).as_dict(), "note": "A=1"},
        {**run("pipe", 50.0).as_dict(), "note": "the pipe (reference)"},
    ]
    console = Console(width=250, record=True)
    Report(knobs=rows).print(console)
    text = console.export_text()
    assert "spread latency at 11,000 orders/s offered" in text
    assert "1.250x" in text  # A=1 against the defaults
    assert "1.600x" in text  # the defaults against the pipe
    assert "2.000x" in text  # A=1 against the pipe


def test_the_measured_commit_names_the_checkout_stockflow_is_imported_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bench started in another worktree imports the virtualenv's editable install: the
    # label is that checkout's commit, not "?".
    import stockflow

    root = Path(stockflow.__file__).resolve().parents[2]
    calls: list[tuple[str, ...]] = []

    def run(*cmd: str) -> str:
        calls.append(cmd)
        return "abc1234" if "rev-parse" in cmd else ""

    monkeypatch.chdir(tmp_path)
    assert measured_commit(run) == f"abc1234 (imported from {root})"
    assert calls[0] == ("git", "-C", str(root), "rev-parse", "--short", "HEAD")
    monkeypatch.chdir(root)  # the work tree itself: its own commit, as before
    assert measured_commit(run) == "abc1234"


def test_knob_rounds_alternate_their_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fixed order ran the defaults first in every round; two A/Bs of one change this way
    # leaned the same way whichever tree was the knob. Every knob now runs first as often as
    # last.
    assert bench_main._knob_order(3, 0) == [0, 1, 2]
    assert bench_main._knob_order(3, 1) == [2, 1, 0]
    assert bench_main._knob_order(3, 2) == [0, 1, 2]
    ran: list[str] = []

    def fake_run(system: str, load: Any, **kwargs: Any) -> Any:
        ran.append(kwargs["env"].get("K", "defaults"))
        result = mock.Mock(rate=1.0)
        result.as_dict.return_value = {}
        return result

    monkeypatch.setattr(bench_main, "throughput_run", fake_run)
    monkeypatch.setattr(bench_main, "median_of", lambda results: results[0])
    plan = bench_plan.plan_of(["--only", "knobs", "--knob", "K=1", "--repeat", "4"])
    bench_main._knobs(plan, Report())
    assert ran == ["defaults", "1", "1", "defaults", "defaults", "1", "1", "defaults"]


def test_latency_rounds_are_interleaved_and_each_system_keeps_its_median_p50(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bench.harness import RunResult

    calls: list[str] = []
    p50s = {"pipe": iter([60.0, 80.0, 70.0]), "stockflow": iter([90.0, 150.0, 100.0])}

    def fake_run(system: str, load: Any, rate: float, **_kwargs: Any) -> RunResult:
        calls.append(system)
        p50 = next(p50s[system], 50.0)  # then the 10 ms fetch wait and the lighter loads, once
        return RunResult(system, load.kind, load.orders, offered=rate, p50_ms=p50, p99_ms=2 * p50)

    monkeypatch.setattr(bench_main, "latency_run", fake_run)
    monkeypatch.setattr(bench_main, "_maximum", lambda *_args: (8000.0, "probe run"))
    only = ["--only", "latency", "--systems", "pipe,stockflow", "--workloads", "multi"]
    plan = bench_plan.plan_of([*only, "--repeat", "3"])
    report = Report()
    bench_main._latency(plan, report)
    # Round by round, the order reversed every other round: neither system always runs first.
    assert calls[:6] == ["pipe", "stockflow", "stockflow", "pipe", "pipe", "stockflow"]
    assert calls[6:] == ["pipe", "stockflow", "stockflow", "stockflow"]
    rows = {row["system"]: row for row in report.latency if row["note"] == "fetch wait 50 ms"}
    assert set(rows) == {"pipe", "stockflow"}
    variants = [row for row in report.latency if row["note"] != "fetch wait 50 ms"]
    assert [row["runs"] for row in variants] == [[50.0], [50.0], [], []]
    assert (rows["pipe"]["p50_ms"], rows["pipe"]["p99_ms"]) == (70.0, 140.0)
    assert rows["stockflow"]["p50_ms"] == 100.0
    assert rows["stockflow"]["runs"] == [90.0, 150.0, 100.0]
    goals = {goal["goal"]: goal for goal in evaluate_goals(report)}
    multi = next(g for name, g in goals.items() if "p50 (multi)" in name)
    assert multi["met"] is True  # 100 / 70 = 1.43x, where the first round alone was 1.5x
