"""``stockflow demo``: the flash sale on an embedded broker, summarised and checked."""

from __future__ import annotations

import os
from pathlib import Path

import click

__all__ = ["demo"]


@click.command()
@click.option("--orders", default=2000, show_default=True, help="Orders in the flash sale.")
@click.option(
    "--broker",
    default=lambda: os.environ.get("STOCKFLOW_BROKER"),
    help="Use this broker (kafka://host:port) instead of starting the embedded one "
    "[env STOCKFLOW_BROKER].",
)
@click.option("--workdir", type=click.Path(path_type=Path), help="Keep logs and state here.")
@click.option("--seed", default=7, show_default=True, help="Random seed of the order mix.")
def demo(orders: int, broker: str | None, workdir: Path | None, seed: int) -> None:
    """Flash sale: a worker, thousands of concurrent orders with duplicates and garbage, and a
    check that nothing was oversold. Exits 1 if the check fails."""
    from stockflow.demo import run_demo

    result = run_demo(orders=orders, broker_url=broker, workdir=workdir, seed=seed)
    if not result.ok:
        raise SystemExit(1)
