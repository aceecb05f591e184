"""The results of one ``python -m bench`` run: rich tables and JSON (the goals are evaluated in
:mod:`bench.goals`, the charts drawn by :mod:`bench.charts`; what both read off a row is in
:mod:`bench.rows`).

Every figure is shown next to the baseline measured in the same run (the machine is shared and
noisy: only ratios carry over between runs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.tables import ReportTables

__all__ = ["Report"]


@dataclass
class Report(ReportTables):
    meta: dict[str, Any] = field(default_factory=dict)
    core: list[dict[str, Any]] = field(default_factory=list)
    throughput: list[dict[str, Any]] = field(default_factory=list)
    latency: list[dict[str, Any]] = field(default_factory=list)
    scaleout: list[dict[str, Any]] = field(default_factory=list)
    recovery: dict[str, Any] | None = None
    knobs: list[dict[str, Any]] = field(default_factory=list)
    profile: dict[str, Any] | None = None
    checkout: list[dict[str, Any]] = field(default_factory=list)
    hops: list[dict[str, Any]] = field(default_factory=list)
    goals: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "core": self.core,
            "throughput": self.throughput,
            "latency": self.latency,
            "scaleout": self.scaleout,
            "recovery": self.recovery,
            "knobs": self.knobs,
            "profile": self.profile,
            "checkout": self.checkout,
            "hops": self.hops,
            "goals": self.goals,
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_dict(), indent=2, default=str) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """A report read back from its JSON (e.g. to redraw the charts)."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})

    def row(self, system: str, kind: str) -> dict[str, Any] | None:
        """``system``'s complete throughput run on ``kind``, if any."""
        for row in self.throughput:
            if row["system"] == system and row["workload"] == kind and row["complete"]:
                return row
        return None

    def rate(self, system: str, kind: str) -> float | None:
        row = self.row(system, kind)
        return None if row is None else float(row["rate"])

    def cpu(self, system: str, kind: str) -> float | None:
        """CPU ms per order of ``system``'s complete run on ``kind``."""
        row = self.row(system, kind)
        value = None if row is None else row.get("cpu_ms_per_order")
        return None if value is None else float(value)

    # --- printing ------------------------------------------------------------------------------

    def print(self, console: Console | None = None) -> None:
        console = console or Console(width=160)
        meta = self.meta
        console.print(f"[bold]stockflow bench[/]  {meta.get('command', '')}")
        console.print(
            f"machine: nproc={meta.get('nproc')}  {meta.get('memory', '')}  "
            f"commit {meta.get('commit', '?')}  took {meta.get('seconds', '?')} s"
        )
        for table in (
            self._throughput_table(),
            self._latency_table(),
            self._checkout_table(),
            self._hops_table(),
            self._scaleout_table(),
            self._recovery_table(),
            self._memory_table(),
            self._core_table(),
            self._knobs_table(),
            self._profile_table(),
            self._goals_table(),
        ):
            if table is not None:
                console.print(table)
