"""The results of one ``python -m bench`` run: rich tables, JSON, and the issue's goals.

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

__all__ = ["Report", "evaluate_goals"]

KINDS = ("spread", "hot", "multi")
ONE_MILLION = 1_000_000
EXTRAPOLATE_FROM = 100_000
"""Fewer products than this: RocksDB's fixed costs dominate the RSS; no extrapolation."""
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


@dataclass
class Report:
    meta: dict[str, Any] = field(default_factory=dict)
    core: list[dict[str, Any]] = field(default_factory=list)
    throughput: list[dict[str, Any]] = field(default_factory=list)
    latency: list[dict[str, Any]] = field(default_factory=list)
    recovery: dict[str, Any] | None = None
    knobs: list[dict[str, Any]] = field(default_factory=list)
    profile: dict[str, Any] | None = None
    checkout: list[dict[str, Any]] = field(default_factory=list)
    goals: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "core": self.core,
            "throughput": self.throughput,
            "latency": self.latency,
            "recovery": self.recovery,
            "knobs": self.knobs,
            "profile": self.profile,
            "checkout": self.checkout,
            "goals": self.goals,
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_dict(), indent=2, default=str) + "\n")

    def rate(self, system: str, kind: str) -> float | None:
        for row in self.throughput:
            if row["system"] == system and row["workload"] == kind and row["complete"]:
                return float(row["rate"])
        return None

    # --- printing ------------------------------------------------------------------------------

    def print(self, console: Console | None = None) -> None:
        console = console or Console(width=140)
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
                _runs(row),
                _num(row["statuses"].get("reserved")),
                _others(row["statuses"]),
                str(row["correct"]),
            )
        return table

    def _latency_table(self) -> Table | None:
        if not self.latency:
            return None
        table = Table(title="Latency at a fixed offered load (half stockflow's spread maximum)")
        for col in (
            "system",
            "settings",
            "offered/s",
            "orders",
            "p50 ms",
            "p99 ms",
            "max ms",
            "p50 vs pipe",
            "p99 vs pipe",
            "cpu cores",
        ):
            table.add_column(col, justify="left" if col in ("system", "settings") else "right")
        for row in self.latency:
            pipe = next(
                (r for r in self.latency if r["system"] == "pipe" and r["note"] == row["note"]),
                None,
            )
            table.add_row(
                row["system"],
                row["note"],
                _num(row["offered"]),
                _num(row["answered"]),
                _num(row["p50_ms"], 1),
                _num(row["p99_ms"], 1),
                _num(row["max_ms"], 1),
                _ratio(row["p50_ms"], pipe["p50_ms"] if pipe else None),
                _ratio(row["p99_ms"], pipe["p99_ms"] if pipe else None),
                _num(row["cpu_cores"], 2),
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
            restore = _restore(phases)
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
        at_million = _rss_at_million(rec)
        if at_million is not None and n < ONE_MILLION:
            table.add_row("rocksdb://, linear to 1,000,000", _num(at_million, 1), "", "")
        return table

    def _core_table(self) -> Table | None:
        if not self.core:
            return None
        table = Table(title="Pure decision core (one thread, no Faust, no broker)")
        for col in ("layer", "decisions", "decisions/s", "vs baseline"):
            table.add_column(col, justify="left" if col == "layer" else "right")
        base = self.core[0]["rate"]
        for row in self.core:
            table.add_row(
                row["name"], _num(row["decisions"]), _num(row["rate"]), _ratio(row["rate"], base)
            )
        return table

    def _knobs_table(self) -> Table | None:
        if not self.knobs:
            return None
        table = Table(title="Worker knobs (env), spread throughput, vs stockflow defaults")
        for col in (
            "settings",
            "orders/s",
            "vs defaults",
            "cpu cores",
            "cpu ms/order",
            "cpu/order vs defaults",
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
                _runs(row),
            )
        return table

    def _profile_table(self) -> Table | None:
        prof = self.profile
        if not prof:
            return None
        threads = ", ".join(
            f"{name} {v['busy_share']:.0%} busy" for name, v in prof["threads"].items()
        )
        table = Table(title=f"Worker profile under load (py-spy, share of busy samples; {threads})")
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


def _rss_at_million(rec: dict[str, Any]) -> float | None:
    empty, used, n = rec["rss_empty_mb"], rec["rss_rocksdb_mb"], rec["products"]
    if n >= ONE_MILLION:
        return float(used)
    if n < EXTRAPOLATE_FROM or not used:
        return None
    return float(empty + (used - empty) * ONE_MILLION / n)


def _restore(phases: dict[str, float]) -> float | None:
    if "ready" in phases and "assigned" in phases:
        return phases["ready"] - phases["assigned"]
    return None


def evaluate_goals(report: Report) -> list[dict[str, Any]]:
    goals: list[dict[str, Any]] = []

    def add(goal: str, measured: str, met: bool | None) -> None:
        goals.append({"goal": goal, "measured": measured, "met": met})

    sf, pipe, quix = (report.rate(s, "spread") for s in ("stockflow", "pipe", "quix"))
    if sf and quix:
        add("throughput (spread) >= Quix peer", f"{sf / quix:.3f}x the peer", sf >= quix)
    if sf and pipe:
        add("throughput (spread) >= 50% of baseline pipe", f"{sf / pipe:.1%}", sf >= pipe / 2)
    hot = report.rate("stockflow", "hot")
    if sf and hot:
        add("hot product >= 80% of spread", f"{hot / sf:.1%}", hot >= 0.8 * sf)
    lat = next((r for r in report.latency if r["system"] == "stockflow"), None)  # defaults
    if lat and lat["p50_ms"] is not None:
        add("p50 <= 10 ms at half load", f"{lat['p50_ms']:.1f} ms", lat["p50_ms"] <= 10)
        add("p99 <= 50 ms at half load", f"{lat['p99_ms']:.1f} ms", lat["p99_ms"] <= 50)
    rec = report.recovery
    tag = next((t for t in ("replacement", "cold") if rec and t in rec["phases"]), None)
    if rec and tag:
        raw = max(rec["raw_read_s"], 1e-9)
        ratio = rec[f"{tag}_decided_s"] / raw
        restore = _restore(rec["phases"][tag])
        extra = "" if restore is None else f"; restore alone {restore / raw:.1f}x"
        add(
            "recovery <= 3x raw changelog read",
            f"{ratio:.1f}x ({tag}, {rec['products']:,} products{extra})",
            ratio <= 3,
        )
    if rec:
        add("ready < 10 s, small state", f"{rec['empty_ready_s']:.2f} s", rec["empty_ready_s"] < 10)
        rss = _rss_at_million(rec)
        if rss is None:
            add(
                "RSS <= 500 MB at 1M products (RocksDB)",
                f"{rec['rss_rocksdb_mb']:.0f} MiB at {rec['products']:,}: too few to say",
                None,
            )
        else:
            how = "measured" if rec["products"] >= ONE_MILLION else "linear from "
            how += "" if rec["products"] >= ONE_MILLION else f"{rec['products']:,}"
            add("RSS <= 500 MB at 1M products (RocksDB)", f"{rss:.0f} MiB ({how})", rss <= 500)
    bare = next((r for r in report.core if r["name"].startswith("stockflow.core")), None)
    if bare:
        add(
            "pure core >= 300,000 decisions/s (bare reserve)",
            f"{bare['rate']:,.0f}/s",
            bare["rate"] >= 300_000,
        )
    return goals
