"""The ``stockflow`` command: one module per subcommand, loaded only when it runs.

Invalid ``STOCKFLOW_*`` settings end any subcommand with one line per bad variable on stderr
and exit status 2 (:data:`EXIT_CONFIGURATION`).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from stockflow.errors import ConfigurationError

__all__ = ["EXIT_CONFIGURATION", "main"]

EXIT_CONFIGURATION = 2
"""Exit status when the settings are invalid (as for a worker whose topics disagree)."""

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

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigurationError as exc:
            name = ctx.invoked_subcommand or ctx.info_name
            for line in str(exc).splitlines():
                click.echo(f"stockflow {name}: {line}", err=True)
            raise SystemExit(EXIT_CONFIGURATION) from None


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from stockflow._version import __version__, build

    # Which build runs (setup.py): the compiled one, or the same code as pure Python.
    click.echo(f"stockflow, version {__version__} ({build()} build)")
    ctx.exit()


@click.group(cls=LazyGroup)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="Show the version and which build is installed (compiled or pure), then exit.",
)
def main() -> None:
    """stockflow: no unit sold twice. The worker itself runs as ``faust -A stockflow worker``."""
