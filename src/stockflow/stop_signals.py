"""Signal handlers that stop the main thread by raising, and make sure the raise lands.

A Python signal handler runs in the main thread between two bytecodes, wherever that thread
is. When it is inside a finaliser (an object's ``__del__``, a weakref callback: asyncio's
transports and aiokafka's coroutines have them), an exception the handler raises ends only
that finaliser: Python prints "Exception ignored in ..." and goes on as if no signal had come.
Seen once in 20 runs of ``stockflow demo`` stopped by SIGTERM: the demo ran to its end and
exited 0. :class:`SignalStops` sees such a lost raise through :data:`sys.unraisablehook` and
delivers the signal again, to be raised where the main thread goes next.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

__all__ = ["REDELIVER_AFTER_S", "SignalStops"]

REDELIVER_AFTER_S = 0.05
"""Seconds after a lost raise before its signal is delivered again: the finaliser has long
returned by then (and if the handler still lands in one, it is delivered once more)."""


class SignalStops:
    """Between :meth:`install` and :meth:`restore`, each of ``signals`` raises
    ``make(signum)`` in the main thread, once: the first sets every one of them to
    ``SIG_IGN`` (a second Ctrl-C must not cut short a stop whose waits are bounded).
    ``received`` lists the signal that stopped it."""

    def __init__(
        self, signals: Iterable[signal.Signals], make: Callable[[int], BaseException]
    ) -> None:
        self.signals = tuple(signals)
        self.make = make
        self.received: list[int] = []
        self._raised: BaseException | None = None
        self._in_hook = False
        self._resent: int | None = None
        """The signal sent again after a lost raise: already in ``received``."""
        self._timer: threading.Timer | None = None
        self._previous: dict[signal.Signals, Any] = {}
        self._previous_hook: Callable[[Any], object] = sys.unraisablehook

    def install(self) -> SignalStops:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self.signals}
        self._previous_hook = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        return self

    def ignore(self) -> None:
        """Every one of the signals ignored from now until :meth:`restore`."""
        for sig in self.signals:
            signal.signal(sig, signal.SIG_IGN)

    def restore(self) -> None:
        if self._timer is not None:  # not sent after the handlers it was meant for are gone
            self._timer.cancel()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if sys.unraisablehook == self._unraisable:
            sys.unraisablehook = self._previous_hook

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self._in_hook:
            # Only the lost signal is armed here, and this hook sends it again: a raise now
            # would be lost too (the hook's own exceptions are dropped), and a second sending
            # could outlive restore().
            return
        self.ignore()
        if self._resent == signum:
            self._resent = None
        else:
            self.received.append(signum)
        self._raised = self.make(signum)
        raise self._raised

    def _unraisable(self, unraisable: Any) -> None:
        raised = self._raised
        if raised is None or unraisable.exc_value is not raised:
            self._previous_hook(unraisable)
            return
        # Lost inside a finaliser: handled again, as if the signal had come once more.
        # It stays in ``received``: a block that ends before the signal comes again still
        # knows that it was stopped.
        self._raised = None
        self._in_hook = True
        try:
            self._resent = self.received[-1]
            self._redeliver(self._resent)
        finally:
            self._in_hook = False

    def _redeliver(self, signum: int) -> None:
        """The handler armed again (this runs in the main thread: the handler's, which ran
        the finaliser), and the signal sent again from another thread, a moment later: from
        this one the handler would run at once, inside the hook."""
        sig = signal.Signals(signum)
        signal.signal(sig, self._handle)
        # A real signal to the main thread, not _thread.interrupt_main: that one does not
        # wake a blocking call (a sleep, a wait on a process) as a signal does.
        main = threading.main_thread().ident
        assert main is not None  # a started thread's
        timer = self._timer = threading.Timer(REDELIVER_AFTER_S, signal.pthread_kill, (main, sig))
        timer.daemon = True
        timer.start()
