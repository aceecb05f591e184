"""Epochs: a changelog record written by a worker that had already lost its partition never
becomes a key's last word.

Without Kafka transactions (tansu has none) nothing on the broker stops a worker that the group
dropped from writing: one frozen past its session timeout (a long pause, a stalled VM,
``SIGSTOP``) wakes up and its produce request, made before the freeze, lands *after* the records
its successor wrote meanwhile. Taken in offset order, that late record rolls its keys back to an
older step while the inputs that moved them on are committed: measured in a soak, orders
answered twice and stock off by up to 6 units (docs/reliability.md, 2026-12-06).

So every changelog record stockflow writes carries its writer's *epoch* (a header,
:data:`EPOCH_HEADER`), and a changelog partition is read with :class:`Fence`: a record whose
epoch is below the highest one read before it in the same partition is skipped. A worker takes
its epoch for a partition when it starts writing it after a rebalance (:func:`next_epoch`): at
least the consumer group's generation, and above every epoch its restore of the partition read.
A successor therefore always writes a higher epoch than the worker it took over from, whose late
records are then skipped by every later reader: the restore, the standby replicas, the checks.

A record without the header (written before epochs, or by another tool) is always taken, as
before. The module is pure: the readers and the writer in :mod:`stockflow._faust` use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = [
    "EPOCH_HEADER",
    "Fence",
    "OwnOffsets",
    "epoch_header",
    "foreign_keys",
    "next_epoch",
    "record_epoch",
]

EPOCH_HEADER: Final = "stockflow-epoch"
"""The record header that carries a changelog record's epoch (ASCII digits)."""


def epoch_header(epoch: int) -> list[tuple[str, bytes]]:
    """The headers of a changelog record written in ``epoch``."""
    return [(EPOCH_HEADER, str(epoch).encode())]


def record_epoch(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None) -> int | None:
    """The epoch in a record's ``headers`` (aiokafka's pairs, or a mapping); ``None`` if it has
    none, or one that is not a non-negative integer (it is then taken as unfenced)."""
    if not headers:
        return None
    pairs: Iterable[tuple[str, Any]] = headers.items() if isinstance(headers, Mapping) else headers
    for name, raw in pairs:
        if name == EPOCH_HEADER:
            text = raw.decode("ascii", "replace") if isinstance(raw, bytes | bytearray) else raw
            return int(text) if isinstance(text, str) and text.isdigit() else None
    return None


def next_epoch(generation: int | None, highest: int | None, previous: int | None = None) -> int:
    """The epoch a worker writes a partition in after a rebalance: at least the group's
    ``generation`` (strictly above the last owner's when the coordinator counts rebalances as
    Kafka's does), above the ``highest`` epoch its restore read (also when the coordinator lost
    the group and counts again from 1), and never below the epoch it wrote the partition in
    ``previous``-ly."""
    return max(
        0 if generation is None or generation < 0 else generation,
        -1 if highest is None else highest + 1,
        0 if previous is None else previous,
    )


class Fence:
    """The highest epoch read so far, per partition, and whether a record is taken."""

    __slots__ = ("highest",)

    def __init__(self, highest: Mapping[int, int] | None = None) -> None:
        self.highest: dict[int, int] = dict(highest or {})

    def admit(self, partition: int, epoch: int | None) -> bool:
        """Whether a record of ``partition`` written in ``epoch`` is taken; read the
        partition's records in offset order. A record without an epoch is taken."""
        if epoch is None:
            return True
        highest = self.highest.get(partition)
        if highest is not None and epoch < highest:
            return False
        self.highest[partition] = epoch
        return True


class OwnOffsets:
    """Where one writer's acknowledged record batches lie in each changelog partition it
    writes, to notice records another writer put between two of them, or between where this
    writer's restore stopped reading and its first batch (a worker that had lost the
    partition). Readers skip those; a record that precedes every one of a higher epoch, or
    that a compacted changelog keeps instead of the owner's record of the same key, is mended
    only by the owner writing its keys again (:mod:`stockflow._faust.repairs`)."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[tuple[str, int], tuple[int, int]] = {}  # tp -> (base, end) of a batch

    def begin(self, tp: tuple[str, int], end: int) -> None:
        """This writer's view of ``tp`` holds its records below ``end`` (where its restore
        stopped reading): every record from there on is its own or foreign."""
        self._last[tp] = (end, end)

    def acknowledged(self, tp: tuple[str, int], base: int, count: int) -> tuple[int, int] | None:
        """A batch of ``count`` of this writer's records acknowledged at ``base`` (batches of a
        partition are acknowledged in order; a batch may be reported more than once, with the
        records it held each time). Returns the first and last offset of foreign records
        between it and the partition's batch before, if there are any."""
        end = base + count
        last = self._last.get(tp)
        if last is None:
            self._last[tp] = (base, end)
            return None
        last_base, last_end = last
        if base < last_base:  # a batch of a round before :meth:`begin`, acknowledged late
            return None
        if base == last_base:
            self._last[tp] = (base, max(end, last_end))
            return None
        self._last[tp] = (base, end)
        return (last_end, base - 1) if base > last_end else None

    def forget(self) -> None:
        """A rebalance: what other writers did before this worker's next batch is the
        restore's to read, not a sign of a late record."""
        self._last.clear()


def foreign_keys(
    records: Iterable[Any], first: int, last: int, epoch: int
) -> tuple[set[bytes], bool]:
    """The keys of ``records`` (aiokafka's, of one partition, in offset order) at offsets
    ``first..last`` written in an epoch below ``epoch`` (the reader's own) or in none, and
    whether ``last`` was reached. A record of a higher epoch is the reader's successor's: not
    the reader's to write again."""
    keys: set[bytes] = set()
    for record in records:
        offset = record.offset
        if offset > last:
            return keys, True
        if offset < first or record.key is None:
            continue
        written_in = record_epoch(record.headers)
        if written_in is None or written_in < epoch:
            keys.add(record.key)
        if offset == last:
            return keys, True
    return keys, False
