"""How a :class:`bench.report.Report` prints: one rich table per section, each figure next to
the baseline measured in the same run (:class:`ReportTables`, the report's base class)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from bench.cells import fifths_cell, num, others, ratio, rounds_cell, runs
from bench.knob_tables import KnobTables
from bench.rows import ONE_MILLION, pipe_row, restore_seconds, rss_at_million

__all__ = ["ReportTables"]

RECOVERY_LABELS = (
    ("cold", "cold start, empty datadir"),
    ("replacement", "SIGKILL -> replacement, new datadir"),
    ("restart", "SIGKILL -> restart, same datadir"),
    ("memory", "stop -> memory:// worker"),
)


class ReportTables(KnobTables):
    """The section tables of a report; the attributes they read (``throughput``, ``latency``,
    ``meta``...) and ``rate``/``cpu`` are :class:`bench.report.Report`'s."""

    # Declared for readers; the dataclass fields of Report fill them.
    meta: dict[str, Any]
    throughput: list[dict[str, Any]]
    latency: list[dict[str, Any]]
    hops: list[dict[str, Any]]
    checkout: list[dict[str, Any]]
    scaleout: list[dict[str, Any]]
    recovery: dict[str, Any] | None
    core: list[dict[str, Any]]
    knobs: list[dict[str, Any]]
    profile: dict[str, Any] | None
    goals: list[dict[str, Any]]

    def rate(self, system: str, kind: str) -> float | None:
        raise NotImplementedError

    def cpu(self, system: str, kind: str) -> float | None:
        raise NotImplementedError

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
                num(row["orders"]),
                num(row["rate"]) if row["complete"] else f"incomplete ({row['answered']})",
                ratio(row["rate"], self.rate("pipe", kind)),
                ratio(row["rate"], self.rate("quix", kind)),
                num(row["cpu_cores"], 2),
                num(row["cpu_ms_per_order"], 3),
                num(row.get("broker_cpu_ms_per_order"), 3),
                num(row.get("changelog_per_order"), 2),
                runs(row),
                num(row["statuses"].get("reserved")),
                others(row["statuses"]),
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
            "p50 of each run",
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
                num(row["offered"]),
                num(row.get("sent_rate")),
                num(row["answered"]),
                num(row["p50_ms"], 1),
                num(row["p99_ms"], 1),
                num(row["max_ms"], 1),
                ratio(row["p50_ms"], pipe["p50_ms"] if pipe else None),
                ratio(row["p99_ms"], pipe["p99_ms"] if pipe else None),
                fifths_cell(row),
                rounds_cell(row),
                num(row["cpu_cores"], 2),
            )
        return table

    def _hops_table(self) -> Table | None:
        if not self.hops:
            return None
        offered, kind = self.hops[0].get("offered"), self.hops[0].get("workload", "spread")
        title = f"Latency hop by hop, {kind}, at {num(offered)} orders/s (record timestamps)"
        table = Table(title=title)
        for col in ("system", "hop", "orders", "p50 ms", "mean ms", "p90 ms", "cpu cores"):
            table.add_column(col, justify="left" if col in ("system", "hop") else "right")
        for row in self.hops:
            table.add_row(
                row["system"],
                row["hop"],
                num(row["orders"]),
                num(row["p50_ms"], 1),
                num(row["mean_ms"], 1),
                num(row["p90_ms"], 1),
                num(row.get("cpu_cores"), 2),
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
                num(row["offered"]) if row["offered"] else "all at once",
                num(row["orders"]),
                num(row["answered"]),
                num(row["p50_ms"], 1),
                num(row["p99_ms"], 1),
                num(row["max_ms"], 1),
                ratio(row["p50_ms"], pipe["p50_ms"] if pipe else None),
                ratio(row["p99_ms"], pipe["p99_ms"] if pipe else None),
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
                num(row["orders"]),
                num(row["rate"]) if row["complete"] else f"incomplete ({row['answered']})",
                ratio(row["rate"], one["rate"]),
                num(row["cpu_cores"], 2),
                num(row["cpu_ms_per_order"], 3),
                ratio(row["cpu_ms_per_order"], one["cpu_ms_per_order"]),
                runs(row),
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
                num(decided, 2),
                ratio(decided, raw),
                num(phases.get("started"), 2),
                num(phases.get("assigned"), 2),
                num(phases.get("ready"), 2),
                num(restore, 2),
                ratio(restore, raw),
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
                table.add_row(label, num(rec[key], 1), ratio(rec[key], empty), num(per))
        at_million = rss_at_million(rec)
        if at_million is not None and n < ONE_MILLION:
            table.add_row("rocksdb://, linear to 1,000,000", num(at_million, 1), "", "")
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
                num(row["decisions"]),
                num(row["rate"]),
                ratio(row["rate"], base),
                # Reports written before the rounds have none.
                " / ".join(num(rate) for rate in row.get("rates", ())),
            )
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
