"""One measured run of one system on one workload, on a fresh broker.

:func:`throughput_run` sends every order at once and times first order produced -> last outcome
consumed. :func:`latency_run` offers a fixed rate and measures each order's produce -> outcome
arrival, and keeps the latency distribution (:data:`CDF_POINTS` quantiles) for the CDF chart.
Both report the CPU the system's processes used, so a run bound by its own Python thread (~1 core)
is told apart from one starved by the noisy machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from bench.load import Workload, highwaters, run_load
from bench.procs import cpu_seconds, status_kib
from bench.systems import ORDERS, RESERVATIONS, SYSTEMS, System
from stockflow.testing.broker import EmbeddedBroker

T = TypeVar("T")

__all__ = [
    "CDF_POINTS",
    "RunResult",
    "latency_run",
    "median_run",
    "offered_run",
    "quantiles",
    "running",
    "throughput_run",
]

log = logging.getLogger("bench")

CHANGELOG_SETTLE = 0.5
"""Seconds after the last outcome before the changelogs are counted: a batch's changelog
writes and its outputs are sent together, not in a fixed order."""
CDF_POINTS: tuple[float, ...] = (
    *(i / 100 for i in range(100)),
    *(0.99 + i / 1000 for i in range(10)),
    0.9995,
    0.9999,
    1.0,
)
"""The quantiles a latency run keeps: every percent, every per mille of the top percent, and
the tail (enough to draw a CDF without keeping every order's latency in the JSON)."""


@dataclass
class RunResult:
    """One run. ``rate`` is orders/s; latencies are milliseconds."""

    system: str
    workload: str
    orders: int
    seconds: float = 0.0
    rate: float = 0.0
    complete: bool = False
    answered: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    correct: bool | None = None
    cpu_cores: float | None = None
    cpu_ms_per_order: float | None = None
    broker_cpu_ms_per_order: float | None = None
    """CPU the broker spent per order in the same run: a system that produces more records per
    order costs the shared machine more than its own CPU says."""
    runs: list[float] = field(default_factory=list)
    rss_mb: float | None = None
    offered: float | None = None
    sent_rate: float | None = None
    """Orders/s the load generator actually sent (below ``offered`` if it could not keep up)."""
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    p50_first_ms: float | None = None
    """p50 of the orders sent in the first fifth of a latency run; with :attr:`p50_last_ms`, how
    far the latency climbed while the broker's log grew (on tansu every fetch lists each stored
    record batch of the partitions it reads: docs/benchmarks.md, "The broker's log length")."""
    p50_last_ms: float | None = None
    """p50 of the orders sent in the last fifth of a latency run."""
    changelog_per_order: float | None = None
    """Changelog records written per order during the timed run (systems that name their
    changelogs: stockflow)."""
    cdf: list[tuple[float, float]] = field(default_factory=list)
    """``(quantile, ms)`` pairs at :data:`CDF_POINTS` (latency runs only)."""
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def running(
    name: str, partitions: int, env: Mapping[str, str] | None, timeout: float
) -> Iterator[tuple[EmbeddedBroker, System]]:
    """A fresh broker with ``name``'s system started on it; both stopped by PID on exit."""
    with EmbeddedBroker() as broker:
        system = SYSTEMS[name](broker, partitions, env=env)
        try:
            system.start(timeout)
            yield broker, system
        except Exception:
            log.error("%s failed; its log ends with:\n%s", name, system.log_tail())
            raise
        finally:
            system.stop()


def _check(system: System, load: Workload, statuses: Mapping[str, int]) -> bool | None:
    """Reserved orders must equal what stock allows (the pipe and the Faust floor keep no
    stock: unchecked)."""
    if system.name in ("pipe", "faust", "faust+6w"):
        return None
    return statuses.get("reserved", 0) == load.expected_reserved


def _measure(
    system: System, load: Workload, timeout: float, rate: float | None, linger_ms: int
) -> tuple[RunResult, dict[bytes, float], dict[str, float]]:
    result = RunResult(system.name, load.kind, load.orders)
    pids = system.pids
    writes_before = _changelog_records(system)
    cpu_before = _cpu(pids)
    broker_pids = [] if system.broker.process is None else [system.broker.process.pid]
    broker_before = _cpu(broker_pids)
    wall_before = time.monotonic()
    sent, tally = asyncio.run(
        system.watched(
            run_load(
                system.broker.bootstrap,
                ORDERS,
                RESERVATIONS,
                load.order_records(),
                load.prefix,
                system.matcher,
                parts=system.parts(load),
                timeout=timeout,
                rate=rate,
                linger_ms=linger_ms,
            )
        )
    )
    cpu_after = _cpu(pids)
    broker_after = _cpu(broker_pids)
    if broker_before is not None and broker_after is not None:
        result.broker_cpu_ms_per_order = (broker_after - broker_before) * 1000 / max(load.orders, 1)
    if cpu_before is not None and cpu_after is not None:
        result.cpu_cores = (cpu_after - cpu_before) / max(time.monotonic() - wall_before, 1e-9)
        # CPU per order is steadier than orders/s on a shared machine: a starved run is slower
        # but does not cost more CPU per order.
        result.cpu_ms_per_order = (cpu_after - cpu_before) * 1000 / max(load.orders, 1)
    rss = [kib for kib in (status_kib(pid) for pid in pids) if kib is not None]
    result.rss_mb = max(rss) / 1024 if rss else None
    result.complete = tally.done
    result.answered = len(tally.arrived)
    result.statuses = dict(tally.statuses)
    result.correct = _check(system, load, tally.statuses) if tally.done else False
    writes_after = _changelog_records(system, settle=CHANGELOG_SETTLE)
    if writes_before is not None and writes_after is not None and tally.done:
        result.changelog_per_order = (writes_after - writes_before) / max(load.orders, 1)
    if tally.arrived:
        result.seconds = max(tally.arrived.values()) - min(sent.values())
        result.rate = len(tally.arrived) / result.seconds if result.seconds > 0 else 0.0
    return result, sent, tally.arrived


def _changelog_records(system: System, settle: float = 0.0) -> int | None:
    """Records in the system's changelogs (``None`` if it names none), after ``settle`` s."""
    topics = system.changelog_topics()
    if not topics:
        return None
    time.sleep(settle)

    async def count() -> int:
        return sum([sum((await highwaters(system.broker.bootstrap, t)).values()) for t in topics])

    return asyncio.run(count())


def _cpu(pids: list[int]) -> float | None:
    """CPU seconds used by all of ``pids`` (``None`` if one cannot be read)."""
    readings = [cpu_seconds(pid) for pid in pids]
    if not readings or any(r is None for r in readings):
        return None
    return sum(r for r in readings if r is not None)


def throughput_run(
    name: str,
    load: Workload,
    *,
    partitions: int,
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
    during: Callable[[System], Any] | None = None,
) -> RunResult:
    """All orders at once; orders/s from the first produced to the last outcome consumed.
    ``during(system)`` is called before the load starts and its result's ``stop()`` after (a
    profiler, for instance)."""
    with running(name, partitions, env, timeout) as (_broker, system):
        asyncio.run(system.warm(load, timeout))
        probe = during(system) if during is not None else None
        try:
            result, _sent, _arrived = _measure(system, load, timeout, None, 5)
        finally:
            if probe is not None:
                probe.stop()
    log.info("throughput %s/%s: %.0f orders/s", name, load.kind, result.rate)
    return result


def median_run(repeat: int, run: Callable[..., RunResult], *args: Any, **kwargs: Any) -> RunResult:
    """``run(*args, **kwargs)`` ``repeat`` times; the median-rate run, every rate in ``runs``."""
    return median_of([run(*args, **kwargs) for _ in range(max(repeat, 1))])


def median_of(results: list[RunResult]) -> RunResult:
    """The median-rate run of ``results``, every rate in its ``runs``."""
    ordered = sorted(results, key=lambda r: r.rate)
    chosen = ordered[(len(ordered) - 1) // 2]
    chosen.runs = [round(r.rate, 1) for r in results]
    return chosen


def median_latency(results: list[RunResult]) -> RunResult:
    """The run of ``results`` with the median p50, every run's p50 in its ``runs`` (runs that
    measured none count as the slowest)."""
    ordered = sorted(results, key=lambda r: math.inf if r.p50_ms is None else r.p50_ms)
    chosen = ordered[(len(ordered) - 1) // 2]
    chosen.runs = [round(r.p50_ms, 1) for r in results if r.p50_ms is not None]
    return chosen


def _fifths(timed: list[tuple[float, float]]) -> tuple[float, float]:
    """The p50 of the first and of the last fifth of ``(sent at, latency)`` pairs, by send time
    (sorted by it)."""
    fifth = max(len(timed) // 5, 1)
    first = statistics.median(ms for _at, ms in timed[:fifth])
    last = statistics.median(ms for _at, ms in timed[-fifth:])
    return first, last


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def quantiles(
    values: list[float], points: tuple[float, ...] = CDF_POINTS
) -> list[tuple[float, float]]:
    """``(q, value)`` at each of ``points`` (nearest rank); empty for no values."""
    if not values:
        return []
    ordered = sorted(values)
    last = len(ordered) - 1
    return [(q, ordered[min(last, max(0, round(q * last)))]) for q in points]


def offered_run(
    name: str,
    load: Workload,
    rate: float,
    *,
    partitions: int,
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
    read_back: Callable[[EmbeddedBroker], T] | None = None,
    during: Callable[[System], Any] | None = None,
) -> tuple[RunResult, dict[bytes, float], dict[str, float], T | None]:
    """``load`` offered at ``rate`` orders/s to ``name`` on a fresh broker: the result, each
    order's send and arrival time, and what ``read_back(broker)`` returns before the broker
    stops. ``during`` as for :func:`throughput_run`."""
    with running(name, partitions, env, timeout) as (broker, system):
        asyncio.run(system.warm(load, timeout))
        probe = during(system) if during is not None else None
        try:
            result, sent, arrived = _measure(system, load, timeout + load.orders / rate, rate, 1)
        finally:
            if probe is not None:
                probe.stop()
        extra = read_back(broker) if read_back is not None else None
    return result, sent, arrived, extra


def latency_run(
    name: str,
    load: Workload,
    rate: float,
    *,
    partitions: int,
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
) -> RunResult:
    """``load.orders`` offered at ``rate`` orders/s; latency of each from its send to its
    outcome's arrival at the harness consumer."""
    result, sent, arrived, _ = offered_run(
        name, load, rate, partitions=partitions, env=env, timeout=timeout
    )
    result.offered = rate
    if len(sent) > 1:
        span = max(sent.values()) - min(sent.values())
        result.sent_rate = (len(sent) - 1) / span if span > 0 else None
    timed = sorted(
        (at, (arrived[key.decode()] - at) * 1000)
        for key, at in sent.items()
        if key.decode() in arrived
    )
    latencies = [ms for _at, ms in timed]
    if latencies:
        result.p50_ms = statistics.median(latencies)
        result.p50_first_ms, result.p50_last_ms = _fifths(timed)
        result.p99_ms = _percentile(latencies, 0.99)
        result.max_ms = max(latencies)
        result.cdf = [(q, round(ms, 3)) for q, ms in quantiles(latencies)]
    log.info("latency %s at %.0f/s: p50 %s ms p99 %s ms", name, rate, result.p50_ms, result.p99_ms)
    return result
