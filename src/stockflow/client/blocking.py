"""``stockflow.BlockingClient``: :class:`stockflow.Client` for synchronous code (Django, Flask).

It runs one :class:`~stockflow.Client` on an event loop in a thread of its own; every method
blocks the calling thread until the answer (or the timeout) and is safe to call from many
threads at once: their calls share the one client, as concurrent ``await``\\ s would.

Example::

    with stockflow.BlockingClient(stockflow.Settings()) as client:
        outcome = client.place("o-1", [("sku-1", 2)])
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from stockflow.client.client import Client, LineInput
from stockflow.client.matching import CancelAnswer, PayAnswer
from stockflow.models import Fulfilment, OrderRejected, OrderReserved
from stockflow.settings import Settings

__all__ = ["BlockingClient"]

T = TypeVar("T")

START_TIMEOUT = 30.0
"""Seconds to wait for the client to connect before :meth:`BlockingClient.start` fails."""


class BlockingClient:
    """A context manager; the methods are those of :class:`~stockflow.Client`, blocking."""

    def __init__(self, settings: Settings | None = None, *, max_tracked: int = 100_000) -> None:
        self.client = Client(settings, max_tracked=max_tracked)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BlockingClient:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="stockflow-client", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._call(self.client.start(), START_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self._call(self.client.stop(), START_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(START_TIMEOUT)
            loop.close()
            self._loop = self._thread = None

    def place(
        self,
        order_id: str,
        lines: Iterable[LineInput],
        *,
        fulfilment: Fulfilment = "all_or_nothing",
        reservation_ttl: float | None = None,
        timeout: float = 5.0,
    ) -> OrderReserved | OrderRejected:
        lines = list(lines)  # an iterator must not be consumed on another thread
        call = self.client.place(
            order_id, lines, fulfilment=fulfilment, reservation_ttl=reservation_ttl, timeout=timeout
        )
        return self._call(call, timeout)

    def outcome(self, order_id: str, *, timeout: float = 5.0) -> OrderReserved | OrderRejected:
        return self._call(self.client.outcome(order_id, timeout=timeout), timeout)

    def pay(
        self, order_id: str, *, timeout: float = 5.0, expect: Iterable[str] | None = None
    ) -> list[PayAnswer]:
        expect = None if expect is None else list(expect)
        return self._call(self.client.pay(order_id, timeout=timeout, expect=expect), timeout)

    def cancel(
        self,
        order_id: str,
        *,
        reason: str | None = None,
        timeout: float = 5.0,
        expect: Iterable[str] | None = None,
    ) -> list[CancelAnswer]:
        expect = None if expect is None else list(expect)
        call = self.client.cancel(order_id, reason=reason, timeout=timeout, expect=expect)
        return self._call(call, timeout)

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        loop = self._loop
        if loop is None:
            coroutine.close()
            from stockflow.errors import StockflowError

            raise StockflowError("stockflow.BlockingClient is not started: use 'with'")
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        # The coroutine enforces its own timeout (OrderTimeout); the margin covers the hop.
        return future.result(timeout + START_TIMEOUT)
