"""``stockflow dev``: an embedded broker and a worker to try stockflow against, until Ctrl-C.

Example::

    stockflow dev                          # broker on 9092, HTTP on 6066 when free
    stockflow dev --stock tshirt=5 --stock mug=2 --web-port 8080

Exit status: 0 after Ctrl-C or SIGTERM (everything it started is stopped), 1 if the broker or
the worker died, 3 if they could not start (one line on stderr says why, and where the logs are)
or the embedded broker is not installed (``pip install 'stockflow[embedded]'``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

__all__ = ["dev"]


def _parse_stock(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, int] | None:
    if not values:
        return None
    stock: dict[str, int] = {}
    for value in values:
        product, sep, count = value.rpartition("=")
        if not sep or not product or not count.isdigit():
            raise click.BadParameter(f"{value!r} is not PRODUCT=UNITS (e.g. sku-1=10)")
        stock[product] = int(count)
    return stock


@click.command()
@click.option(
    "--broker-port",
    type=click.IntRange(1, 65535),
    help="The broker's port on 127.0.0.1. Default: 9092 if free, else any free port.",
)
@click.option(
    "--web-port",
    type=click.IntRange(1, 65535),
    help="The worker's HTTP port on 127.0.0.1. Default: 6066 if free, else any free port.",
)
@click.option(
    "--partitions",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Partitions of every stockflow topic.",
)
@click.option(
    "--stock",
    "stock",
    multiple=True,
    callback=_parse_stock,
    metavar="PRODUCT=UNITS",
    help="Stock this product before the first order (repeat). Default: sku-1=10, sku-2=3.",
)
@click.option("--empty", is_flag=True, help="Stock nothing.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep logs and worker state here. Default: a temp dir, deleted after a clean stop.",
)
def dev(
    broker_port: int | None,
    web_port: int | None,
    partitions: int,
    stock: dict[str, int] | None,
    empty: bool,
    workdir: Path | None,
) -> None:
    """Start an embedded broker and a worker, print where they are and what to try, and keep
    them up until Ctrl-C. Nothing is kept: the broker holds its topics in memory."""
    from stockflow.cli.extras import require_embedded_broker

    require_embedded_broker("dev")
    from stockflow.dev import DEFAULT_STOCK, run_dev

    chosen = {} if empty else (stock if stock is not None else dict(DEFAULT_STOCK))
    status = run_dev(
        broker_port=broker_port,
        web_port=web_port,
        partitions=partitions,
        stock=chosen,
        workdir=workdir,
        out=sys.stdout,
        err=sys.stderr,
    )
    raise SystemExit(status)
