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
import inspect
import threading
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from stockflow.client.client import Client
from stockflow.settings import Settings

__all__ = ["BlockingClient"]

T = TypeVar("T")
P = ParamSpec("P")

START_TIMEOUT = 30.0
"""Seconds to wait for the client to connect before :meth:`BlockingClient.start` fails."""


def _blocking(
    method: Callable[Concatenate[Client, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[BlockingClient, P], T]:
    """``method`` of :class:`Client`, blocking until its answer (or its ``timeout``).
    Iterable arguments (lines, ``expect``) are copied into lists first: an iterator must not be
    consumed on another thread."""
    timeout_default = inspect.signature(method).parameters["timeout"].default
    run: Callable[..., Coroutine[Any, Any, T]] = method  # called with the copied arguments

    def call(self: BlockingClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        copied = [_copied(value) for value in args]
        named = {name: _copied(value) for name, value in kwargs.items()}
        timeout = cast(float, named.get("timeout", timeout_default))
        return self._call(run(self.client, *copied, **named), timeout)

    call.__name__ = method.__name__
    call.__qualname__ = f"BlockingClient.{method.__name__}"
    call.__doc__ = method.__doc__
    return call


def _copied(value: object) -> object:
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return list(value)
    return value


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

    # The calls are Client's, run on the client's loop; mypy and help() see Client's signatures.
    place = _blocking(Client.place)
    outcome = _blocking(Client.outcome)
    pay = _blocking(Client.pay)
    cancel = _blocking(Client.cancel)

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        loop = self._loop
        if loop is None:
            coroutine.close()
            from stockflow.errors import StockflowError

            raise StockflowError("stockflow.BlockingClient is not started: use 'with'")
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        # The coroutine enforces its own timeout (OrderTimeout); the margin covers the hop.
        return future.result(timeout + START_TIMEOUT)
