"""The results of one ``python -m bench`` run: rich tables and JSON (the goals are evaluated in
:mod:`bench.goals`, the charts drawn by :mod:`bench.charts`; what both read off a row is in
:mod:`bench.rows`).

Every figure is shown next to the baseline measured in the same run (the machine is shared and
noisy: only ratios carry over between runs).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.rows import ONE_MILLION, pipe_row, restore_seconds, rss_at_million

__all__ = ["Report"]

RECOVERY_LABELS = (
    ("cold", "cold start, empty datadir"),
    ("replacement", "SIGKILL -> replacement, new datadir"),
    ("restart", "SIGKILL -> restart, same datadir"),
    ("memory", "stop -> memory:// worker"),
)


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base or math.isnan(value) or math.isnan(base):
        return "-"
    return f"{value / base:.3f}x"


def _num(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _fifths_cell(row: dict[str, Any]) -> str:
    # .get: reports written before the field existed have neither.
    first, last = row.get("p50_first_ms"), row.get("p50_last_ms")
    if first is None or last is None:
        return "-"
    return f"{_num(first)} / {_num(last)}"


@dataclass
class Report:
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

    def _throughput_table(self) -> Table | None:
        if not self.throughput:
            return None
        table = Table(title="Throughput: orders/s, first order produced -> last outcome consumed")
        for col in (
            "workload",
            "system",
            "orders",
            "orders/s",
            "vs pipe",
            "vs quix",
            "cpu cores",
            "cpu ms/order",
            "broker ms/order",
            "writes/order",
            "runs",
            "reserved",
            "not reserved",
            "correct",
        ):
            table.add_column(col, justify="left" if col in ("workload", "system") else "right")
        for row in self.throughput:
            kind = row["workload"]
            table.add_row(
                kind,
                row["system"],
                _num(row["orders"]),
                _num(row["rate"]) if row["complete"] else f"incomplete ({row['answered']})",
                _ratio(row["rate"], self.rate("pipe", kind)),
                _ratio(row["rate"], self.rate("quix", kind)),
                _num(row["cpu_cores"], 2),
                _num(row["cpu_ms_per_order"], 3),
                _num(row.get("broker_cpu_ms_per_order"), 3),
                _num(row.get("changelog_per_order"), 2),
                _runs(row),
                _num(row["statuses"].get("reserved")),
                _others(row["statuses"]),
                str(row["correct"]),
            )
        return table

    def _latency_table(self) -> Table | None:
        if not self.latency:
            return None
        load = self.meta.get("latency_load") or {}
        basis = (
            f": {load['stockflow_max']:,.0f}/s from the {load['from']}"
            if load.get("stockflow_max")
            else ""
        )
        table = Table(
            title="Latency at a fixed offered load, the same for every system "
            f"(half stockflow's maximum on each workload; spread{basis})"
        )
        for col in (
            "system",
            "workload",
            "settings",
            "offered/s",
            "sent/s",
            "orders",
            "p50 ms",
            "p99 ms",
            "max ms",
            "p50 vs pipe",
            "p99 vs pipe",
            "p50 first/last fifth",
            "cpu cores",
        ):
            table.add_column(
                col, justify="left" if col in ("system", "workload", "settings") else "right"
            )
        for row in self.latency:
            pipe = pipe_row(self.latency, row)
            table.add_row(
                row["system"],
                row.get("workload", "spread"),
                row["note"],
                _num(row["offered"]),
                _num(row.get("sent_rate")),
                _num(row["answered"]),
                _num(row["p50_ms"], 1),
                _num(row["p99_ms"], 1),
                _num(row["max_ms"], 1),
                _ratio(row["p50_ms"], pipe["p50_ms"] if pipe else None),
                _ratio(row["p99_ms"], pipe["p99_ms"] if pipe else None),
                _fifths_cell(row),
                _num(row["cpu_cores"], 2),
            )
        return table

    def _hops_table(self) -> Table | None:
        if not self.hops:
            return None
        offered, kind = self.hops[0].get("offered"), self.hops[0].get("workload", "spread")
        title = f"Latency hop by hop, {kind}, at {_num(offered)} orders/s (record timestamps)"
        table = Table(title=title)
        for col in ("system", "hop", "orders", "p50 ms", "mean ms", "p90 ms", "cpu cores"):
            table.add_column(col, justify="left" if col in ("system", "hop") else "right")
        for row in self.hops:
            table.add_row(
                row["system"],
                row["hop"],
                _num(row["orders"]),
                _num(row["p50_ms"], 1),
                _num(row["mean_ms"], 1),
                _num(row["p90_ms"], 1),
                _num(row.get("cpu_cores"), 2),
            )
        return table

    def _checkout_table(self) -> Table | None:
        if not self.checkout:
            return None
        table = Table(title="Checkout round trip: place() and POST /orders (one worker)")
        for col in ("call", "offered/s", "orders", "answered", "p50 ms", "p99 ms", "max ms"):
            table.add_column(col, justify="left" if col == "call" else "right")
        table.add_column("p50 vs pipe", justify="right")
        table.add_column("p99 vs pipe", justify="right")
        pipe = next((r for r in self.checkout if r["system"] == "pipe"), None)
        for row in self.checkout:
            table.add_row(
                row["note"],
                _num(row["offered"]) if row["offered"] else "all at once",
                _num(row["orders"]),
                _num(row["answered"]),
                _num(row["p50_ms"], 1),
                _num(row["p99_ms"], 1),
                _num(row["max_ms"], 1),
                _ratio(row["p50_ms"], pipe["p50_ms"] if pipe else None),
                _ratio(row["p99_ms"], pipe["p99_ms"] if pipe else None),
            )
        return table

    def _scaleout_table(self) -> Table | None:
        if not self.scaleout:
            return None
        table = Table(
            title="Scale-out: stockflow workers in one group, same broker, spread workload"
        )
        for col in (
            "workers",
            "system",
            "orders",
            "orders/s",
            "vs 1 worker",
            "cpu cores",
            "cpu ms/order",
            "cpu/order vs 1 worker",
            "runs",
            "correct",
        ):
            table.add_column(col, justify="left" if col in ("workers", "system") else "right")
        one = self.scaleout[0]
        for row in self.scaleout:
            table.add_row(
                row["note"],
                row["system"],
                _num(row["orders"]),
                _num(row["rate"]) if row["complete"] else f"incomplete ({row['answered']})",
                _ratio(row["rate"], one["rate"]),
                _num(row["cpu_cores"], 2),
                _num(row["cpu_ms_per_order"], 3),
                _ratio(row["cpu_ms_per_order"], one["cpu_ms_per_order"]),
                _runs(row),
                str(row["correct"]),
            )
        return table

    def _recovery_table(self) -> Table | None:
        rec = self.recovery
        if not rec:
            return None
        n, raw = rec["products"], rec["raw_read_s"]
        table = Table(
            title=f"Recovery: {n:,} products + {n:,} ledger entries + {n:,} sagas "
            f"({rec['changelog_records']:,} changelog records); baseline: raw aiokafka read of "
            f"both changelogs {raw:.2f} s"
        )
        for col in (
            "worker",
            "decided s",
            "vs raw",
            "imported s",
            "assigned s",
            "ready s",
            "restore s",
            "restore vs raw",
            "probe",
        ):
            table.add_column(col, justify="left" if col in ("worker", "probe") else "right")
        for tag, label in RECOVERY_LABELS:
            phases = rec["phases"].get(tag)
            if phases is None:
                continue
            restore = restore_seconds(phases)
            decided = rec[f"{tag}_decided_s"]
            table.add_row(
                label,
                _num(decided, 2),
                _ratio(decided, raw),
                _num(phases.get("started"), 2),
                _num(phases.get("assigned"), 2),
                _num(phases.get("ready"), 2),
                _num(restore, 2),
                _ratio(restore, raw),
                rec["probes"].get(tag, "-"),
            )
        return table

    def _memory_table(self) -> Table | None:
        rec = self.recovery
        if not rec:
            return None
        n, empty = rec["products"], rec["rss_empty_mb"]
        table = Table(
            title=f"Memory: worker peak RSS (VmHWM) holding {n:,} products; baseline: "
            f"an idle worker holding nothing, {empty:.1f} MiB; idle worker ready in "
            f"{rec['empty_ready_s']:.2f} s"
        )
        for col in ("store", "peak RSS MiB", "vs idle", "per product (bytes)"):
            table.add_column(col, justify="left" if col == "store" else "right")
        for label, key in (("rocksdb://", "rss_rocksdb_mb"), ("memory://", "rss_memory_mb")):
            if rec[key]:
                per = (rec[key] - empty) * 1024 * 1024 / max(n, 1)
                table.add_row(label, _num(rec[key], 1), _ratio(rec[key], empty), _num(per))
        at_million = rss_at_million(rec)
        if at_million is not None and n < ONE_MILLION:
            table.add_row("rocksdb://, linear to 1,000,000", _num(at_million, 1), "", "")
        return table

    def _core_table(self) -> Table | None:
        if not self.core:
            return None
        why_not = self.meta.get("core_compiled")
        table = Table(
            title="Pure decision core (one thread, no Faust, no broker; each layer's best round)",
            caption=f"compiled build not measured: {why_not}" if why_not else None,
        )
        for col in ("layer", "decisions", "decisions/s", "vs baseline", "every round"):
            table.add_column(col, justify="left" if col == "layer" else "right")
        base = self.core[0]["rate"]
        for row in self.core:
            table.add_row(
                row["name"],
                _num(row["decisions"]),
                _num(row["rate"]),
                _ratio(row["rate"], base),
                # Reports written before the rounds have none.
                " / ".join(_num(rate) for rate in row.get("rates", ())),
            )
        return table

    def _knobs_table(self) -> Table | None:
        if not self.knobs:
            return None
        kind = self.knobs[0].get("workload", "spread")
        if self.knobs[0].get("offered"):
            return self._knobs_latency_table(kind)
        table = Table(title=f"Worker knobs (env), {kind} throughput, vs stockflow defaults")
        for col in (
            "settings",
            "orders/s",
            "vs defaults",
            "cpu cores",
            "cpu ms/order",
            "cpu/order vs defaults",
            "broker ms/order",
            "writes/order",
            "runs",
        ):
            table.add_column(col, justify="left" if col == "settings" else "right")
        base, base_cpu = self.knobs[0]["rate"], self.knobs[0]["cpu_ms_per_order"]
        for row in self.knobs:
            table.add_row(
                row["note"],
                _num(row["rate"]),
                _ratio(row["rate"], base),
                _num(row["cpu_cores"], 2),
                _num(row["cpu_ms_per_order"], 3),
                _ratio(row["cpu_ms_per_order"], base_cpu),
                _num(row.get("broker_cpu_ms_per_order"), 3),
                _num(row.get("changelog_per_order"), 2),
                _runs(row),
            )
        return table

    def _knobs_latency_table(self, kind: str) -> Table:
        """The knobs' latency runs (``--knob-rate``): p50s beside the defaults' and the pipe's
        at the same offered load, each a median of interleaved rounds."""
        rows = self.knobs
        offered = rows[0]["offered"]
        title = f"Worker knobs (env), {kind} latency at {offered:,.0f} orders/s offered"
        table = Table(title=f"{title}, vs stockflow defaults and the pipe")
        for col in (
            "settings",
            "p50 ms",
            "p50 vs defaults",
            "p50 vs pipe",
            "p99 ms",
            "cpu cores",
            "p50 of each run",
        ):
            table.add_column(col, justify="left" if col == "settings" else "right")
        base = rows[0]["p50_ms"]
        pipe = next((r["p50_ms"] for r in rows if r.get("system") == "pipe"), None)
        for row in rows:
            runs = row.get("runs") or []
            table.add_row(
                row["note"],
                _num(row["p50_ms"], 1),
                _ratio(row["p50_ms"], base),
                _ratio(row["p50_ms"], pipe),
                _num(row["p99_ms"], 1),
                _num(row["cpu_cores"], 2),
                " ".join(f"{r:,.1f}" for r in runs),
            )
        return table

    def _profile_table(self) -> Table | None:
        prof = self.profile
        if not prof:
            return None
        threads = ", ".join(
            f"{name} {v['busy_share']:.0%} busy" for name, v in prof["threads"].items()
        )
        offered = prof.get("offered")
        load = "at its maximum" if not offered else f"at {offered:,.0f} orders/s offered"
        table = Table(title=f"Worker profile {load} (py-spy, share of busy samples; {threads})")
        table.add_column("layer (leaf frame)")
        table.add_column("share", justify="right")
        table.add_column("function (self)")
        table.add_column("share", justify="right")
        layers, selfs = prof["layers_of_busy"], prof["self_of_busy"]
        table.add_column("where (inclusive)")
        table.add_column("share", justify="right")
        keys = prof.get("key_of_busy", [])
        for i in range(max(len(layers), len(selfs), len(keys))):
            layer = layers[i] if i < len(layers) else ("", None)
            func = selfs[i] if i < len(selfs) else ("", None)
            key = keys[i] if i < len(keys) else ("", None)
            table.add_row(layer[0], _pct(layer[1]), func[0], _pct(func[1]), key[0], _pct(key[1]))
        return table

    def _goals_table(self) -> Table | None:
        if not self.goals:
            return None
        table = Table(title="Goals (measured, not asserted)")
        for col in ("goal", "measured", "met"):
            table.add_column(col)
        for goal in self.goals:
            met = goal["met"]
            mark = "-" if met is None else ("[green]yes[/]" if met else "[red]no[/]")
            table.add_row(goal["goal"], goal["measured"], mark)
        return table


def _others(statuses: dict[str, int]) -> str:
    """Outcomes other than reserved, e.g. ``insufficient_stock 9,000``."""
    others = [(k.removeprefix("rejected: "), n) for k, n in statuses.items() if k != "reserved"]
    return ", ".join(f"{k} {n:,}" for k, n in others if k != "moved")


def _runs(row: dict[str, Any]) -> str:
    """Every run's orders/s when the figure is a median of several."""
    runs = row.get("runs") or []
    return " ".join(f"{r:,.0f}" for r in runs) if len(runs) > 1 else ""


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"
