"""A stockflow worker app with a fault injected, for tests only (``faust -A faulty_app``).

``STOCKFLOW_TEST_FAULT``:

- ``agent``: the product agent's processor raises for product id ``boom`` (a bug in an agent);
- ``changelog``: every table change written for product id ``boom`` fails to reach the
  changelog (a lost state write, which must stop the worker);
- ``partition``: records about product id ``boom`` are sent to a partition their topic does not
  have, as when an output topic was auto-created with fewer partitions (the issue's crash:
  ``AssertionError: Unrecognized partition``);
- ``stuck``: as ``agent``, and from then on the producer's flush never returns, as when a
  record waits for a partition that never appears (in the issue aiokafka spun on metadata
  requests): Faust's stop then waits forever in "Wait for streams..." (its commit flushes
  first), and only stockflow's exit watchdog ends the process.

Nothing in ``src/`` knows about these faults: they are patched onto the app built here.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import stockflow

__all__ = ["app"]

FAULTY_PRODUCT = "boom"

app = stockflow.create_app()
_handle: Any = app.stockflow  # type: ignore[attr-defined]
_fault = os.environ.get("STOCKFLOW_TEST_FAULT", "")


def _stick_flush() -> None:
    producer: Any = app.producer

    async def never() -> None:
        await asyncio.Event().wait()

    producer.flush = never


if _fault in ("agent", "stuck"):
    _decide = _handle.products.handle

    def _faulty_decide(value: bytes, meta: Any) -> Any:
        if FAULTY_PRODUCT.encode() in (value or b""):
            if _fault == "stuck":
                _stick_flush()
            raise RuntimeError("injected fault: a bug in the product agent")
        return _decide(value, meta)

    _handle.products.handle = _faulty_decide

elif _fault == "changelog":
    _changelog: Any = _handle.product_store.changelog
    _send = _changelog.send

    async def _faulty_send() -> None:
        failing = [r for r in _changelog._pending if FAULTY_PRODUCT.encode() in (r[2] or b"")]
        if failing:
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            future.set_exception(OSError("injected fault: the changelog write failed"))
            _changelog._check(future)
        await _send()

    _changelog.send = _faulty_send

elif _fault == "partition":
    _producer: Any = app.producer
    _produce = _producer.send

    async def _faulty_produce(
        topic: Any, key: Any, value: Any, partition: Any, timestamp: Any, headers: Any, **kw: Any
    ) -> Any:
        if FAULTY_PRODUCT.encode() in (value or b"") + (key or b""):
            partition = 99
        return await _produce(topic, key, value, partition, timestamp, headers, **kw)

    _producer.send = _faulty_produce
