"""SIGTERM and SIGHUP stop a command that started processes the way Ctrl-C does.

``stockflow demo`` and ``stockflow chaos`` start brokers and workers in sessions of their own
(so that a Ctrl-C in the terminal reaches only the command, which then stops them by PID). A
SIGTERM (a CI job's timeout, ``kill PID``) or a SIGHUP (the terminal closed) would end the
command at once by default, and leave every process it started running. Turned into
:class:`SystemExit` instead, they unwind through the ``with`` blocks and ``finally`` clauses
that stop those processes, and the command exits ``128 + signal`` as a shell reports it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

from stockflow.stop_signals import SignalStops

__all__ = ["STOP_SIGNALS", "stopped_by_signals"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextmanager
def stopped_by_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise ``SystemExit(128 + signum)`` in the main
    thread; a second one while the block unwinds is ignored (the stop it would cut short is
    bounded by its own timeouts). A raise that a finaliser swallowed is delivered again
    (:class:`~stockflow.stop_signals.SignalStops`), and a block that ends after a stop signal
    all the same exits as stopped. The previous handlers are restored on the way out."""
    stops = SignalStops(STOP_SIGNALS, lambda signum: SystemExit(128 + signum)).install()
    try:
        yield
        if stops.received:  # swallowed where no hook sees it (an ``except BaseException``)
            raise SystemExit(128 + stops.received[0])
    finally:
        stops.restore()
