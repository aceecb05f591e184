"""The batch consumer's side of :mod:`stockflow._faust.commands_here`: the product commands a
batch published to a partition active here, applied once the broker acknowledges them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol, cast

from faust.types import TP

from stockflow._faust.batches import BatchProcessor, Record
from stockflow._faust.commands_here import Published
from stockflow._faust.membership import MembershipLease

__all__ = ["AppliedHere", "Consumer"]

Batches = list[tuple[TP, Sequence[Any]]]


class Consumer(Protocol):
    """What is used of :class:`~stockflow._faust.consumer.BatchConsumer` (Faust's consumer
    state, and its one-batch-at-a-time chain)."""

    @property
    def app(self) -> Any: ...
    @property
    def membership(self) -> MembershipLease: ...
    @property
    def _active_partitions(self) -> set[TP] | None: ...
    @property
    def _read_offset(self) -> Mapping[TP, int | None]: ...
    @property
    def _revocations(self) -> int: ...
    @property
    def _holding(self) -> bool: ...
    @property
    def flow_active(self) -> bool: ...
    @property
    def should_stop(self) -> bool: ...
    def _chained(self, work: Callable[[], Awaitable[None]]) -> asyncio.Future[None]: ...
    async def _process(
        self,
        processor: BatchProcessor,
        batches: Batches,
        generation: int,
        revocations: int,
        *,
        fetched: bool = True,
    ) -> None: ...


class AppliedHere:
    """Applies the acknowledged command records of ``consumer``'s batches as their fetch
    would, one batch at a time with the fetched ones (``BatchConsumer._chained``)."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self._started = False
        self._since_fetch: dict[TP, int] = {}
        """Per partition, where the records applied here since the last fetch was taken end:
        that fetch's batch drops what it has before it (:meth:`undelivered`)."""

    def published(
        self, processor: BatchProcessor, round_: tuple[int, int]
    ) -> Callable[[list[Published]], None] | None:
        """What to do with the product command records a batch of consumer round ``round_``
        (generation, revocations) published: those of a partition active here are applied
        once acknowledged. ``None``: nothing (``processor.commands`` is off)."""
        if processor.commands is None:
            return None

        def published(records: list[Published]) -> None:
            partitions = self.consumer._active_partitions
            if partitions is None:
                return
            for record in records:
                if TP(record.topic, record.partition) in partitions:
                    record.delivery.add_done_callback(
                        partial(self._acknowledged, processor, round_, record)
                    )

        return published

    def _acknowledged(
        self,
        processor: BatchProcessor,
        round_: tuple[int, int],
        published: Published,
        _delivery: Any,
    ) -> None:
        here = processor.here
        offset = published.offset()
        if offset is None:  # lost, or stamped by the broker: the fetch decides
            here.dropped += 1
            return
        record = Record(
            published.topic, offset, published.timestamp, published.key, published.value
        )
        here.add(TP(published.topic, published.partition), record, round_)
        if not self._started:
            # One batch for every record acknowledged until it starts (one produce response
            # acknowledges the partitions of a request together).
            self._started = True
            self.consumer._chained(lambda: self._apply(processor))

    async def _apply(self, processor: BatchProcessor) -> None:
        """The acknowledged command records that are next in their partitions, applied as
        their fetch would apply them."""
        self._started = False
        consumer = self.consumer
        generation, revocations = round_ = (
            consumer.app.consumer_generation_id,
            consumer._revocations,
        )
        partitions = consumer._active_partitions
        if (
            partitions is None
            or not consumer.flow_active
            or consumer.should_stop
            or consumer._holding
            or not consumer.membership.holds()
        ):
            processor.here.clear()
            return
        read_offset = consumer._read_offset

        def next_offset(tp: Hashable) -> int | None:
            return read_offset.get(tp) if tp in partitions else None

        ready = cast("Batches", processor.here.take(next_offset, round_))
        if ready:
            await consumer._process(processor, ready, generation, revocations, fetched=False)

    def applied(self, tp: TP, end: int) -> None:
        """Records of ``tp`` up to ``end`` (exclusive) were applied here."""
        self._since_fetch[tp] = end

    def fetch_taken(self) -> None:
        """A fetch's records were taken: from now on, what is applied here its batch skips."""
        self._since_fetch = {}

    def undelivered(self, batches: Batches) -> Batches:
        """``batches`` (of the last fetch taken) without the records applied here since."""
        applied = self._since_fetch
        if not applied:
            return batches
        kept: Batches = []
        for tp, batch in batches:
            start = applied.get(tp)
            if start is not None and batch[0].offset < start:
                batch = [record for record in batch if record.offset >= start]
                if not batch:
                    continue
            kept.append((tp, batch))
        return kept
