"""BlockingClient's calls are Client's coroutine methods run on the client's own loop thread:
the arguments reach the coroutine (iterables copied into lists on the caller's thread), the
wait covers the call's own timeout, and the docs are Client's."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from stockflow import BlockingClient, Client
from stockflow.client.blocking import START_TIMEOUT, _blocking
from stockflow.errors import StockflowError


@pytest.fixture
def running() -> Iterator[BlockingClient]:
    """A BlockingClient whose loop thread runs, without connecting its client."""
    client = BlockingClient()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    client._loop, client._thread = loop, thread
    yield client
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


async def _echo(
    client: Client, order_id: str, lines: Iterable[Any], *, timeout: float = 2.0
) -> tuple[str, Any, float, str]:
    return order_id, lines, timeout, threading.current_thread().name


def test_a_call_runs_on_the_loop_thread_with_copied_iterables(running: BlockingClient) -> None:
    echo = _blocking(_echo)
    order_id, lines, timeout, thread = echo(running, "o-1", (line for line in [("sku", 2)]))
    assert (order_id, lines, timeout) == ("o-1", [("sku", 2)], 2.0)
    assert thread != threading.current_thread().name


def test_the_wait_covers_the_calls_timeout(
    running: BlockingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    real = running._call

    def call(coroutine: Any, timeout: float) -> Any:
        waits.append(timeout)
        return real(coroutine, timeout)

    monkeypatch.setattr(running, "_call", call)
    echo = _blocking(_echo)
    echo(running, "o-1", [], timeout=7.5)
    echo(running, "o-1", [])
    assert waits == [7.5, 2.0]  # the given timeout, else the method's default
    assert START_TIMEOUT > 0  # the margin _call adds for the hop


def test_the_calls_are_clients() -> None:
    for name in ("place", "outcome", "pay", "cancel"):
        blocking, asynchronous = getattr(BlockingClient, name), getattr(Client, name)
        assert blocking.__doc__ == asynchronous.__doc__
        assert blocking.__name__ == name
        assert not inspect.iscoroutinefunction(blocking)
        assert inspect.iscoroutinefunction(asynchronous)


def test_a_call_before_start_fails_clearly() -> None:
    with pytest.raises(StockflowError, match="not started"):
        BlockingClient().place("o-1", [("sku", 1)])
