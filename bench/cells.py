"""Cells of the bench's tables: numbers and ratios as text."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["fifths_cell", "num", "others", "pct", "ratio", "rounds_cell", "runs"]


def ratio(value: float | None, base: float | None) -> str:
    if value is None or not base or math.isnan(value) or math.isnan(base):
        return "-"
    return f"{value / base:.3f}x"


def num(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def fifths_cell(row: dict[str, Any]) -> str:
    # .get: reports written before the field existed have neither.
    first, last = row.get("p50_first_ms"), row.get("p50_last_ms")
    if first is None or last is None:
        return "-"
    return f"{num(first)} / {num(last)}"


def others(statuses: dict[str, int]) -> str:
    """Outcomes other than reserved, e.g. ``insufficient_stock 9,000``."""
    others = [(k.removeprefix("rejected: "), n) for k, n in statuses.items() if k != "reserved"]
    return ", ".join(f"{k} {n:,}" for k, n in others if k != "moved")


def runs(row: dict[str, Any]) -> str:
    """Every run's orders/s when the figure is a median of several."""
    runs = row.get("runs") or []
    return " ".join(f"{r:,.0f}" for r in runs) if len(runs) > 1 else ""


def rounds_cell(row: dict[str, Any]) -> str:
    """Every round's p50 (ms) when a latency row is the median of several."""
    runs = row.get("runs") or []
    return " / ".join(f"{r:.1f}" for r in runs) if len(runs) > 1 else ""


def pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"
