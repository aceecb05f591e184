"""The ``stockflow`` command: one module per subcommand, loaded only when it runs."""

from __future__ import annotations

import importlib
from typing import Any

import click

__all__ = ["main"]

# subcommand name -> "module:function" (a click.Command); imported lazily so that
# ``stockflow --help`` stays fast and no subcommand's dependencies load for another.
COMMANDS: dict[str, str] = {
    "demo": "stockflow.cli.demo:demo",
    "dev": "stockflow.cli.dev:dev",
    "audit": "stockflow.cli.audit:audit",
    "record": "stockflow.cli.replay:record",
    "replay": "stockflow.cli.replay:replay",
    "schema": "stockflow.cli.schema:schema",
    "chaos": "stockflow.cli.chaos:chaos",
    "stock": "stockflow.cli.stock:stock",
    "order": "stockflow.cli.stock:order",
    "topics": "stockflow.cli.topics:topics",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, _, attribute = target.partition(":")
        command: Any = getattr(importlib.import_module(module_name), attribute)
        return command  # type: ignore[no-any-return]


@click.group(cls=LazyGroup)
@click.version_option(package_name="stockflow")
def main() -> None:
    """stockflow: no unit sold twice. The worker itself runs as ``faust -A stockflow worker``."""
