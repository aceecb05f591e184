"""A stockflow worker app with a fault injected, for tests only (``faust -A faulty_app``).

``STOCKFLOW_TEST_FAULT``:

- ``agent``: the product agent's processor raises for product id ``boom`` (a bug in an agent);
- ``changelog``: every table change written for product id ``boom`` fails to reach the
  changelog (a lost state write, which must stop the worker);
- ``partition``: records about product id ``boom`` are sent to a partition their topic does not
  have, as when an output topic was auto-created with fewer partitions (the issue's crash:
  ``AssertionError: Unrecognized partition``); its changelog records too, as the outputs and
  the changelog share one sender;
- ``stuck``: as ``agent``, and from then on the producer's flush never returns, as when a
  record waits for a partition that never appears (in the issue aiokafka spun on metadata
  requests): Faust's stop then waits forever in "Wait for streams..." (its commit flushes
  first), and only stockflow's exit watchdog ends the process;
- ``stall``: the changelog records of the stock adjustment with id ``stall`` never leave the
  worker (nor does anything after them): the moment before a SIGKILL in which a batch is
  applied and its changelog records are not yet on the broker.

Nothing in ``src/`` knows about these faults: they are patched onto the app built here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from typing import Any

import stockflow
from stockflow._faust.changelog import check_delivery

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
    _routes = _handle.processor.routes
    _topic = _handle.settings.product_commands_topic
    _decide = _routes[_topic].handle

    def _faulty_decide(value: bytes, meta: Any) -> Any:
        if FAULTY_PRODUCT.encode() in (value or b""):
            if _fault == "stuck":
                _stick_flush()
            raise RuntimeError("injected fault: a bug in the product agent")
        return _decide(value, meta)

    _routes[_topic] = dataclasses.replace(_routes[_topic], handle=_faulty_decide)

elif _fault == "changelog":
    _changelog: Any = _handle.product_store.changelog
    _send = _changelog.send

    async def _faulty_send() -> None:
        failing = [r for r in _changelog._pending if FAULTY_PRODUCT.encode() in (r[2] or b"")]
        if failing:
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            future.set_exception(OSError("injected fault: the changelog write failed"))
            check_delivery(app, [("changelog", failing[0][1], future, 1)], "a changelog write")
        await _send()

    _changelog.send = _faulty_send

elif _fault == "stall":
    _stalled: Any = _handle.product_store.changelog
    _send_stalled = _stalled.send

    async def _stalling_send() -> None:
        if any(b":stall" in r[2] for r in _stalled._pending):
            logging.getLogger("faulty_app").warning("injected fault: holding the changelog")
            await asyncio.Event().wait()
        await _send_stalled()

    _stalled.send = _stalling_send

elif _fault == "partition":
    _sender: Any = _handle.processor.outputs.sender
    _produce = _sender.send

    async def _faulty_produce(records: Any, **options: Any) -> Any:
        wrong = FAULTY_PRODUCT.encode()
        return await _produce(
            (
                (topic, 99 if wrong in (value or b"") + (key or b"") else partition, key, value)
                for topic, partition, key, value in records
            ),
            **options,
        )

    _sender.send = _faulty_produce
