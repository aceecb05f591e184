"""Issue 11's goals, each measured as a ratio to a baseline from the same run (the machine is
shared and noisy: only ratios carry over between runs). Measured, not asserted: a goal that a
run did not measure is left out, one it cannot judge (too few products, no baseline at the same
load) is shown with ``met`` = ``None``.

| goal | from |
|---|---|
| throughput >= 0.6x the Quix peer, every workload (aim 1.0x) | throughput section |
| CPU per order <= 2x the peer's, every workload | throughput section |
| p50 <= 1.5x, p99 <= 2x the pipe's at half stockflow's maximum, every workload | latency section |
| bare ``reserve`` >= 300,000 decisions/s | core section |
| ``LocalPipeline`` >= 50,000 orders/s, as ``pip install .`` builds it (compiled) | core section |
| the same, pure build (an editable install, or no C compiler) | core section |
| recovery at 1,000,000 products <= 3x the raw changelog read | recovery section |
| peak RSS <= 500 MiB at 1,000,000 products | memory (recovery) section |
| 2 workers vs 1 (reported, no threshold) | scaleout section |
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.rows import KINDS, ONE_MILLION, pipe_row, restore_seconds, rss_at_million

if TYPE_CHECKING:
    from bench.report import Report

__all__ = [
    "CPU_GOAL",
    "PIPELINE_GOAL",
    "RESERVE_GOAL",
    "RSS_GOAL_MIB",
    "THROUGHPUT_AIM",
    "THROUGHPUT_GOAL",
    "evaluate_goals",
]

THROUGHPUT_GOAL = 0.6
THROUGHPUT_AIM = 1.0
CPU_GOAL = 2.0
P50_GOAL = 1.5
P99_GOAL = 2.0
RESERVE_GOAL = 300_000
PIPELINE_GOAL = 50_000
RECOVERY_GOAL = 3.0
RSS_GOAL_MIB = 500


def evaluate_goals(report: Report) -> list[dict[str, Any]]:
    """One ``{"goal", "measured", "met"}`` per goal the run measured (see the module docstring)."""
    goals: list[dict[str, Any]] = []

    def add(goal: str, measured: str, met: bool | None) -> None:
        goals.append({"goal": goal, "measured": measured, "met": met})

    for kind in KINDS:
        sf, quix = report.rate("stockflow", kind), report.rate("quix", kind)
        if sf and quix:
            ratio = sf / quix
            aim = " (aim met)" if ratio >= THROUGHPUT_AIM else ""
            add(
                f"throughput ({kind}) >= {THROUGHPUT_GOAL}x the Quix peer (aim {THROUGHPUT_AIM}x)",
                f"{ratio:.3f}x ({sf:,.0f} vs {quix:,.0f} orders/s){aim}",
                ratio >= THROUGHPUT_GOAL,
            )
        cpu_sf, cpu_quix = report.cpu("stockflow", kind), report.cpu("quix", kind)
        if cpu_sf and cpu_quix:
            ratio = cpu_sf / cpu_quix
            add(
                f"CPU per order ({kind}) <= {CPU_GOAL}x the Quix peer's",
                f"{ratio:.2f}x ({cpu_sf:.3f} vs {cpu_quix:.3f} ms/order)",
                ratio <= CPU_GOAL,
            )
    _latency_goals(report, add)
    _core_goals(report, add)
    _recovery_goals(report, add)
    _scaleout_goal(report, add)
    return goals


def _latency_goals(report: Report, add: Any) -> None:
    """Per workload, stockflow's first latency run (default settings, half its own maximum on
    that workload) against the pipe's run at the same offered load and settings. Spread's goal
    keeps its name of before; the others name their workload."""
    firsts: dict[str, dict[str, Any]] = {}
    for row in report.latency:
        if row["system"] == "stockflow" and row["p50_ms"] is not None:
            firsts.setdefault(row.get("workload") or "spread", row)
    for kind, row in firsts.items():
        pipe = pipe_row(report.latency, row)
        where = f"at {row['offered']:,.0f} orders/s offered"
        named = "" if kind == "spread" else f" ({kind})"
        for label, key, bound in (("p50", "p50_ms", P50_GOAL), ("p99", "p99_ms", P99_GOAL)):
            goal = f"latency {label}{named} at half max <= {bound}x the pipe's"
            if pipe is None or not pipe[key]:
                add(goal, f"{row[key]:.1f} ms {where}; no pipe run at that load", None)
                continue
            ratio = row[key] / pipe[key]
            add(
                goal,
                f"{ratio:.2f}x ({row[key]:.1f} vs {pipe[key]:.1f} ms {where})",
                ratio <= bound,
            )


def _core_goals(report: Report, add: Any) -> None:
    def layer(key: str) -> dict[str, Any] | None:
        return next((r for r in report.core if r.get("key") == key), None)

    base = layer("baseline")
    extra = f"; the hand-written json + dict loop: {base['rate']:,.0f}/s" if base else ""
    bare = layer("reserve")
    if bare:
        add(
            f"bare reserve >= {RESERVE_GOAL:,} decisions/s",
            f"{bare['rate']:,.0f}/s{extra}",
            bare["rate"] >= RESERVE_GOAL,
        )
    pipeline = layer("pipeline")
    if pipeline:
        add(
            f"LocalPipeline, pure build (editable, or no C compiler), >= {PIPELINE_GOAL:,}/s",
            f"{pipeline['rate']:,.0f} orders/s",
            pipeline["rate"] >= PIPELINE_GOAL,
        )
    # bench.compiled: the same layer on setup.py's default build, the one `pip install .` makes.
    compiled = layer("pipeline-compiled")
    if compiled:
        versus = f" ({compiled['rate'] / pipeline['rate']:.2f}x the pure build)" if pipeline else ""
        add(
            f"LocalPipeline single-line orders >= {PIPELINE_GOAL:,}/s (compiled: pip install .)",
            f"{compiled['rate']:,.0f} orders/s{versus}",
            compiled["rate"] >= PIPELINE_GOAL,
        )


def _recovery_goals(report: Report, add: Any) -> None:
    rec = report.recovery
    if not rec:
        return
    n = rec["products"]
    short = "" if n >= ONE_MILLION else f"; the goal is at {ONE_MILLION:,} (--scale 1.0)"
    tag = next((t for t in ("replacement", "cold") if t in rec["phases"]), None)
    if tag:
        raw = max(rec["raw_read_s"], 1e-9)
        ratio = rec[f"{tag}_decided_s"] / raw
        restore = restore_seconds(rec["phases"][tag])
        alone = "" if restore is None else f"; restore alone {restore / raw:.1f}x"
        add(
            f"recovery at 1M products <= {RECOVERY_GOAL:g}x the raw changelog read",
            f"{ratio:.1f}x ({tag}, {n:,} products{alone}{short})",
            ratio <= RECOVERY_GOAL if n >= ONE_MILLION else None,
        )
    add("ready < 10 s, small state", f"{rec['empty_ready_s']:.2f} s", rec["empty_ready_s"] < 10)
    rss = rss_at_million(rec)
    goal = f"peak RSS <= {RSS_GOAL_MIB} MiB at 1M products (RocksDB)"
    if rss is None:
        add(goal, f"{rec['rss_rocksdb_mb']:.0f} MiB at {n:,}: too few to say", None)
    else:
        how = "measured" if n >= ONE_MILLION else f"linear from {n:,}"
        add(goal, f"{rss:.0f} MiB ({how})", rss <= RSS_GOAL_MIB)


def _scaleout_goal(report: Report, add: Any) -> None:
    rows = [r for r in report.scaleout if r["complete"]]
    if len(rows) < 2 or not rows[0]["rate"]:
        return
    one, two = rows[0], rows[-1]
    cpu = ""
    if one["cpu_ms_per_order"] and two["cpu_ms_per_order"]:
        cpu = f", CPU per order {two['cpu_ms_per_order'] / one['cpu_ms_per_order']:.2f}x"
    rates = f"({two['rate']:,.0f} vs {one['rate']:,.0f})"
    add(
        "scale-out: 2 workers vs 1 (spread; reported)",
        f"{two['rate'] / one['rate']:.2f}x orders/s {rates}{cpu}",
        None,
    )
