"""The knobs and profile sections' tables (:class:`KnobTables`, a base of
:class:`bench.tables.ReportTables`)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from bench.cells import num, pct, ratio, rounds_cell, runs

__all__ = ["KnobTables"]


class KnobTables:
    """The worker knobs' runs (throughput or latency) and the worker profile."""

    meta: dict[str, Any]
    knobs: list[dict[str, Any]]
    profile: dict[str, Any] | None

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
                num(row["rate"]),
                ratio(row["rate"], base),
                num(row["cpu_cores"], 2),
                num(row["cpu_ms_per_order"], 3),
                ratio(row["cpu_ms_per_order"], base_cpu),
                num(row.get("broker_cpu_ms_per_order"), 3),
                num(row.get("changelog_per_order"), 2),
                runs(row),
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
            table.add_row(
                row["note"],
                num(row["p50_ms"], 1),
                ratio(row["p50_ms"], base),
                ratio(row["p50_ms"], pipe),
                num(row["p99_ms"], 1),
                num(row["cpu_cores"], 2),
                rounds_cell(row),
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
            table.add_row(layer[0], pct(layer[1]), func[0], pct(func[1]), key[0], pct(key[1]))
        return table
