"""Faust's consumer "thread" run as tasks of the main event loop.

Faust runs aiokafka's consumer in a thread of its own with its own event loop: every fetch,
commit and seek crosses between the loops through mode's method queue (three loop hops and a
future per call), and the two threads contend for the GIL at every socket operation (measured:
most of the consumer thread's busy samples wait for the GIL; docs/benchmarks.md, "Where the p50
goes, hop by hop"). :class:`InlineConsumerThread` keeps Faust's consumer-thread class, with
its rebalance listener and its calls, and runs its service on the main loop instead
(``STOCKFLOW_CONSUMER_THREAD=false``; docs/design-consumer-on-main-loop.md has the reading
behind each override).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mode import Service
from mode.utils.futures import maybe_async

from stockflow._faust.transport import TunedConsumerThread

__all__ = ["InlineConsumerThread"]

log = logging.getLogger(__name__)

STOP_TIMEOUT = 30.0
"""Seconds a stop waits for the consumer's service task (it leaves the group first)."""


class InlineConsumerThread(TunedConsumerThread):
    """:class:`TunedConsumerThread` without a thread: its loop is the main loop."""

    def __init__(self, consumer: Any, *, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        super().__init__(consumer, loop=loop, thread_loop=loop, **kwargs)
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # mode's ServiceThread.start runs _serve in a new thread's run_until_complete.
        assert not self._thread_started.is_set()
        self._thread_started.set()
        running = self._thread_running = self.parent_loop.create_future()
        self._serving = self.parent_loop.create_task(self._serve())
        self._serving.add_done_callback(_retrieve)
        try:
            await running  # set by _serve once started, or to the error it failed with
        finally:
            self._thread_running = None

    async def stop(self) -> None:
        # mode's ServiceThread.stop joins the thread, blocking the loop _serve needs.
        if not self._started.is_set():
            return
        await Service.stop(self)
        task = self._serving
        if task is not None and not task.done():
            done, _pending = await asyncio.wait({task}, timeout=STOP_TIMEOUT)
            if not done:
                log.warning("the consumer did not stop within %.0f s", STOP_TIMEOUT)
                task.cancel()

    async def on_thread_started(self) -> None:
        """No method queue: calls are made directly (:meth:`call_thread`)."""

    async def _gather_remaining_tasks(self) -> None:
        """mode cancels every task left on the thread's loop: here that is the main loop."""

    async def call_thread(
        self, fun: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> Any:
        return await maybe_async(fun(*args, **kwargs))

    async def cast_thread(
        self, fun: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> None:
        await maybe_async(fun(*args, **kwargs))


def _retrieve(task: asyncio.Task[None]) -> None:
    # _serve has already crashed the service (and with it the worker) with its error.
    if not task.cancelled() and task.exception() is not None:
        log.debug("the consumer's service ended with %r", task.exception())
