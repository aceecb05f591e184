"""``stockflow demo``: the flash sale on an embedded broker, summarised and checked.

Exit status: 0 when the check passed, 1 when it failed, 3 when the broker could not be reached
or a process did not start, or without ``--broker`` when the embedded broker is not installed
(``pip install 'stockflow[embedded]'``; one line on stderr says what was tried and what to do);
143 or 129 after SIGTERM or SIGHUP, with the broker and the worker it started stopped.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

__all__ = ["demo"]


@click.command()
@click.pass_context
@click.option("--orders", default=2000, show_default=True, help="Orders in the flash sale.")
@click.option(
    "--broker",
    default=lambda: os.environ.get("STOCKFLOW_BROKER"),
    help="Use this broker (kafka://host:port) instead of starting the embedded one "
    "[env STOCKFLOW_BROKER].",
)
@click.option("--workdir", type=click.Path(path_type=Path), help="Keep logs and state here.")
@click.option("--seed", default=7, show_default=True, help="Random seed of the order mix.")
def demo(
    ctx: click.Context, orders: int, broker: str | None, workdir: Path | None, seed: int
) -> None:
    """Flash sale: a worker, thousands of concurrent orders with duplicates and garbage, and a
    check that nothing was oversold. Exits 1 if the check fails."""
    from aiokafka.errors import KafkaError

    from stockflow.cli.extras import require_embedded_broker
    from stockflow.cli.reach import (
        EXIT_UNREACHABLE,
        quiet_kafka_logs,
        reason,
        require_broker,
    )
    from stockflow.cli.stopping import stopped_by_signals
    from stockflow.demo import run_demo
    from stockflow.errors import StockflowError
    from stockflow.kafka import bootstrap_servers

    if not broker:
        require_embedded_broker("demo")
    if broker:
        require_broker(
            "demo",
            bootstrap_servers(broker),
            ctx,
            hint="Check the address, or run without --broker and STOCKFLOW_BROKER "
            "to use the embedded broker.",
        )
    workdir = workdir or Path(tempfile.mkdtemp(prefix="stockflow-demo-"))
    try:
        # A SIGTERM stops the broker and the worker, as Ctrl-C does.
        with stopped_by_signals(), quiet_kafka_logs():
            result = run_demo(orders=orders, broker_url=broker, workdir=workdir, seed=seed)
    except (StockflowError, KafkaError, OSError) as exc:
        click.echo(
            f"stockflow demo: {reason(exc)}. The broker and worker logs are in {workdir}.",
            err=True,
        )
        raise SystemExit(EXIT_UNREACHABLE) from None
    if not result.ok:
        raise SystemExit(1)
