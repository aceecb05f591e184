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
from typing import TYPE_CHECKING, cast

from rocksdict import WriteBatch

from stockflow._faust.app_state import rebalance_round
from stockflow._faust.changelog import ChangelogWriter
from stockflow._faust.epochs import mark_position
from stockflow.errors import StockflowError
from stockflow.tables.ordered import TIMERS_RAW, OrderedReads, as_bytes
from stockflow.tables.overlay import ABSENT
from stockflow.tables.recent import RecentWrites

if TYPE_CHECKING:
    from stockflow.tables.protocols import (
        FaustTable,
        PartitionDB,
        RawValue,
    )

__all__ = ["TableStore"]


class TableStore(OrderedReads):
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
        return value if value is None or isinstance(value, bytes) else as_bytes(value)

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
        return as_bytes(value)

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
            if raw.startswith(TIMERS_RAW):
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
