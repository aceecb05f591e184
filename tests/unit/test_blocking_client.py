"""BlockingClient's calls are Client's: the same arguments reach the coroutine (iterables copied
into lists on the caller's thread) and the wait covers the call's own timeout."""

from __future__ import annotations

import inspect
from collections.abc import Coroutine
from typing import Any

import pytest

from stockflow import BlockingClient, Client
from stockflow.errors import StockflowError


def _recorded(client: BlockingClient) -> list[tuple[str, dict[str, Any], float]]:
    calls: list[tuple[str, dict[str, Any], float]] = []

    def call(coroutine: Coroutine[Any, Any, Any], timeout: float) -> str:
        frame = coroutine.cr_frame
        assert frame is not None
        arguments = {k: v for k, v in frame.f_locals.items() if k != "self"}
        calls.append((coroutine.cr_code.co_name, arguments, timeout))
        coroutine.close()
        return "answer"

    client._call = call  # type: ignore[method-assign]
    return calls


def test_calls_reach_the_client_with_copied_iterables_and_their_timeout() -> None:
    client = BlockingClient()
    calls = _recorded(client)
    assert client.place("o-1", iter([("sku", 2)]), timeout=2.5) == "answer"
    client.pay("o-1", expect=(p for p in ["sku"]))
    client.cancel("o-1", reason="changed mind", expect={"sku"})
    client.outcome("o-1", timeout=1)
    assert calls == [
        (
            "place",
            {
                "order_id": "o-1",
                "lines": [("sku", 2)],
                "fulfilment": "all_or_nothing",
                "reservation_ttl": None,
                "timeout": 2.5,
            },
            2.5,
        ),
        ("pay", {"order_id": "o-1", "timeout": 5.0, "expect": ["sku"]}, 5.0),
        (
            "cancel",
            {"order_id": "o-1", "reason": "changed mind", "timeout": 5.0, "expect": ["sku"]},
            5.0,
        ),
        ("outcome", {"order_id": "o-1", "timeout": 1}, 1),
    ]


def test_docs_are_the_clients_and_the_calls_block() -> None:
    for name in ("place", "outcome", "pay", "cancel"):
        blocking, asynchronous = getattr(BlockingClient, name), getattr(Client, name)
        assert blocking.__doc__ == asynchronous.__doc__
        assert not inspect.iscoroutinefunction(blocking)


def test_a_call_before_start_fails_clearly() -> None:
    with pytest.raises(StockflowError, match="not started"):
        BlockingClient().place("o-1", [("sku", 1)])
