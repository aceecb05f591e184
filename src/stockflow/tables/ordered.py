"""Reads of a :class:`~stockflow.tables.store.TableStore` in key order: a prefix scan and the
first key of a prefix (the timer scheduler's earliest deadline), over the partition's database
and the writes it does not hold yet.

A partition's writes wait for their changelog acknowledgements before they reach RocksDB
(``stockflow.tables.store``): an ordered read merges them over the database's range, newest
first, so it sees what a point read sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, TypeGuard, cast

from stockflow.keys import TIMER_KEYS
from stockflow.tables.overlay import ABSENT, newest_held, overlaid

if TYPE_CHECKING:
    from stockflow.tables.protocols import (
        FaustTable,
        MemoryTableData,
        RawValue,
        RocksDBTableData,
        TableData,
    )

__all__ = ["TIMERS_RAW", "OrderedReads", "as_bytes"]

TIMERS_RAW = TIMER_KEYS.encode()
"""The timer keys' prefix, as stored."""
_NO_TIMERS = b"t;"
"""A floor above every timer key (``;`` follows ``:``): no timer write is held back."""


class OrderedReads:
    """The ordered reads and the store kind checks of :class:`TableStore`, its base."""

    table: FaustTable
    _partition: int | None
    _pending: dict[bytes, bytes | None]
    _unacked: dict[int, dict[bytes, bytes | None]]
    _timer_floor: dict[int, bytes]
    _partition_dbs: bool | None
    _rocksdict: bool | None

    def _rocksdb(self, data: TableData) -> TypeGuard[RocksDBTableData]:
        """Whether ``data`` (this table's store) is Faust's RocksDB store: one database per
        partition, written and read directly. Else it is the memory store."""
        if self._partition_dbs is None:
            self._partition_dbs = hasattr(data, "_db_for_partition")
        return self._partition_dbs

    def _gathering(self, data: TableData) -> bool:
        """RocksDB through rocksdict (Faust's default binding): writes wait in ``_pending``."""
        if self._rocksdict is None:
            self._rocksdict = self._rocksdb(data) and bool(getattr(data, "use_rocksdict", False))
        return self._rocksdict

    def scan(
        self, prefix: str, *, partition: int, start: str | None = None
    ) -> Iterator[tuple[str, bytes]]:
        """Keys with ``prefix`` in one partition, ascending. Only for partitions this worker
        holds (actively or as standby)."""
        store = self.table.data
        first = max(prefix, start or prefix)
        if self._rocksdb(store):  # RocksDB: an ordered range read
            db = store._db_for_partition(partition)
            wanted, low = prefix.encode(), first.encode()
            stored = ((key, value) for key, value in db.items(from_key=low))
            changed = self._changes(partition, wanted, low)
            for raw_key, value in overlaid(stored, changed) if changed else stored:
                if not raw_key.startswith(wanted):
                    return
                yield raw_key.decode(), value
            return
        # Memory store: a dictionary; sort the matching keys (memory:// is for tests and demos).
        data = cast("MemoryTableData", store).data
        matching = sorted(
            key_str
            for key_str in (_as_str(key) for key in list(data))
            if key_str.startswith(prefix) and key_str >= first
        )
        for key_str in matching:
            found = data.get(key_str)
            if found is None:
                found = data.get(key_str.encode())
            if found is not None:
                yield key_str, as_bytes(found)

    def first_key(self, prefix: str, *, partition: int) -> str | None:
        """The smallest key with ``prefix`` in ``partition``: the first item of :meth:`scan`.

        For timer prefixes (the scheduler asks for every partition's first timer twice a
        second) the writes not in the database yet are not walked while
        :attr:`_timer_floor` answers: the database's first key that those writes do not
        delete is the answer if the floor is not below it; else the floor is, if it is a
        live key of the prefix. Otherwise the walk also sets the floor exactly."""
        data = self.table.data
        if not (prefix.startswith(TIMER_KEYS) and self._gathering(data) and self._rocksdb(data)):
            return next((key for key, _value in self.scan(prefix, partition=partition)), None)
        wanted = prefix.encode()
        layers = self._layers(partition)
        stored = self._first_stored(data, partition, wanted, layers)
        floor = self._timer_floor.get(partition)
        if floor is not None:
            if stored is not None and floor >= stored:
                return stored.decode()  # every newer timer key is at or above the floor
            if floor.startswith(wanted):
                value = newest_held(layers, floor)
                if value is not None and value is not ABSENT:
                    return floor.decode()  # live, and no newer timer key is below it
            elif floor > wanted:  # past every key of the prefix: none of them is newer
                return None if stored is None else stored.decode()
        newest: dict[bytes, bytes | None] = {}
        for layer in layers:
            for key, value in layer.items():
                if key.startswith(TIMERS_RAW):
                    newest[key] = value
        live = [key for key, value in newest.items() if value is not None]
        self._timer_floor[partition] = min(live, default=_NO_TIMERS)
        first = min((key for key in live if key.startswith(wanted)), default=None)
        if stored is not None and (first is None or stored < first):
            first = stored
        return None if first is None else first.decode()

    def _layers(self, partition: int) -> list[dict[bytes, bytes | None]]:
        """The partition's writes not in its database yet, oldest first."""
        layers = []
        unacked = self._unacked.get(partition)
        if unacked:
            layers.append(unacked)
        if partition == self._partition and self._pending:
            layers.append(self._pending)
        return layers

    @staticmethod
    def _first_stored(
        data: RocksDBTableData,
        partition: int,
        wanted: bytes,
        layers: list[dict[bytes, bytes | None]],
    ) -> bytes | None:
        """The database's first key with prefix ``wanted`` that ``layers`` do not delete."""
        for key in data._db_for_partition(partition).keys(from_key=wanted):
            if not key.startswith(wanted):
                return None
            if newest_held(layers, key) is not None:  # a newer value, or none at all (ABSENT)
                return key
        return None

    def _changes(self, partition: int, wanted: bytes, low: bytes) -> dict[bytes, bytes | None]:
        """The writes of ``partition`` not in its database yet, of keys with prefix ``wanted``
        from ``low`` on."""
        changed: dict[bytes, bytes | None] = {}
        for layer in self._layers(partition):
            for key, value in layer.items():
                if key >= low and key.startswith(wanted):
                    changed[key] = value
        return changed


def _as_str(key: object) -> str:
    return key.decode() if isinstance(key, bytes | bytearray) else str(key)


def as_bytes(value: RawValue) -> bytes:
    """A stored value as bytes (the memory store may hold text from older writers)."""
    return value.encode() if isinstance(value, str) else bytes(value)
