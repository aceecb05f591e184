"""Product commands applied in the worker that published them, once the broker has them.

A multi-line order crosses the broker three times where the pipe's crosses twice: the desk's
line commands, the product writers' answers (applied in process since
:mod:`stockflow._faust.answers`), the desk's outcome. The second crossing waits for a fetch of
the product-command partition, and tansu answers a fetch that finds no data only when it
checks again, at half the remaining wait (BROKER.md). When that partition is active in the
worker whose desk published the command, the consumer applies the command record as soon as
the broker acknowledges it (:class:`~stockflow._faust.consumer.BatchConsumer`), instead of
waiting for the fetch to bring it back (docs/benchmarks.md).

Why it keeps every guarantee: the record is processed as its fetched copy would be.

- The same record: the same bytes and key (:class:`Published` keeps them), the same offset
  (the acknowledged record batch's base offset and the record's place in it), and the same
  timestamp, which the publisher stamps itself (the broker keeps a producer's timestamps; a
  topic that stamps its own, ``LogAppendTime``, says so in the acknowledgement, and then
  nothing is applied here). The decision, its ledger position and its clock are the same.
- In log order only: a partition's acknowledged records are applied only from the next offset
  the consumer would deliver (every earlier record of the partition processed), and only as
  far as they follow on without a gap (:meth:`CommandsHere.take`). Any other waits for the
  fetch, as before; a record already processed is dropped.
- Through the fetch's own path, one batch at a time with the fetched ones: the same
  membership, rebalance and active-partition checks, the same offsets counted for the commit
  after the same handover to the producer. The fetched copy is then behind the consumer's
  read offset and dropped as delivered already. A rebalance forgets everything waiting here.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["CommandsHere", "Published"]


class _Positioned(Protocol):
    @property
    def offset(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Published:
    """A product command record a processed batch published: its ``delivery`` resolves to
    its record batch's metadata once the broker has it; the record is the batch's ``count``-th
    (so at ``offset + count - 1``)."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes
    timestamp: int
    delivery: Any  # asyncio.Future[RecordMetadata]
    count: int

    def offset(self) -> int | None:
        """The record's offset once the broker has acknowledged it; ``None`` if it did not
        (lost), or if it stamped its own timestamp on the record (``LogAppendTime``)."""
        delivery = self.delivery
        if not delivery.done() or delivery.cancelled() or delivery.exception() is not None:
            return None
        metadata = delivery.result()
        if metadata is None or metadata.offset is None or metadata.timestamp_type != 0:
            return None
        return int(metadata.offset) + self.count - 1


class CommandsHere:
    """Acknowledged command records waiting to be applied here, by partition, each with the
    consumer round (generation and revocations) in which it was published."""

    __slots__ = ("_waiting", "applied", "dropped")

    def __init__(self) -> None:
        self._waiting: dict[Hashable, list[tuple[object, _Positioned]]] = {}
        self.applied = 0
        """Records applied here, in all."""
        self.dropped = 0
        """Acknowledged records left to the fetch (not next in their partition, or a rebalance
        came in between), in all."""

    def __len__(self) -> int:
        return sum(len(records) for records in self._waiting.values())

    def add(self, tp: Hashable, record: _Positioned, round_: object) -> None:
        """``record`` of ``tp`` was acknowledged; it was published in consumer round
        ``round_``."""
        self._waiting.setdefault(tp, []).append((round_, record))

    def take(
        self, next_offset: Callable[[Hashable], int | None], round_: object
    ) -> list[tuple[Hashable, list[_Positioned]]]:
        """The waiting records to apply now, by partition in offset order: those published in
        ``round_`` that follow on from ``next_offset(tp)`` (the next offset the consumer would
        deliver; ``None``: not known, so none) without a gap. Everything is forgotten: a
        record not taken is left to the fetch."""
        waiting, self._waiting = self._waiting, {}
        ready: list[tuple[Hashable, list[_Positioned]]] = []
        for tp, entries in waiting.items():
            expected = next_offset(tp)
            run: list[_Positioned] = []
            if expected is not None:
                for record in sorted(
                    (record for published_in, record in entries if published_in == round_),
                    key=_offset,
                ):
                    if record.offset < expected:
                        continue  # processed already (fetched first)
                    if record.offset > expected:
                        break  # a record in between is not processed yet: the fetch's
                    run.append(record)
                    expected += 1
            self.dropped += len(entries) - len(run)
            if run:
                self.applied += len(run)
                ready.append((tp, run))
        return ready

    def clear(self) -> None:
        """Forget every waiting record (a rebalance began): the fetch brings them."""
        for entries in self._waiting.values():
            self.dropped += len(entries)
        self._waiting.clear()


def _offset(record: _Positioned) -> int:
    return record.offset
