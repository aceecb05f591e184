"""``stockflow chaos``: run the chaos scenarios on an embedded broker and report the figures.

Exit status: 0 when every scenario passed (zero violations, no anomaly), 1 otherwise, 3 at once
when the embedded broker is not installed (``pip install 'stockflow[embedded]'``); 143 or 129
after SIGTERM or SIGHUP, with every broker and worker it started stopped.
"""

from __future__ import annotations

import logging
import shlex
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from stockflow.chaos.verdict import ScenarioResult

__all__ = ["chaos"]


@click.command()
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    default=("all",),
    show_default=True,
    help="kill, takeover, redelivery, bad-input, outage, freeze or all; repeat to pick several.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=30),
    default=None,
    help="Total seconds to spend, shared by the scenarios (soak). Default: the short CI shape "
    "(10 kills, one kill cycle per group size, two cuts, ~10 s of load elsewhere).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the input mix.")
@click.option("--rate", type=click.FloatRange(min=1), default=None, help="Orders per second.")
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    default=None,
    help="Partitions of every topic. Default: 4 (6 for takeover, so that each of its three "
    "workers owns some).",
)
@click.option(
    "--timeouts",
    type=click.Choice(["test", "defaults"]),
    default="test",
    show_default=True,
    help="Workers' group timeouts and intervals: the tests' short ones (a worker ready in "
    "~3 s), or the settings' defaults, as a production worker runs (STOCKFLOW_* unset).",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep broker and worker logs, audit JSON and results here (default: a temp dir).",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the Markdown reliability report here (e.g. docs/reliability.md).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def chaos(
    scenarios: tuple[str, ...],
    duration: float | None,
    seed: int,
    rate: float | None,
    partitions: int | None,
    timeouts: str,
    workdir: Path | None,
    report: Path | None,
    as_json: bool,
) -> None:
    """Kill workers, cut the broker off, redeliver and garble input while orders flow; then
    check with `stockflow audit --strict` and direct checks that nothing was lost, doubled or
    oversold. Starts its own embedded brokers and worker processes on free loopback ports."""
    from datetime import UTC, datetime

    from stockflow.chaos import SCENARIOS, run_chaos
    from stockflow.chaos.report import machine, to_json, to_markdown
    from stockflow.cli.extras import require_embedded_broker
    from stockflow.cli.stopping import stopped_by_signals

    require_embedded_broker("chaos")

    names = list(SCENARIOS) if "all" in scenarios else list(dict.fromkeys(scenarios))
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise click.BadParameter(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    root = workdir or Path(tempfile.mkdtemp(prefix="stockflow-chaos-"))
    command = "stockflow chaos " + shlex.join(
        sys.argv[1:][1:] if sys.argv[1:2] == ["chaos"] else sys.argv[1:]
    )
    started = datetime.now(UTC)
    load_at_start = machine()["load_average"]

    def progress(result: ScenarioResult) -> None:
        verdict = "ok" if result.ok else "FAILED"
        click.echo(
            f"{result.name}: {verdict}; {result.orders_decided}/{result.orders} orders, "
            f"{result.kills} kills, {result.outages} outages, {result.violations} violations, "
            f"{len(result.anomalies)} anomalies ({result.workdir})",
            err=True,
        )

    # The run's own clients (load, watcher) complain loudly while the proxy is cut: expected.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    click.echo(f"stockflow chaos: {names}, logs in {root}", err=True)
    with stopped_by_signals():  # a SIGTERM stops the brokers and workers, as Ctrl-C does
        results = run_chaos(
            names,
            duration=duration,
            seed=seed,
            workdir=root,
            rate=rate,
            partitions=partitions,
            test_timeouts=timeouts == "test",
            on_result=progress,
        )
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(
            to_markdown(results, command=command, started=started, load_at_start=load_at_start)
        )
    payload = to_json(results, command=command, started=started, load_at_start=load_at_start)
    (root / "chaos.json").write_text(payload)
    if as_json:
        click.echo(payload)
    else:
        click.echo(
            to_markdown(results, command=command, started=started, load_at_start=load_at_start)
        )
    if not all(result.ok for result in results):
        raise SystemExit(1)
