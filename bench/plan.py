"""What a ``python -m bench`` run measures, read from its command line: the sections, the
systems, the counts and the knobs (:class:`Plan`, :func:`plan_of`)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from bench.rows import KINDS
from bench.systems import SYSTEMS

__all__ = ["DEFAULT_WORKLOADS", "KNOBS", "SECTIONS", "Plan", "build_parser", "plan_of"]

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


def plan_of(argv: list[str]) -> Plan:
    """The plan ``argv`` asks for (what :func:`main` runs)."""
    return Plan.from_args(build_parser().parse_args(argv))


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The command line of ``python -m bench`` (``description``: its ``--help`` text)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=description,
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
        "--repeat",
        type=int,
        default=1,
        help=(
            "throughput, latency and knob runs: the median of this many "
            "(latency: rounds interleaved)"
        ),
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
        "as pip install . does, ~40 s, and measures it in the same run; not with --quick)",
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
