"""Offset holes: records a fetch skipped, fetched again.

A Kafka reader takes what a Fetch returns and moves on past its last record. On the embedded
broker (tansu 0.6) a fetch can skip records that are in the log: with several producers writing
one partition at once, a record becomes readable before an earlier offset that another producer
is still writing, and the fetch returns the later one without the earlier (measured: three
producers writing the same 4 partitions in batches of two records, a plain aiokafka reader missed
8 of 112,928 records, 1 of 48,896 with batches of one record, none with one producer; both as a
fetch starting past the offset asked for and as a hole inside one fetch). Such a reader never
sees those records again: the chaos suite's watcher took an order as undecided for 60 s whose
outcome was on the topic all along. On Apache Kafka a partition's records become readable in
offset order, and a hole means records that are not there (transaction markers, compaction).

:func:`first_hole` finds where a partition's fetched records stop following each other, and
:class:`HoleGuard` is the reader's side: it delivers records up to a hole, seeks back to it and
fetches again; a hole that :data:`REFETCHES` fetches from it still show, or whose next record
is older than :data:`FRESH_SECONDS`, is the log's own.
Both walk a fetch with :func:`up_to_hole`; the worker's consumer (stockflow._faust.consumer)
passes its own rule for a hole that is the log's own (one refetch, then passed).

Importing this module imports neither Faust nor aiokafka.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Protocol, TypeVar

__all__ = ["FRESH_SECONDS", "REFETCHES", "HoleGuard", "first_hole", "from_beginning", "up_to_hole"]

log = logging.getLogger(__name__)

REFETCHES = 2
"""How many times :class:`HoleGuard` fetches a hole again before it takes it for the log's own.
On tansu every hole the guarded probe met (6 in four runs of 60 s) was filled by the first
refetch. On Apache Kafka a hole is a transaction marker or compacted records, and each costs
this many extra fetches (a wait in time would cost every marker that long)."""


FRESH_SECONDS = 10.0
"""A hole whose next record was stamped longer ago than this is passed at once: a write still
in flight when that record was read is younger (tansu's race is milliseconds, on one machine).
A compacted topic read whole on Apache Kafka (``stockflow record --topics``) is mostly such
holes, and would otherwise cost :data:`REFETCHES` fetches each."""


class HasOffset(Protocol):
    @property
    def offset(self) -> int: ...


class Stamped(HasOffset, Protocol):
    @property
    def timestamp(self) -> int: ...


R = TypeVar("R", bound=Stamped)


def first_hole(records: Sequence[HasOffset], expected: int, begin: int = 0) -> int | None:
    """The index of the first record from ``begin`` on that is not where a run of offsets
    starting at ``expected`` puts it (``begin`` itself if that record is past ``expected``);
    ``None`` if there is none.
    Offsets within a fetched partition only grow, so a whole fetch without a hole is told by its
    two ends (no loop for the usual fetch)."""
    count = len(records) - begin
    if count <= 0:
        return None
    if records[begin].offset == expected and records[-1].offset - expected == count - 1:
        return None
    for index in range(begin, len(records)):
        if records[index].offset != expected:
            return index
        expected += 1
    return None  # pragma: no cover - the ends above said there is a hole


H = TypeVar("H", bound=HasOffset)


def up_to_hole(
    tp: Hashable, records: Sequence[H], expected: int, passed: Callable[[int, H], bool]
) -> tuple[int, int | None]:
    """``(count, missing)``: how many of ``records`` (the first at ``expected`` or later) follow
    on without a hole, and the offset of the first hole ``passed(missing, record after it)`` does
    not take for the log's own (``None``: there is none, deliver them all). A hole passed is
    logged. The one walk of both guards: the readers' (:class:`HoleGuard`) and the worker's
    (``stockflow._faust.consumer``), which differ only in when a hole is the log's own."""
    begin = 0
    while (cut := first_hole(records, expected, begin)) is not None:
        missing = expected + cut - begin  # the records from begin up to cut follow on
        after = records[cut]
        if not passed(missing, after):
            return cut, missing
        log.info("offsets %d..%d of %s are not in the log", missing, after.offset - 1, tp)
        begin, expected = cut, after.offset
    return len(records), None


async def from_beginning(consumer: Any, tps: Sequence[Any]) -> HoleGuard:
    """Seek ``consumer`` (an aiokafka consumer without a group, ``tps`` assigned) to the start
    of each partition's log, and return the guard for reading on from there."""
    guard = HoleGuard(consumer.seek)
    for tp, offset in (await consumer.beginning_offsets(tps)).items():
        consumer.seek(tp, offset)
        guard.moved(tp, offset)
    return guard


class HoleGuard:
    """Per partition, the next offset to deliver; :meth:`take` keeps a reader from moving past
    records a fetch skipped. ``seek(tp, offset)`` is the consumer's (aiokafka
    ``AIOKafkaConsumer.seek``); records carry ``offset`` and ``timestamp`` (ms), as aiokafka's
    do. ``clock`` (epoch seconds) is for tests."""

    def __init__(
        self,
        seek: Callable[[Any, int], None],
        *,
        refetches: int = REFETCHES,
        fresh: float = FRESH_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._seek = seek
        self._refetches = refetches
        self._fresh_ms = fresh * 1000
        self._clock = clock
        self._next: dict[Hashable, int] = {}
        self._holes: dict[Hashable, tuple[int, int]] = {}
        """Per partition, the hole being fetched again: its offset and how often it was seen."""
        self.refetched = 0
        self.passed = 0
        """Holes fetched again (each time), and holes taken for the log's own."""

    def moved(self, tp: Hashable, offset: int | None) -> None:
        """The reader sought ``tp`` to ``offset`` (``None``: forget the partition)."""
        self._holes.pop(tp, None)
        if offset is None:
            self._next.pop(tp, None)
        else:
            self._next[tp] = offset

    def take(self, tp: Hashable, records: Sequence[R]) -> Sequence[R]:
        """The records of one fetch of ``tp`` to deliver: from the next offset (records before
        it were delivered already) up to the first hole, after which the partition is sought
        back to the hole."""
        if not records:
            return records
        expected = self._next.get(tp)
        if expected is None:
            expected = records[0].offset
        elif records[0].offset < expected:
            records = [record for record in records if record.offset >= expected]
            if not records:
                return records
        count, missing = up_to_hole(
            tp, records, expected, lambda hole, after: self._passed(tp, hole, after)
        )
        if missing is not None:
            self.refetched += 1
            records = records[:count]
            self._seek(tp, missing)
        if records:
            self._next[tp] = records[-1].offset + 1
            hole = self._holes.get(tp)
            if hole is not None and hole[0] < self._next[tp]:
                del self._holes[tp]  # filled
        return records

    def _passed(self, tp: Hashable, missing: int, after: Stamped) -> bool:
        """Whether the hole at ``missing`` is the log's own: the record after it is older than
        any write in flight, or :data:`REFETCHES` fetches from it showed it already."""
        offset, seen = self._holes.get(tp, (missing, 0))
        seen = seen + 1 if offset == missing else 1
        fresh = after.timestamp > self._clock() * 1000 - self._fresh_ms
        if fresh and seen <= self._refetches:
            self._holes[tp] = (missing, seen)
            return False
        self.passed += 1
        self._holes.pop(tp, None)
        return True
