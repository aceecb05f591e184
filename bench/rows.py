"""What both the report's tables and the goals read off a run's rows: the workloads, and the
figures derived from a row (the pipe's run at the same load, a restore's seconds, the RSS at
1,000,000 products). Their own module, so that :mod:`bench.report` and :mod:`bench.goals` do
not import each other."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["KINDS", "ONE_MILLION", "pipe_row", "restore_seconds", "rss_at_million"]

KINDS = ("spread", "hot", "multi", "zipf")
"""The workloads, in the order of the tables; the throughput goals apply to each one a run
measured (the default run measures the first three, ``--workloads`` chooses)."""
ONE_MILLION = 1_000_000
EXTRAPOLATE_FROM = 100_000
"""Fewer products than this: RocksDB's fixed costs dominate the RSS; no extrapolation."""


def rss_at_million(rec: dict[str, Any]) -> float | None:
    empty, used, n = rec["rss_empty_mb"], rec["rss_rocksdb_mb"], rec["products"]
    if n >= ONE_MILLION:
        return float(used)
    if n < EXTRAPOLATE_FROM or not used:
        return None
    return float(empty + (used - empty) * ONE_MILLION / n)


def pipe_row(rows: list[dict[str, Any]], row: dict[str, Any]) -> dict[str, Any] | None:
    """The pipe's latency run at ``row``'s workload, offered load and settings (``None`` if
    there is no such run: a ratio to a pipe at another load would mean nothing)."""
    for other in rows:
        if (
            other["system"] == "pipe"
            and other["note"] == row["note"]
            and other.get("workload", "spread") == row.get("workload", "spread")
            and other["offered"] is not None
            and row["offered"] is not None
            and math.isclose(other["offered"], row["offered"], rel_tol=1e-6)
        ):
            return other
    return None


def restore_seconds(phases: dict[str, float]) -> float | None:
    if "ready" in phases and "assigned" in phases:
        return phases["ready"] - phases["assigned"]
    return None
