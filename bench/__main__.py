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
import datetime
import logging
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
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
from bench.preflight import require
from bench.procs import stopping_children
from bench.report import Report
from bench.rows import KINDS
from bench.systems import SYSTEMS

__all__ = ["Plan", "main", "run"]

SECTIONS = (
    "throughput",
    "latency",
    "scaleout",
    "recovery",
    "memory",
    "core",
    "knobs",
    "profile",
    "checkout",
    "hops",
)
DEFAULT_SECTIONS = ("throughput", "latency", "recovery", "core")
DEFAULT_WORKLOADS = ("spread", "hot", "multi")
"""The throughput section's workloads unless ``--workloads`` says otherwise: issue 11's three."""
SYSTEM_NAMES = ("pipe", "quix", "faust", "faust+6w", "stockflow", "stockflow-stream")
QUICK_SYSTEMS = ("pipe", "quix", "stockflow")
LATENCY_VARIANT_SYSTEMS = ("pipe", "stockflow")
"""Only these are also timed at the second fetch wait."""
SCALEOUT_SYSTEMS = (("stockflow", "1 worker"), ("stockflow-2w", "2 workers"))
KNOBS: tuple[dict[str, str], ...] = (
    {},
    {"STOCKFLOW_PRODUCER_LINGER_MS": "20"},
    {"STOCKFLOW_PRODUCER_LINGER_MS": "0"},
    {"STOCKFLOW_COMMIT_INTERVAL": "2.0"},
    {"STOCKFLOW_FETCH_MAX_WAIT_MS": "10"},
    {"STOCKFLOW_FETCH_MAX_WAIT_MS": "200"},
    {"STOCKFLOW_GC_THRESHOLD": "0"},  # Python's own collector: the A/B of stockflow.garbage
    {"STOCKFLOW_GC_THRESHOLD": "200000"},
    {"BENCH_PARTITIONS": "1"},
    {"BENCH_PARTITIONS": "8"},
    # Experiments through bench.variants: the same worker with one change.
    {"BENCH_FAUST_KWARGS": '{"producer_threaded": true}'},
    {"BENCH_SEND_SOON": "1"},
)
"""Worker settings tried one at a time on the spread workload (``BENCH_PARTITIONS``: the
partition count of every topic; other ``BENCH_*``: see :mod:`bench.variants`)."""

log = logging.getLogger("bench")


@dataclass(frozen=True)
class Plan:
    """What to run, and how big. ``fast_factor``: the pipe and the peer get this many times
    more orders, so that their runs last long enough to time."""

    sections: tuple[str, ...]
    systems: tuple[str, ...]
    orders: int
    products: int
    fast_factor: int
    latency_seconds: float
    latency_fetch_waits: tuple[int | None, ...]
    latency_fractions: tuple[float, ...]
    recovery_products: int
    recovery_runs: tuple[str, ...] | None
    core_decisions: int
    core_compiled: bool
    """Whether the core section measures the compiled build too (bench.compiled)."""
    partitions: int
    in_flight: int
    repeat: int
    env: dict[str, str]
    timeout: float
    knobs: tuple[dict[str, str], ...] = KNOBS
    workload: str = "spread"
    workloads: tuple[str, ...] = DEFAULT_WORKLOADS
    profile_rate: float | None = None
    """The profile section's offered orders/s; ``None``: its maximum (a throughput run)."""
    knob_rate: float | None = None
    """The knobs section's offered orders/s: each knob's latency at that load, beside the
    pipe's in the same round; ``None``: each knob's throughput."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        sections = tuple(args.only.split(",")) if args.only else DEFAULT_SECTIONS
        if args.profile and "profile" not in sections:
            sections = (*sections, "profile")
        unknown = set(sections) - set(SECTIONS)
        if unknown:
            raise SystemExit(f"unknown sections: {', '.join(sorted(unknown))}")
        quick = args.quick
        unknown_systems = set(args.systems.split(",")) - set(SYSTEMS) if args.systems else set()
        if unknown_systems:
            raise SystemExit(f"unknown systems: {', '.join(sorted(unknown_systems))}")
        env = dict(item.split("=", 1) for item in args.env)
        return cls(
            sections=sections,
            systems=tuple(args.systems.split(","))
            if args.systems
            else (QUICK_SYSTEMS if quick else SYSTEM_NAMES),
            orders=args.orders or (1_000 if quick else 10_000),
            products=args.products or (1_000 if quick else 10_000),
            fast_factor=args.fast_factor or (5 if quick else 10),
            latency_seconds=3.0 if quick else 20.0,
            latency_fetch_waits=(None,) if quick else (None, 10),
            latency_fractions=() if quick else (0.125, 0.25),
            recovery_products=max(int((2_000 if quick else 1_000_000) * args.scale), 10),
            recovery_runs=tuple(args.recovery_runs.split(",")) if args.recovery_runs else None,
            core_decisions=20_000 if quick else 200_000,
            core_compiled=not (quick or args.no_compiled),
            partitions=args.partitions,
            in_flight=args.in_flight,
            repeat=args.repeat,
            env=env,
            timeout=args.timeout,
            knobs=({}, *(_knob(text) for text in args.knob)) if args.knob else KNOBS,
            workload=args.workload,
            workloads=_workloads(args.workloads),
            profile_rate=args.profile_rate,
            knob_rate=args.knob_rate,
        )


def _workloads(text: str) -> tuple[str, ...]:
    chosen = tuple(text.split(","))
    unknown = set(chosen) - set(KINDS)
    if unknown:
        raise SystemExit(f"unknown workloads: {', '.join(sorted(unknown))}")
    return chosen


def _knob(text: str) -> dict[str, str]:
    """``K=V;K2=V2`` as the environment of one knob run."""
    return dict(item.split("=", 1) for item in text.split(";") if item)


def _machine() -> dict[str, Any]:
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    free = run("free", "-g").splitlines()
    return {
        "commit": _measured_commit(run) + _build_label(),
        "nproc": run("nproc"),
        "memory": " ".join(free[1].split()[:2]) + " GiB" if len(free) > 1 else "?",
        "free_g": free,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _build_label() -> str:
    """`` (compiled)`` when the stockflow measured is the compiled build (setup.py,
    ``STOCKFLOW_COMPILE=1``), imported ahead of the editable install through PYTHONPATH."""
    from importlib.machinery import EXTENSION_SUFFIXES

    import stockflow.core.stock

    compiled = str(stockflow.core.stock.__file__).endswith(tuple(EXTENSION_SUFFIXES))
    return " (compiled)" if compiled else ""


def _measured_commit(run: Any) -> str:
    """The stockflow code measured: the work tree's commit (``+dirty src`` if ``src/`` has
    uncommitted changes). When stockflow is imported from outside this tree: a snapshot's
    (``PYTHONPATH=SNAPSHOT/src`` with its commit in ``SNAPSHOT/COMMIT``, e.g. from ``git
    archive HEAD src``), or else the checkout it is imported from (a bench started in another
    worktree imports the virtualenv's editable install), by its own git."""
    import stockflow

    package = Path(stockflow.__file__).resolve().parent
    if Path("src").resolve() in package.parents:
        dirty = run("git", "status", "--porcelain", "--", "src")
        return str(run("git", "rev-parse", "--short", "HEAD")) + ("+dirty src" if dirty else "")
    root = package.parent.parent
    marker = root / "COMMIT"
    if marker.exists():
        return f"{marker.read_text().strip()} (snapshot {root})"
    commit = run("git", "-C", str(root), "rev-parse", "--short", "HEAD") or "?"
    dirty = run("git", "-C", str(root), "status", "--porcelain", "--", "src")
    return f"{commit}{'+dirty src' if dirty else ''} (imported from {root})"


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
    maximum = report.rate("stockflow", "spread")
    basis = "throughput section"
    if maximum is None:
        basis = "probe run"
        probe = throughput_run(
            "stockflow",
            workload("spread", plan.orders, plan.products),
            partitions=plan.partitions,
            env=plan.env,
            timeout=plan.timeout,
        )
        maximum = probe.rate
    return maximum, basis


def _latency(plan: Plan, report: Report) -> None:
    """Every system at the same offered load, half stockflow's own spread maximum (from the
    throughput section of this run, or a probe run). The pipe always runs when stockflow does:
    the latency goals are ratios to the pipe at that load."""
    maximum, basis = _spread_maximum(plan, report)
    rate = max(maximum / 2, 1.0)
    report.meta["latency_load"] = {"stockflow_max": maximum, "offered": rate, "from": basis}
    count = max(int(rate * plan.latency_seconds), 50)
    systems = plan.systems
    if "stockflow" in systems and "pipe" not in systems:
        systems = ("pipe", *systems)
    for fetch_wait in plan.latency_fetch_waits:
        for system in systems:
            if fetch_wait is not None and system not in LATENCY_VARIANT_SYSTEMS:
                continue
            env = _env_for(plan, system)
            if fetch_wait is not None:
                env = {**env, "STOCKFLOW_FETCH_MAX_WAIT_MS": str(fetch_wait)}
            load = workload("spread", count, plan.products, prefix="lat-")
            result = latency_run(
                system, load, rate, partitions=plan.partitions, env=env, timeout=plan.timeout
            )
            result.note = f"fetch wait {env.get('STOCKFLOW_FETCH_MAX_WAIT_MS', 50)} ms"
            report.latency.append(result.as_dict())
    for fraction in plan.latency_fractions:  # stockflow alone at lighter loads
        light = max(maximum * fraction, 1.0)
        load = workload(
            "spread", max(int(light * plan.latency_seconds), 50), plan.products, prefix="lat-"
        )
        result = latency_run(
            "stockflow", load, light, partitions=plan.partitions, env=plan.env, timeout=plan.timeout
        )
        result.note = f"{fraction:.0%} of max"
        report.latency.append(result.as_dict())


def _hops(plan: Plan, report: Report) -> None:
    """The latency section's load (half stockflow's spread maximum), split hop by hop from the
    records' timestamps, for the pipe and stockflow (:mod:`bench.hops`)."""
    from bench.baseline_pipe import MIDDLE_TOPIC
    from bench.hops import hop_run

    rate = max(_spread_maximum(plan, report)[0] / 2, 1.0)
    count = max(int(rate * plan.latency_seconds), 50)
    # The bench's stockflow app id is "stockflow" (bench.stockflow_systems.stockflow_env).
    middle = {"pipe": MIDDLE_TOPIC, "stockflow": "stockflow-product-commands"}
    for system in ("pipe", "stockflow"):
        load = workload("spread", count, plan.products, prefix="hop-")
        report.hops.extend(
            hop_run(
                system,
                load,
                rate,
                middle_topic=middle[system],
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
    report = Report(meta={"command": command, **_machine(), "plan": plan.__dict__})
    started = time.monotonic()
    sections = ["recovery" if s == "memory" else s for s in plan.sections]
    for section in dict.fromkeys(sections):
        log.info("section %s", section)
        RUNNERS[section](plan, report)
    report.meta["seconds"] = round(time.monotonic() - started, 1)
    report.goals = evaluate_goals(report)
    return report


def plan_of(argv: list[str]) -> Plan:
    """The plan ``argv`` asks for (what :func:`main` runs)."""
    return Plan.from_args(_parser().parse_args(argv))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small counts, < 2 minutes")
    parser.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument(
        "--systems",
        help=f"comma-separated: {', '.join(SYSTEM_NAMES)} (default; quick: fewer), "
        "stockflow-2w (two workers)",
    )
    parser.add_argument("--orders", type=int, help="stockflow orders per throughput run")
    parser.add_argument("--products", type=int, help="products of the spread workload")
    parser.add_argument(
        "--fast-factor",
        type=int,
        help="the pipe and the peer get this many times stockflow's orders (10; 5 with --quick): "
        "runs of similar length, so that start-up and the last outcome's wait weigh alike",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="recovery/memory products = 1,000,000 x scale (quick: 2,000 x)",
    )
    parser.add_argument(
        "--recovery-runs",
        metavar="TAGS",
        help="subset of cold,replacement,restart,memory (default: all)",
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--in-flight", type=int, default=1000, help="checkout: calls started at once (1,000)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="throughput and knob runs: the median of this many"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="STOCKFLOW_X=V",
        help="worker setting for every stockflow run (repeatable)",
    )
    parser.add_argument(
        "--knob",
        action="append",
        default=[],
        metavar="K=V[;K=V]",
        help="knobs section: compare the defaults with these environments only (repeatable); "
        "PYTHONPATH=<tree>/src runs another checkout's stockflow: a same-run A/B of a change",
    )
    parser.add_argument(
        "--workload",
        default="spread",
        choices=KINDS,
        help="the workload of the knobs and profile sections (spread)",
    )
    parser.add_argument(
        "--workloads",
        default=",".join(DEFAULT_WORKLOADS),
        help=f"the throughput section's workloads, comma-separated, of {', '.join(KINDS)} "
        f"(default {','.join(DEFAULT_WORKLOADS)}; zipf: skewed demand, popular products sell out)",
    )
    parser.add_argument("--profile", action="store_true", help="add a py-spy profile section")
    parser.add_argument(
        "--no-compiled",
        action="store_true",
        help="core section: the pure build only (by default it also builds the compiled one, "
        "STOCKFLOW_COMPILE=1, ~40 s, and measures it in the same run; not with --quick)",
    )
    parser.add_argument(
        "--profile-rate",
        type=float,
        metavar="ORDERS_PER_S",
        help="profile section: offer this load instead of running at the maximum",
    )
    parser.add_argument(
        "--knob-rate",
        type=float,
        metavar="ORDERS_PER_S",
        help="knobs section: each knob's latency at this offered load, the pipe's beside it in "
        "every round, instead of each knob's throughput",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="bound of every wait (s)")
    parser.add_argument(
        "--json", type=Path, help="also write the results here, and the charts beside them"
    )
    parser.add_argument("--charts", type=Path, metavar="DIR", help="write the PNG charts here")
    parser.add_argument("--no-charts", action="store_true", help="no charts, even with --json")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
