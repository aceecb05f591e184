"""The values a table store wrote to its databases lately, read without asking RocksDB.

Once a batch's changelog records are acknowledged, its writes leave the store's memory for
RocksDB (:meth:`stockflow.tables.store.TableStore.acknowledged`), and the next read of one of
those keys was a RocksDB read: at part load, where nearly every write is acknowledged before
the key is read again, ``TableStore.get`` was 16% of a worker's busy time (py-spy, 11,500
orders/s offered, spread: a product's counters, the ledger entry they name, an order's saga).
The bytes read back are also new objects, so the product writer's check that nothing wrote a
product since its last write (:class:`stockflow.processing.written.Written`, by identity) failed
and it decoded the counters and read their write-ahead key again.

:class:`RecentWrites` keeps the last acknowledged value of each key (the very object written;
``None`` for a delete) per partition, for as long as nothing but this store writes those
databases:

- a rebalance may restore a partition from the changelog (written by another worker meanwhile)
  or apply standby records to it: everything is dropped when the consumer generation or Faust's
  count of rebalances changes (both move before any partition is restored);
- writes that will never reach the changelog (:meth:`TableStore.unsent`) drop their partition;
- at most two windows of :data:`RECENT_CAP` values are kept: the older window is dropped when
  the newer is full (a cache, refilled by the next acknowledgements).
"""

from __future__ import annotations

from collections.abc import Mapping

from stockflow.tables.overlay import ABSENT

__all__ = ["RECENT_CAP", "RecentWrites"]

RECENT_CAP = 65_536
"""Values in the newer of the two windows at most (counted as written: a key written again
counts again); a value is kept for one to two windows, a few seconds of a worker's writes at
part load. Memory: 13.5 MiB for 65,800 values the size of ledger entries and sagas
(tracemalloc), so up to ~30 MiB per store with both windows full."""


class RecentWrites:
    """Acknowledged writes of one table store by partition, valid for one consumer generation.

    Two windows: acknowledged values go into the newer; when it holds :data:`RECENT_CAP`, it
    becomes the older and the older is dropped. A key written in the last window or the one
    before is found (a product's counters, read on every command for it, stay found as long as
    it sells within a window), and nothing is walked to evict."""

    __slots__ = ("_count", "_newer", "_older", "generation")

    def __init__(self) -> None:
        self._newer: dict[int, dict[bytes, bytes | None]] = {}
        self._older: dict[int, dict[bytes, bytes | None]] = {}
        self._count = 0
        self.generation: object = None
        """The consumer generation the values belong to (see :meth:`check`)."""

    def check(self, generation: object) -> None:
        """Drop everything if ``generation`` is not the one the values were written in."""
        if generation != self.generation:
            self.clear()
            self.generation = generation

    def find(self, partition: int, key: bytes) -> object:
        """The value of ``key`` in ``partition`` (``None``: deleted), or ``ABSENT`` when none is
        kept. Only after :meth:`check`."""
        newer = self._newer.get(partition)
        if newer is not None:
            value = newer.get(key, ABSENT)
            if value is not ABSENT:
                return value
        older = self._older.get(partition)
        return ABSENT if older is None else older.get(key, ABSENT)

    def add(self, partition: int, writes: Mapping[bytes, bytes | None]) -> None:
        """``writes`` (one sealed batch, its last value per key) are in the database now."""
        self._count += len(writes)
        if self._count > RECENT_CAP:
            # Each value is in the newer window or was written before any value of it.
            self._older, self._newer = self._newer, {}
            self._count = len(writes)
        held = self._newer.get(partition)
        if held is None:
            self._newer[partition] = dict(writes)
        else:
            held.update(writes)

    def drop(self, partition: int) -> None:
        self._newer.pop(partition, None)
        self._older.pop(partition, None)

    def clear(self) -> None:
        self._newer.clear()
        self._older.clear()
        self._count = 0
