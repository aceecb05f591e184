"""stockflow: no unit sold twice in event-driven commerce.

Every stock command is partitioned by product id; one single-threaded writer per partition
checks *and* reserves in one step against a changelogged table and publishes the decision as an
event. Orders with several lines are reserved all-or-nothing by a saga.

Importing ``stockflow`` only defines names. Faust is imported when you ask for it:
``stockflow.create_app()``, ``stockflow.install(app)``, or ``stockflow.app`` (the standalone
app built from ``STOCKFLOW_*`` settings, which is what ``faust -A stockflow worker`` loads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stockflow._version import __version__
from stockflow.errors import (
    BrokerError,
    ConfigurationError,
    InvariantViolation,
    OrderConflict,
    OrderTimeout,
    StockflowError,
    WorkerError,
)
from stockflow.settings import Settings

if TYPE_CHECKING:
    from stockflow.application import Stockflow, create_app, install
    from stockflow.client import BlockingClient, Client


__all__ = [
    "BlockingClient",
    "BrokerError",
    "Client",
    "ConfigurationError",
    "InvariantViolation",
    "OrderConflict",
    "OrderTimeout",
    "Settings",
    "Stockflow",
    "StockflowError",
    "WorkerError",
    "__version__",
    "app",
    "create_app",
    "install",
]

_LAZY = {"create_app", "install", "Stockflow"}
_CLIENT = {"Client", "BlockingClient"}
_app: Any = None


def __getattr__(name: str) -> Any:
    global _app
    if name in _LAZY:
        from stockflow import application

        return getattr(application, name)
    if name in _CLIENT:
        from stockflow import client

        return getattr(client, name)
    if name == "app":
        if _app is None:
            _app = _standalone_app()
        return _app
    raise AttributeError(f"module 'stockflow' has no attribute {name!r}")


def _standalone_app() -> Any:
    """The app ``faust -A stockflow worker`` loads. Bad ``STOCKFLOW_*`` settings end the
    process here with one line per variable and exit status 2, as every ``stockflow`` command
    does, instead of a traceback through Faust's app loader (``create_app()`` itself raises
    :class:`ConfigurationError`)."""
    import sys

    from stockflow.application import create_app

    try:
        return create_app()
    except ConfigurationError as exc:
        for line in str(exc).splitlines():
            print(f"stockflow worker: {line}", file=sys.stderr)
        raise SystemExit(2) from None
