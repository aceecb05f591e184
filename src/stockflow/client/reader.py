"""One consumer of ``reservations`` shared by every call of a :class:`stockflow.Client`.

The consumer has no group (it never moves a worker's offsets or joins a rebalance). It is
assigned every partition of the topic, all paused: a partition is read only once a call needs
it (its order ids hash to it), from that moment on.

Never missing an answer: a call registers its waiter and then asks :meth:`Reader.watch` for its
partition *before* it sends anything. ``watch`` puts the partition's position at or before the
end of the log as it is at that moment (ListOffsets; tansu's defect makes it report an earlier
offset, never a later one), so every record the call's request causes lies after the position.
Reading a few records twice is harmless: outcomes are matched by order id, and stockflow only
ever re-emits an *identical* outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from stockflow.errors import BrokerError
from stockflow.holes import HoleGuard
from stockflow.models import OUTPUT_EVENT_ADAPTER, OrderRejected, OrderReserved

__all__ = ["Reader", "Waiter"]

log = logging.getLogger(__name__)

Waiter = Callable[[object], bool]
"""Called with each event of its order id; returns True when it needs no more."""


class Reader:
    """Reads the partitions of ``topic`` that calls ask for and hands each event to the waiters
    of its order id. Keeps the outcome of every order id it was asked to ``track`` (the last
    ``max_tracked`` ids), so that an answer that came while nobody waited is not lost."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topic: str,
        *,
        max_tracked: int = 100_000,
        poll_ms: int = 100,
    ) -> None:
        self.consumer = consumer
        self.topic = topic
        self.max_tracked = max_tracked
        self.poll_ms = poll_ms
        self.partitions = 0
        self.outcomes: OrderedDict[str, OrderReserved | OrderRejected | None] = OrderedDict()
        self.waiters: dict[str, list[Waiter]] = {}
        self._watched: dict[int, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self.records_read = 0
        self._guard = HoleGuard(consumer.seek)
        """Not past a record a fetch skipped (:mod:`stockflow.holes`): an answer lost so waits
        out its call's timeout."""

    async def start(self, partitions: int) -> None:
        """Assign all ``partitions`` paused, each positioned at its current end."""
        self.partitions = partitions
        tps = [TopicPartition(self.topic, p) for p in range(partitions)]
        self.consumer.assign(tps)
        self.consumer.pause(*tps)
        ends = await self.consumer.end_offsets(tps)
        for tp in tps:
            self.consumer.seek(tp, ends[tp])
        self._task = asyncio.create_task(self._run(), name="stockflow-client-reader")

    async def stop(self) -> None:
        for task in [self._task, *self._watched.values()]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = None

    # --- interest ---------------------------------------------------------------------------

    def track(self, order_id: str) -> None:
        """Remember this order's outcome when it comes (bounded: the oldest id is dropped)."""
        if order_id in self.outcomes:
            self.outcomes.move_to_end(order_id)
            return
        self.outcomes[order_id] = None
        while len(self.outcomes) > self.max_tracked:
            self.outcomes.popitem(last=False)

    def outcome(self, order_id: str) -> OrderReserved | OrderRejected | None:
        return self.outcomes.get(order_id)

    def add(self, order_id: str, waiter: Waiter) -> None:
        self.waiters.setdefault(order_id, []).append(waiter)

    def remove(self, order_id: str, waiter: Waiter) -> None:
        waiters = self.waiters.get(order_id)
        if waiters and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self.waiters[order_id]

    async def watch(self, partition: int) -> None:
        """Start reading ``partition`` (from its current end) if it is not read yet; returns
        once the position is set, so that anything sent afterwards is seen."""
        self._raise_if_failed()
        task = self._watched.get(partition)
        if task is None:
            task = asyncio.create_task(self._resume(partition))
            self._watched[partition] = task
        # shield: one caller's timeout must not cancel the positioning other callers wait for
        await asyncio.shield(task)

    async def _resume(self, partition: int) -> None:
        tp = TopicPartition(self.topic, partition)
        try:
            end = (await self.consumer.end_offsets([tp]))[tp]
        except Exception:
            del self._watched[partition]  # the next call tries again
            raise
        self.consumer.seek(tp, end)
        self._guard.moved(tp, end)
        self.consumer.resume(tp)

    # --- reading ----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=self.poll_ms)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # aiokafka retries what it can; what reaches here is fatal to every waiter.
                log.error("stockflow client: reading %s failed: %s", self.topic, exc)
                self._error = exc
                self._fail_all(exc)
                return
            take = self._guard.take
            for tp, records in batches.items():
                for record in take(tp, records):
                    self.records_read += 1
                    self._dispatch(record)

    def _dispatch(self, record: Any) -> None:
        if record.key is None or record.value is None:
            return
        order_id = record.key.decode(errors="replace")
        waiting = order_id in self.waiters
        if not waiting and order_id not in self.outcomes:
            return  # somebody else's order: not even parsed
        try:
            event = OUTPUT_EVENT_ADAPTER.validate_json(record.value)
        except ValidationError:
            return  # a newer worker's event type, or another producer's: not ours to answer
        if getattr(event, "order_id", None) != order_id:
            return  # StockShortfall is keyed by product id
        if isinstance(event, OrderReserved | OrderRejected) and order_id in self.outcomes:
            self.outcomes[order_id] = event
        if waiting:
            for waiter in list(self.waiters.get(order_id, ())):
                if waiter(event):
                    self.remove(order_id, waiter)

    def _fail_all(self, exc: BaseException) -> None:
        error = BrokerError(f"reading {self.topic} failed: {exc}")
        for waiters in list(self.waiters.values()):
            for waiter in list(waiters):
                waiter(error)
        self.waiters.clear()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise BrokerError(f"reading {self.topic} failed: {self._error}")
