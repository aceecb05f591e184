"""``stockflow schema``: JSON Schema files for every public event.

Example::

    stockflow schema --out docs/schemas
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["schema"]


@click.command()
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write <EventName>.json and index.json into (created if missing).",
)
def schema(out: Path) -> None:
    """Write one JSON Schema per public event (inputs, outputs, DeadLetter) plus index.json."""
    from stockflow.schemas import write_schemas

    for path in write_schemas(out):
        click.echo(str(path))
