"""PNG charts of a run, written beside its tables (``--json PATH``: ``PATH``'s stem plus
``-throughput.png`` etc.; ``--charts DIR``: ``DIR/throughput.png`` etc.).

``throughput``   orders/s and CPU ms per order, per system, grouped by workload.
``latency-cdf``  the latency CDF of every latency run (the quantiles each run kept).
``scaleout``     orders/s and CPU ms per order with 1 and 2 stockflow workers.

matplotlib (the ``bench`` extra) draws them with its Agg canvas: no display, no pyplot state.
``python -m bench.charts RUN.json [DIR]`` redraws them from a saved run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.report import Report
from bench.rows import KINDS

__all__ = ["chart_paths", "main", "write_charts"]

NAMES = ("throughput", "latency-cdf", "scaleout")


def chart_paths(directory: Path, prefix: str = "") -> dict[str, Path]:
    """Where each chart goes: ``directory/{prefix}{name}.png``."""
    return {name: directory / f"{prefix}{name}.png" for name in NAMES}


def _figure(width: float, height: float, columns: int = 1) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(1, columns, squeeze=False)[0]


def _grouped_bars(axes: Any, groups: Sequence[str], series: dict[str, list[float | None]]) -> None:
    """One group of bars per ``groups`` item, one bar per series, each labelled with its value."""
    width = 0.8 / max(len(series), 1)
    for index, (label, values) in enumerate(series.items()):
        positions = [g + (index - (len(series) - 1) / 2) * width for g in range(len(groups))]
        heights = [v or 0.0 for v in values]
        bars = axes.bar(positions, heights, width, label=label)
        texts = [_label(v) for v in values]
        axes.bar_label(bars, labels=texts, fontsize=7, padding=2, rotation=90)
    axes.set_xticks(range(len(groups)), groups)
    axes.margins(y=0.2)


def _label(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _throughput(report: Report, path: Path) -> Path | None:
    kinds = [k for k in KINDS if any(r["workload"] == k for r in report.throughput)]
    systems = list(dict.fromkeys(r["system"] for r in report.throughput))
    if not kinds:
        return None
    figure, (rate_axes, cpu_axes) = _figure(12, 4.5, 2)
    rates = {s: [report.rate(s, k) for k in kinds] for s in systems}
    cpus = {s: [report.cpu(s, k) for k in kinds] for s in systems}
    _grouped_bars(rate_axes, kinds, rates)
    rate_axes.set_ylabel("orders/s (higher is better)")
    rate_axes.set_title("Throughput")
    _grouped_bars(cpu_axes, kinds, cpus)
    cpu_axes.set_ylabel("CPU ms per order (lower is better)")
    cpu_axes.set_yscale("log")
    cpu_axes.set_title("CPU per order (log scale)")
    rate_axes.legend(fontsize=8)
    figure.suptitle(_subtitle(report, "first order produced -> last outcome consumed"))
    figure.savefig(path)
    return path


def _latency(report: Report, path: Path) -> Path | None:
    rows = [r for r in report.latency if r.get("cdf")]
    if not rows:
        return None
    figure, (axes,) = _figure(8, 5)
    for row in rows:
        points = sorted((float(ms), float(q)) for q, ms in row["cdf"])
        kind = row.get("workload", "spread")
        label = f"{row['system']} {kind} ({row['note']}, {row['offered']:,.0f}/s)"
        axes.step([ms for ms, _ in points], [q for _, q in points], where="post", label=label)
    axes.set_xscale("log")
    axes.set_xlabel("latency, order produced -> outcome consumed (ms, log scale)")
    axes.set_ylabel("fraction of orders answered within")
    axes.set_ylim(0, 1.01)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")
    figure.suptitle(_subtitle(report, "latency CDF at a fixed offered load"))
    figure.savefig(path)
    return path


def _scaleout(report: Report, path: Path) -> Path | None:
    rows = report.scaleout
    if not rows:
        return None
    figure, (rate_axes, cpu_axes) = _figure(8, 4, 2)
    labels = [r["note"] for r in rows]
    _grouped_bars(rate_axes, labels, {"orders/s": [r["rate"] or None for r in rows]})
    rate_axes.set_title("orders/s")
    cpu = {"CPU ms/order": [r["cpu_ms_per_order"] for r in rows]}
    _grouped_bars(cpu_axes, labels, cpu)
    cpu_axes.set_title("CPU ms per order (all workers)")
    figure.suptitle(_subtitle(report, "stockflow workers in one group, spread workload"))
    figure.savefig(path)
    return path


def _subtitle(report: Report, what: str) -> str:
    meta = report.meta
    return f"{what} - commit {meta.get('commit', '?')}, nproc {meta.get('nproc', '?')}"


def write_charts(report: Report, directory: Path, prefix: str = "") -> list[Path]:
    """Draw every chart the report has data for; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = chart_paths(directory, prefix)
    drawn = (
        _throughput(report, paths["throughput"]),
        _latency(report, paths["latency-cdf"]),
        _scaleout(report, paths["scaleout"]),
    )
    return [p for p in drawn if p is not None]


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.charts RUN.json [DIR]``: redraw a saved run's charts as
    ``DIR/RUN-throughput.png`` etc. (``DIR``: beside the JSON), the names ``--json`` gives."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print("usage: python -m bench.charts RUN.json [DIR]", file=sys.stderr)
        return 2
    source = Path(args[0])
    report = Report.from_dict(json.loads(source.read_text()))
    directory = Path(args[1]) if len(args) == 2 else source.parent
    for path in write_charts(report, directory, f"{source.stem}-"):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
