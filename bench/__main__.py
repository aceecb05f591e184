"""``python -m bench``: run the benchmark sections and print (and optionally save) the table.

Examples::

    python -m bench --quick                      # smoke run, < 2 minutes, timings not asserted
    python -m bench --json bench.json            # full run
    python -m bench --only throughput,latency --orders 20000
    python -m bench --only recovery --scale 0.1  # 100,000 products instead of 1,000,000
    python -m bench --only knobs --env STOCKFLOW_PRODUCER_LINGER_MS=20
    python -m bench --only checkout --orders 2000   # place() and POST /orders round trips
    python -m bench --only scaleout --repeat 3   # 1 worker vs 2 workers, spread workload

Before anything starts it checks what the run needs (:mod:`bench.preflight`): without the
``bench`` extra a run with the Quix peer or charts fails at once, naming the package. Every
process it starts is stopped on every exit path, Ctrl-C and SIGTERM included
(:func:`bench.procs.stopping_children`).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from bench.compiled import run_core_compiled
from bench.core import ROUNDS, run_core
from bench.goals import evaluate_goals
from bench.harness import (
    RunResult,
    latency_run,
    median_latency,
    median_of,
    median_run,
    offered_run,
    throughput_run,
)
from bench.load import Workload, workload
from bench.machine import machine
from bench.plan import Plan, build_parser
from bench.preflight import require
from bench.procs import stopping_children
from bench.report import Report

__all__ = ["main", "run"]

LATENCY_VARIANT_SYSTEMS = ("pipe", "stockflow")
"""Only these are also timed at the second fetch wait."""
SCALEOUT_SYSTEMS = (("stockflow", "1 worker"), ("stockflow-2w", "2 workers"))

log = logging.getLogger("bench")


def _orders_for(plan: Plan, system: str) -> int:
    """Faster systems get more orders, so that every run lasts long enough to time."""
    if system.startswith("stockflow") or system == "faust+6w":
        return plan.orders
    if system == "faust":
        return plan.orders * 2
    return plan.orders * plan.fast_factor


def _env_for(plan: Plan, system: str) -> dict[str, str]:
    """stockflow and the Faust floor get every ``--env``; the pipe and the peer only the
    fetch wait."""
    if system.startswith(("stockflow", "faust")):
        return plan.env
    return {k: v for k, v in plan.env.items() if k == "STOCKFLOW_FETCH_MAX_WAIT_MS"}


def _throughput(plan: Plan, report: Report) -> None:
    for kind in plan.workloads:
        for system in plan.systems:
            load = workload(kind, _orders_for(plan, system), plan.products)
            result = median_run(
                plan.repeat,
                throughput_run,
                system,
                load,
                partitions=plan.partitions,
                env=_env_for(plan, system),
                timeout=plan.timeout,
            )
            report.throughput.append(result.as_dict())


def _spread_maximum(plan: Plan, report: Report) -> tuple[float, str]:
    """stockflow's spread throughput of this run and where it came from, measured now if no
    section did yet."""
    return _maximum(plan, report, "spread")


def _maximum(plan: Plan, report: Report, kind: str) -> tuple[float, str]:
    """stockflow's throughput on workload ``kind`` in this run and where it came from,
    measured now if no section did yet."""
    maximum = report.rate("stockflow", kind)
    basis = "throughput section"
    if maximum is None:
        basis = "probe run"
        probe = throughput_run(
            "stockflow",
            workload(kind, plan.orders, plan.products),
            partitions=plan.partitions,
            env=plan.env,
            timeout=plan.timeout,
        )
        maximum = probe.rate
    return maximum, basis


def _latency(plan: Plan, report: Report) -> None:
    """Every system at the same offered load, half stockflow's own maximum on each workload of
    the run (from its throughput section, or a probe run). The pipe always runs when stockflow
    does: the latency goals are ratios to the pipe at that load. With ``--repeat N`` the
    systems run N interleaved rounds at the default fetch wait (one order, then the other:
    :func:`_knob_order`), and each keeps its run with the median p50, every round's p50 in
    ``runs``. The 10 ms fetch wait and the lighter loads run once, on the first workload only
    (spread by default)."""
    systems = plan.systems
    if "stockflow" in systems and "pipe" not in systems:
        systems = ("pipe", *systems)
    loads = report.meta.setdefault("latency_loads", {})
    for index, kind in enumerate(plan.workloads):
        maximum, basis = _maximum(plan, report, kind)
        rate = max(maximum / 2, 1.0)
        loads[kind] = {"stockflow_max": maximum, "offered": rate, "from": basis}
        if index == 0:
            report.meta["latency_load"] = loads[kind]
        count = max(int(rate * plan.latency_seconds), 50)
        waits = plan.latency_fetch_waits if index == 0 else (None,)
        for fetch_wait in waits:
            timed = [s for s in systems if fetch_wait is None or s in LATENCY_VARIANT_SYSTEMS]
            # One p50 is one sample of a noisy machine: the same tree measured 1.42x and 1.52x
            # the pipe's in two runs an hour apart. Rounds interleaved, as the knobs' are.
            rounds = max(plan.repeat, 1) if fetch_wait is None else 1
            runs: dict[str, list[RunResult]] = {system: [] for system in timed}
            for round_index in range(rounds):
                for position in _knob_order(len(timed), round_index):
                    system = timed[position]
                    env = _env_for(plan, system)
                    if fetch_wait is not None:
                        env = {**env, "STOCKFLOW_FETCH_MAX_WAIT_MS": str(fetch_wait)}
                    load = workload(kind, count, plan.products, prefix="lat-")
                    runs[system].append(
                        latency_run(
                            system,
                            load,
                            rate,
                            partitions=plan.partitions,
                            env=env,
                            timeout=plan.timeout,
                        )
                    )
            for system in timed:
                result = median_latency(runs[system])
                wait = fetch_wait or plan.env.get("STOCKFLOW_FETCH_MAX_WAIT_MS", 50)
                result.note = f"fetch wait {wait} ms"
                report.latency.append(result.as_dict())
        if index > 0:
            continue
        for fraction in plan.latency_fractions:  # stockflow alone at lighter loads
            light = max(maximum * fraction, 1.0)
            load = workload(
                kind, max(int(light * plan.latency_seconds), 50), plan.products, prefix="lat-"
            )
            result = latency_run(
                "stockflow",
                load,
                light,
                partitions=plan.partitions,
                env=plan.env,
                timeout=plan.timeout,
            )
            result.note = f"{fraction:.0%} of max"
            report.latency.append(result.as_dict())


def _hops(plan: Plan, report: Report) -> None:
    """The latency section's load (half stockflow's maximum on ``--workload``, spread by
    default), split hop by hop from the records' timestamps, for the pipe and stockflow
    (:mod:`bench.hops`). A multi-line order's chain has one topic more: the line answers its
    order desk waits for."""
    from bench.baseline_pipe import MIDDLE_TOPIC
    from bench.hops import hop_run

    kind = plan.workload
    rate = max(_maximum(plan, report, kind)[0] / 2, 1.0)
    count = max(int(rate * plan.latency_seconds), 50)
    # The bench's stockflow app id is "stockflow" (bench.stockflow_systems.stockflow_env).
    commands, replies = "stockflow-product-commands", "stockflow-order-replies"
    saga = workload(kind, count, plan.products).lines > 1
    chains: dict[str, tuple[tuple[str, ...], bytes | None]] = {
        "pipe": ((MIDDLE_TOPIC,), None),  # its outcome: the order's last line record
        "stockflow": ((commands, replies) if saga else (commands,), b'{"type":"Order'),
    }
    for system in ("pipe", "stockflow"):
        load = workload(kind, count, plan.products, prefix="hop-")
        middle, outcome = chains[system]
        report.hops.extend(
            hop_run(
                system,
                load,
                rate,
                middle_topics=middle,
                outcome_prefix=outcome,
                partitions=plan.partitions,
                env=_env_for(plan, system),
                timeout=plan.timeout,
            )
        )


def _checkout(plan: Plan, report: Report) -> None:
    from bench.checkout import checkout_runs

    rate = max(_spread_maximum(plan, report)[0] / 2, 1.0)  # the latency section's load
    rows = checkout_runs(
        rate=rate,
        count=max(int(rate * plan.latency_seconds), 50),
        in_flight=plan.in_flight,
        products=plan.products,
        partitions=plan.partitions,
        env=plan.env,
        timeout=plan.timeout,
    )
    report.checkout = [row.as_dict() for row in rows]


def _scaleout(plan: Plan, report: Report) -> None:
    """The same spread workload, on a fresh broker each, with 1 and with 2 workers."""
    for system, label in SCALEOUT_SYSTEMS:
        load = workload("spread", plan.orders, plan.products, prefix="scale-")
        result = median_run(
            plan.repeat,
            throughput_run,
            system,
            load,
            partitions=plan.partitions,
            env=plan.env,
            timeout=plan.timeout,
        )
        result.note = label
        report.scaleout.append(result.as_dict())


def _recovery(plan: Plan, report: Report) -> None:
    from bench.recovery import recovery_run

    report.recovery = recovery_run(
        plan.recovery_products,
        plan.partitions,
        timeout=max(plan.timeout, 900.0),
        runs=plan.recovery_runs,
        env=plan.env,
    ).as_dict()


def _core(plan: Plan, report: Report) -> None:
    results = run_core(plan.core_decisions, plan.products)
    if plan.core_compiled:
        compiled, why_not = run_core_compiled(plan.core_decisions, plan.products, ROUNDS)
        results += compiled
        if why_not:
            report.meta["core_compiled"] = why_not
            log.warning("core section: the compiled build was not measured: %s", why_not)
    report.core = [
        {
            "key": r.key,
            "name": r.name,
            "decisions": r.decisions,
            "seconds": r.seconds,
            "rate": r.rate,
            "rates": list(r.rates),
        }
        for r in results
    ]


def _knobs(plan: Plan, report: Report) -> None:
    # Interleaved (every knob once, then every knob again, the other way round: _knob_order):
    # a machine that gets busier or quieter during the section moves every knob's median
    # alike, not the last knob's only.
    runs: list[list[RunResult]] = [[] for _ in plan.knobs]
    pipes: list[RunResult] = []
    rate = plan.knob_rate
    for round_index in range(max(plan.repeat, 1)):
        if rate is not None:
            # The latency goal's reference at the same load, in every round: the hour moves
            # both alike.
            load = _knob_load(plan, rate)
            pipes.append(
                latency_run(
                    "pipe",
                    load,
                    rate,
                    partitions=plan.partitions,
                    env=_env_for(plan, "pipe"),
                    timeout=plan.timeout,
                )
            )
        for index in _knob_order(len(plan.knobs), round_index):
            env = {**plan.env, **plan.knobs[index]}
            partitions = int(env.pop("BENCH_PARTITIONS", plan.partitions))
            if rate is None:
                load = workload(plan.workload, plan.orders, plan.products, prefix="knob-")
                result = throughput_run(
                    "stockflow", load, partitions=partitions, env=env, timeout=plan.timeout
                )
            else:
                result = latency_run(
                    "stockflow",
                    _knob_load(plan, rate),
                    rate,
                    partitions=partitions,
                    env=env,
                    timeout=plan.timeout,
                )
            runs[index].append(result)
    pick = median_of if rate is None else median_latency
    for overrides, results in zip(plan.knobs, runs, strict=True):
        result = pick(results)
        result.note = " ".join(f"{k.removeprefix('STOCKFLOW_')}={v}" for k, v in overrides.items())
        result.note = result.note or "defaults"
        report.knobs.append(result.as_dict())
    if pipes:
        pipe = median_latency(pipes)
        pipe.note = "the pipe (reference)"
        report.knobs.append(pipe.as_dict())


def _knob_order(knobs: int, round_index: int) -> list[int]:
    """The order of the knobs' runs in round ``round_index``: as listed, then reversed, in
    turn. In a fixed order the first knob of a round always ran first (after a broker start,
    or after the pipe's run), and two A/Bs of one change could not tell that from the change:
    here every knob runs first as often as last."""
    order = list(range(knobs))
    return order if round_index % 2 == 0 else order[::-1]


def _knob_load(plan: Plan, rate: float) -> Workload:
    """The knobs' workload for a latency run at ``rate``: as long as the latency section's."""
    count = max(int(rate * plan.latency_seconds), 50)
    return workload(plan.workload, count, plan.products, prefix="knob-")


def _profile(plan: Plan, report: Report) -> None:
    from bench.profile import Profiler

    holder: dict[str, Profiler] = {}

    def attach(system: Any) -> Profiler:
        holder["profiler"] = Profiler(system.pid, rate=200)
        return holder["profiler"]

    load = workload(plan.workload, plan.orders, plan.products, prefix="prof-")
    run: dict[str, Any] = {"partitions": plan.partitions, "env": plan.env, "timeout": plan.timeout}
    if plan.profile_rate is None:
        result = throughput_run("stockflow", load, **run, during=attach)
    else:
        # Part load: where the time goes differs from the maximum (smaller batches, keys read
        # back after their writes were acknowledged; docs/benchmarks.md).
        result = offered_run("stockflow", load, plan.profile_rate, **run, during=attach)[0]
    profile = holder["profiler"].profile
    assert profile is not None
    report.profile = {
        **profile.as_dict(25),
        "orders": load.orders,
        "rate": result.rate,
        "offered": plan.profile_rate,
        "stacks": str(holder["profiler"].output),
    }


RUNNERS = {
    "throughput": _throughput,
    "latency": _latency,
    "scaleout": _scaleout,
    "recovery": _recovery,
    "core": _core,
    "knobs": _knobs,
    "profile": _profile,
    "checkout": _checkout,
    "hops": _hops,
}


def run(plan: Plan, command: str) -> Report:
    report = Report(meta={"command": command, **machine(), "plan": plan.__dict__})
    started = time.monotonic()
    sections = ["recovery" if s == "memory" else s for s in plan.sections]
    for section in dict.fromkeys(sections):
        log.info("section %s", section)
        RUNNERS[section](plan, report)
    report.meta["seconds"] = round(time.monotonic() - started, 1)
    report.goals = evaluate_goals(report)
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser(__doc__).parse_args(argv)
    plan = Plan.from_args(args)
    charts = _charts_target(args)
    require(plan.sections, plan.systems, charts=charts is not None)  # before anything starts
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
    )
    logging.getLogger("bench").setLevel(logging.INFO)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    command = "python -m bench " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    with stopping_children():
        report = run(plan, command)
    report.print()
    if args.json:
        report.write_json(args.json)
    if charts is not None:
        from bench.charts import write_charts

        for path in write_charts(report, *charts):
            print(f"chart: {path}")
    return 0


def _charts_target(args: argparse.Namespace) -> tuple[Path, str] | None:
    """``(directory, file prefix)`` of the charts: ``--charts DIR``, else beside ``--json``."""
    if args.no_charts:
        return None
    if args.charts is not None:
        return args.charts, ""
    if args.json is not None:
        return args.json.parent, f"{args.json.stem}-"
    return None


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
