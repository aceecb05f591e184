"""A Faust table seen through the :class:`stockflow.processing.StateStore` interface.

Writes (``put``/``delete``) happen only while the batch processor applies a record of the
table's partition (:attr:`TableStore.partition`): each goes to that partition's local store and
changelog, as Faust requires of table writes. Reads and scans are allowed anywhere (the timer
scheduler and the web server read between batches).

**The local RocksDB store never runs ahead of the changelog.** A partition's writes reach its
database only once the broker has acknowledged their changelog records, in one ``WriteBatch``
that also moves the partition's persisted offset (where a restart's restore begins); until
then they are held in memory, and every read and scan of this worker sees them. Written at
once, a SIGKILL left writes in the database that never reached the changelog, above the
persisted offset: the restarted worker kept them, and when it processed the uncommitted records
again it took them as already applied (a stock adjustment's marker, a reservation's ledger
entry) and wrote nothing. The next owner of the partition restored from the changelog without
them and never saw those records again: 4 units of stock went missing in a takeover soak, and
a lost reservation or a re-applied adjustment would oversell.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, TypeGuard, cast

from rocksdict import WriteBatch

from stockflow._faust.app_state import rebalance_round
from stockflow._faust.changelog import ChangelogWriter
from stockflow._faust.epochs import mark_position
from stockflow.errors import StockflowError
from stockflow.keys import TIMER_KEYS
from stockflow.tables.overlay import ABSENT, newest_held, overlaid
from stockflow.tables.recent import RecentWrites

if TYPE_CHECKING:
    from stockflow.tables.protocols import (
        FaustTable,
        MemoryTableData,
        PartitionDB,
        RawValue,
        RocksDBTableData,
        TableData,
    )

__all__ = ["TableStore"]


class TableStore:
    """Adapts one Faust table with raw (bytes) keys and values."""

    def __init__(self, table: FaustTable, changelog: ChangelogWriter) -> None:
        self.table = table
        self.changelog = changelog
        self._partition_dbs: bool | None = None  # known once the table's store exists
        self._rocksdict: bool | None = None
        self._dbs: dict[int, PartitionDB] | None = None
        """The RocksDB store's open databases by partition, once found (:meth:`_databases`)."""
        self._partition: int | None = None
        self._pending: dict[bytes, bytes | None] = {}
        """RocksDB writes of the partition being applied (``None``: a delete). A RocksDB put
        from Python costs ~2.6 us; the same writes gathered here and written as one
        ``WriteBatch`` cost ~1 us each, and a key written several times in one batch (a hot
        product's counters) is written once."""
        self._unacked: dict[int, dict[bytes, bytes | None]] = {}
        """Per partition, the writes of earlier batches whose changelog records the broker has
        not acknowledged yet (their last value per key): read before the database."""
        self._writers: dict[int, dict[bytes, dict[bytes, bytes | None]]] = {}
        """Per partition, the sealed batch that wrote each key of ``_unacked`` last."""
        self._recent = RecentWrites()
        """Acknowledged writes, read before the database (:mod:`stockflow.tables.recent`)."""
        self._app = getattr(table, "app", None)  # its rebalances end what _recent holds
        self._timer_floor: dict[int, bytes] = {}
        """Per partition, a key no greater than any timer key ``_pending`` and ``_unacked``
        hold a value for (absent: none known yet). Puts lower it, nothing raises it but a walk
        of those writes in :meth:`first_key`; it lets the scheduler's earliest-timer lookup
        skip that walk, which at a worker's maximum covered 100,000+ unacknowledged writes
        twice a second (22-27 ms each time)."""

    @property
    def partition(self) -> int | None:
        """The partition whose records are being applied; ``None`` between them. Set by
        :class:`stockflow._faust.batches.BatchProcessor` only. Setting it (to another partition
        or ``None``) first writes the previous partition's gathered writes to RocksDB, so
        nothing outside a partition's records ever sees its database without them."""
        return self._partition

    @partition.setter
    def partition(self, partition: int | None) -> None:
        if self._pending:
            self._seal()
        if partition is not None:
            self._recent.check(self._generation())
        self._partition = partition

    def _generation(self) -> object:
        return rebalance_round(self._app)

    def _seal(self) -> None:
        """The partition's records are done: its writes wait for their changelog records'
        acknowledgement (:meth:`acknowledged`), read from ``_unacked`` meanwhile."""
        pending, self._pending = self._pending, {}
        partition = self._partition
        assert partition is not None, "writes gathered outside a batch"
        unacked = self._unacked.get(partition)
        # Each key's last writer is this batch now: its acknowledgement may drop the key from
        # the unacknowledged writes, an earlier batch's may not (see acknowledged).
        writers = dict.fromkeys(pending, pending)
        if unacked is None:
            self._unacked[partition] = dict(pending)
            self._writers[partition] = writers
        else:
            unacked.update(pending)
            self._writers[partition].update(writers)
        self.changelog.seal(self, partition, pending)

    def acknowledged(
        self,
        partition: int,
        writes: list[dict[bytes, bytes | None]],
        offset: int | None,
        epoch: int | None = None,
    ) -> None:
        """The changelog records of ``writes`` (sealed batches of ``partition``, in order) are
        on the broker, the last at ``offset``, written in ``epoch``: write them to the database
        in one ``WriteBatch`` with :func:`~stockflow._faust.epochs.mark_position`. Called by
        the ChangelogWriter."""
        data = self.table.data
        assert self._rocksdb(data)
        batch = WriteBatch(raw_mode=True)
        put, delete = batch.put, batch.delete
        unacked = self._unacked.get(partition) or {}
        writers = self._writers.get(partition) or {}
        writer = writers.get
        # One pass; nothing runs between it and the write below, so no read sees the gap.
        for sealed in writes:
            for key, value in sealed.items():
                if value is None:
                    delete(key)
                else:
                    put(key, value)
                # No later batch wrote the key: the database will say what it holds. (Asked of
                # the batch, not the value: a value object can be written again by a later
                # batch, b"" or a constant, after a delete in between.)
                if writer(key) is sealed:
                    del unacked[key]
                    del writers[key]
        mark_position(put, data.offset_key, offset, epoch)
        data._db_for_partition(partition).write(batch)
        if not unacked:
            self._unacked.pop(partition, None)
            self._writers.pop(partition, None)
        recent = self._recent
        recent.check(self._generation())
        for sealed in writes:
            recent.add(partition, sealed)

    def unsent(self, partition: int) -> None:
        """The changelog records of ``partition``'s waiting writes will never be on the broker
        (:class:`~stockflow._faust.membership.MembershipLost`): they are dropped, and reads of
        the partition show the database again, as the changelog does."""
        self._unacked.pop(partition, None)
        self._writers.pop(partition, None)
        self._recent.drop(partition)

    def current(self, partition: int, key: bytes) -> bytes | None:
        """The value this worker holds for raw ``key`` of ``partition``: its last write,
        acknowledged or not (what a key written again carries, ``stockflow._faust.repairs``)."""
        if partition == self._partition and key in self._pending:
            return self._pending[key]
        unacked = self._unacked.get(partition)
        if unacked and key in unacked:
            return unacked[key]
        self._recent.check(self._generation())
        found = self._recent.find(partition, key)
        if found is not ABSENT:
            return cast("bytes | None", found)
        data = self.table.data
        value: RawValue | None
        if self._rocksdb(data):
            value = data._db_for_partition(partition).get(key)
        else:
            value = self.table.get(key)
        return value if value is None or isinstance(value, bytes) else _as_bytes(value)

    @property
    def unacknowledged(self) -> int:
        """Keys written whose changelog records are not acknowledged yet (all partitions)."""
        return len(self._pending) + sum(len(writes) for writes in self._unacked.values())

    # Keys go to Faust as bytes: a restored changelog gives the memory store bytes keys, so a
    # str key written live would never find a restored one (state "lost" at every restore).

    def get(self, key: str) -> bytes | None:
        raw = key.encode()
        partition = self._partition
        value: RawValue | None
        dbs = self._dbs
        if dbs is None and partition is not None:
            dbs = self._databases()  # None: the memory store
        if partition is not None and dbs is not None:
            pending = self._pending
            if raw in pending:
                return pending[raw]
            unacked = self._unacked.get(partition)
            if unacked and raw in unacked:
                return unacked[raw]
            # Checked against the consumer generation when the partition was set.
            found = self._recent.find(partition, raw)
            if found is not ABSENT:
                return cast("bytes | None", found)
            # The partition's own database, without the second read of Table.get (it asks
            # ``key in table`` first) and without Faust's search of every partition.
            db = dbs.get(partition)
            if db is None:  # not open yet: Faust opens it
                data = self.table.data
                assert self._rocksdb(data)
                db = data._db_for_partition(partition)
            value = db.get(raw)
        else:
            for unacked in self._unacked.values():  # a key lives in one partition
                if raw in unacked:
                    return unacked[raw]
            value = self.table.get(raw)
        if value is None or isinstance(value, bytes):
            return value
        return _as_bytes(value)

    # Writes go to the local store here and to the changelog through ``changelog`` (sent at the
    # end of the agent's batch), instead of Faust's per-key path (``table[key] = value``).

    def put(self, key: str, value: bytes) -> None:
        raw = key.encode()
        self.changelog.add(self.table, self._put(raw, value), raw, value)

    def put_shared(self, key: str, value: bytes) -> None:
        """As :meth:`put`; the batch's changelog keeps one record of ``key``: its last value,
        where it was first written (:meth:`ChangelogWriter.share`)."""
        raw = key.encode()
        self.changelog.share(self.table, self._put(raw, value), raw, value)

    def _put(self, raw: bytes, value: bytes) -> int:
        """Writes ``raw`` locally; returns the partition, whose changelog the caller writes."""
        partition = self._partition
        if partition is None:
            partition = self._writing()  # raises
        # Once known to gather, without asking the table for its store (a property) again.
        if self._rocksdict or self._gathering(self.table.data):
            self._pending[raw] = value
            if raw.startswith(_TIMERS):
                floor = self._timer_floor.get(partition)
                if floor is not None and raw < floor:
                    self._timer_floor[partition] = raw
            return partition
        data = self.table.data
        if self._rocksdb(data):
            data._db_for_partition(partition).put(raw, value)
        else:
            data[raw] = value
        return partition

    def delete(self, key: str) -> None:
        raw = key.encode()
        partition = self._writing()
        data = self.table.data
        if self._gathering(data):
            self._pending[raw] = None
        elif self._rocksdb(data):
            data._db_for_partition(partition).delete(raw)
        else:
            with contextlib.suppress(KeyError):  # already gone: deletes are idempotent
                del data[raw]
        self.changelog.add(self.table, partition, raw, None)

    def _writing(self) -> int:
        """The partition of the record being applied: its table partition and changelog
        partition (Faust forbids table writes outside a stream for the same reason)."""
        partition = self._partition
        if partition is None:
            raise StockflowError("a table was written outside of the processing of a record")
        return partition

    def _rocksdb(self, data: TableData) -> TypeGuard[RocksDBTableData]:
        """Whether ``data`` (this table's store) is Faust's RocksDB store: one database per
        partition, written and read directly. Else it is the memory store."""
        if self._partition_dbs is None:
            self._partition_dbs = hasattr(data, "_db_for_partition")
        return self._partition_dbs

    def _databases(self) -> dict[int, PartitionDB] | None:
        """The RocksDB store's open partition databases, or ``None`` (the memory store).

        Faust's store keeps them in one dict for its whole life (``_dbs``: filled by
        ``_db_for_partition``, entries removed when a partition is revoked), so it is found
        once: a read then calls neither the table's ``data`` property, nor :meth:`_rocksdb`,
        nor ``_db_for_partition`` (three Python calls for each of ~5 reads an order). A store
        without that dict (a test's) gets an empty one: every read asks the store."""
        data = self.table.data
        if not self._rocksdb(data):
            return None
        dbs = getattr(data, "_dbs", None)
        self._dbs = dbs if isinstance(dbs, dict) else {}
        return self._dbs

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
                yield key_str, _as_bytes(found)

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
                if key.startswith(_TIMERS):
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


_TIMERS = TIMER_KEYS.encode()
_NO_TIMERS = b"t;"
"""A floor above every timer key (``;`` follows ``:``): no timer write is held back."""


def _as_str(key: object) -> str:
    return key.decode() if isinstance(key, bytes | bytearray) else str(key)


def _as_bytes(value: RawValue) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)
