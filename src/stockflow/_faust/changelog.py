"""Table changes sent to their changelogs once per batch, not one Faust message per change.

Faust sends every table write through its producer buffer: a ``FutureMessage``, a queue item, a
wake-up of the buffer's task, a ``publish_message`` and two completion callbacks per key (one of
them a RocksDB write of the persisted offset). Measured in the bench's Faust floor, that costs
~0.084 ms of CPU per write, and a single-line order makes six: more than stockflow's decision
code. :class:`ChangelogWriter` keeps the order of the writes and hands them to the producer
client at the end of the agent's batch, before Faust acknowledges the batch's records, so the
flush before every offset commit still covers them; the persisted offset is written once per
changelog partition and batch.

The tables' RocksDB writes wait for the same acknowledgements (:meth:`ChangelogWriter.seal`,
:class:`stockflow.tables.TableStore`): a local store never holds a write its changelog lacks.

The persisted offset (where a restore of a kept store starts reading) moves to an acknowledged
record only when the group still counted this worker as the partition's owner when the record
was appended (:meth:`ChangelogWriter._acknowledged`). A produce request that was past the
membership gate (:func:`stockflow._faust.membership.gate_sends`) when the worker froze goes out
when it wakes, after the records its successor wrote meanwhile: seen in a soak, a frozen
worker's record, stamped before its SIGSTOP, landed 17 s later behind 98 of its successor's.
Its acknowledgement had moved the persisted offset past them, so when the partition came back
the restore skipped them, and four payments and a cancellation of orders its successor had
placed were answered ``unknown_order``.

Each record carries its writer's epoch for the partition (:mod:`stockflow.fencing`), so that
such a late record, landed behind its successor's, is skipped by every later reader instead of
rolling its keys back; the keys of a late record the writer notices are written again
(:mod:`stockflow._faust.repairs`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from functools import partial
from itertools import chain
from typing import Any, Protocol

from faust.types import TP

from stockflow._faust.app_state import rebalance_round
from stockflow._faust.epochs import stored_epoch
from stockflow._faust.membership import MembershipLease, MembershipLost
from stockflow._faust.producing import BatchSender, Sent
from stockflow._faust.repairs import KeyReader, Repairs
from stockflow.errors import StockflowError
from stockflow.fencing import OwnOffsets, epoch_header, next_epoch

__all__ = ["ChangelogWriter", "SealedStore", "check_delivery"]

log = logging.getLogger(__name__)

Writes = dict[bytes, bytes | None]


class SealedStore(Protocol):
    """A table store whose database writes wait for their changelog records (``TableStore``)."""

    table: Any

    def current(self, partition: int, key: bytes) -> bytes | None: ...
    def acknowledged(
        self, partition: int, writes: list[Writes], offset: int | None, epoch: int | None
    ) -> None: ...
    def unsent(self, partition: int) -> None: ...


class ChangelogWriter:
    """The changelog records of every :class:`~stockflow.tables.TableStore` of one app.

    One writer per app, shared by all agents: records are sent in the order the writes were
    made, across agents, so that each changelog partition holds its table partition's writes in
    the order they were applied (what a restore replays).
    """

    def __init__(
        self, app: Any, sender: BatchSender | None = None, read_keys: KeyReader | None = None
    ) -> None:
        self.app = app
        self.sender = sender or BatchSender(app)
        self.repairs = Repairs(app, read_keys)
        self.repairs.flush = self.send
        self._pending: list[tuple[Any, int, bytes, bytes | None]] = []
        self._shared: dict[tuple[int, int, bytes], int] = {}  # slot -> index in _pending
        self._seals: list[tuple[SealedStore, int, Writes]] = []
        self._unsettled: set[asyncio.Future[Any]] = set()
        self._lock = asyncio.Lock()
        self._tables: dict[str, Any] = {}  # changelog topic -> table
        self._topics: dict[str, str] = {}  # table name -> changelog topic
        self._stores: list[SealedStore] = []  # what holds each table's values (register)
        self._round: object = None  # the rebalance the epochs below were taken in
        self._epochs: dict[tuple[str, int], int] = {}  # changelog partition -> its epoch now
        self._headers: dict[tuple[str, int], list[tuple[str, bytes]] | None] = {}
        self._previous: dict[tuple[str, int], int] = {}  # the last epoch written, any round
        self._own = OwnOffsets()
        self.foreign_records = 0
        """Records another writer put between this worker's in its changelog partitions."""

    @property
    def pending(self) -> int:
        """Writes made but not yet handed to the producer."""
        return len(self._pending)

    def add(self, table: Any, partition: int, key: bytes, value: bytes | None) -> None:
        """A write (``value``) or a delete (``None``, a tombstone) of ``key`` in ``partition``."""
        if self._shared:
            self._shared.pop((id(table), partition, key), None)  # later writes follow this one
        self._pending.append((table, partition, key, value))

    def share(self, table: Any, partition: int, key: bytes, value: bytes) -> None:
        """A write of ``key`` that replaces this batch's earlier :meth:`share` of it in place:
        one record for a key written by many records of a batch (a timer its orders share),
        at the position of its first write, so it still precedes what the records after that
        write wrote. Only for keys whose value is read as a whole, never as a step's history."""
        slot = (id(table), partition, key)
        at = self._shared.get(slot)
        if at is None:
            self._shared[slot] = len(self._pending)
            self._pending.append((table, partition, key, value))
        else:
            self._pending[at] = (table, partition, key, value)

    def register(self, store: SealedStore) -> None:
        """``store`` holds its table's current values: keys written again come from it."""
        self._stores.append(store)

    def adopt(self, ends: Mapping[tuple[str, int], int]) -> None:
        """A rebalance's recovery is complete: these are the changelog partitions this worker
        writes now, each with the offset its restore stopped reading at (records from there on
        are this worker's own, or another's that it writes the keys of again)."""
        self._check_round()
        for tp, end in ends.items():
            self._own.begin(tp, end)
        self.repairs.adopt(ends)

    def seal(self, store: SealedStore, partition: int, writes: Writes) -> None:
        """``writes``, whose records were :meth:`add`-ed before, go to ``store``'s database
        (:meth:`SealedStore.acknowledged`) once the broker has acknowledged those records."""
        self._seals.append((store, partition, writes))

    async def send(self, *, after_state: bool = False) -> None:
        """Hand every pending record to the producer client, in write order, then the records
        of keys due to be written again. Returns once the client holds them (its flush, which
        precedes every commit, waits for the broker). ``after_state``: these writes go only
        after the changelog writes sent before them, as outputs do (``BatchSender.send``)."""
        async with self._lock:  # a second agent's records wait behind the first one's
            while self._pending or self.repairs.due:
                records, self._pending = self._pending, []
                self._shared = {}
                seals, self._seals = self._seals, []
                topic = self._topic
                self._check_round()
                again = self._again() if self.repairs.due else []
                if not records and not again:
                    return
                sent = await self.sender.send(
                    chain(
                        (
                            (topic(table), partition, key, value)
                            for table, partition, key, value in records
                        ),
                        again,
                    ),
                    after_state=after_state,
                    output=False,
                    headers=self._stamp,
                )
                check_delivery(self.app, sent, "a changelog write")
                only_again: set[tuple[str, int]] = set()
                if again:  # rare: no walk of the records otherwise
                    only_again = {(t, p) for t, p, _k, _v in again}.difference(
                        (topic(table), partition) for table, partition, _k, _v in records
                    )
                self._persist_offsets(sent, seals, only_again)

    def _again(self) -> list[tuple[str, int, bytes, bytes | None]]:
        """Records of the keys due to be written again (:mod:`stockflow._faust.repairs`),
        each with its store's current value: after every pending write, so that value is the
        last one written."""
        due = self.repairs.take()
        if not due:
            return []
        stores = {self._topic(store.table): store for store in self._stores}
        again: list[tuple[str, int, bytes, bytes | None]] = []
        for (topic, partition), keys in due.items():
            store = stores.get(topic)
            if store is None:
                continue
            again.extend((topic, partition, key, store.current(partition, key)) for key in keys)
            log.warning(
                "%s partition %d: writing %d key(s) again that another worker's late records "
                "wrote (so that each key's last record is this worker's)",
                topic,
                partition,
                len(keys),
            )
        self.repairs.written += len(again)
        return again

    def _check_round(self) -> None:
        """Epochs are taken anew after each rebalance: records are never pending across one
        (the batch consumer sends them before it lets a rebalance go on)."""
        current = rebalance_round(self.app)
        if current != self._round:
            self._round = current
            self._epochs.clear()
            self._headers.clear()
            self._own.forget()

    def _stamp(self, topic: str, partition: int) -> list[tuple[str, bytes]] | None:
        """The headers of this round's records of a changelog partition: its epoch
        (:mod:`stockflow.fencing`); none for an app without a consumer group (nothing can
        write after losing a partition it never held by a group's say)."""
        tp = (topic, partition)
        try:
            return self._headers[tp]
        except KeyError:
            pass
        lease = self._lease()
        headers = None
        if lease is not None:
            table = self._tables[topic]
            epoch = next_epoch(
                lease.generation, stored_epoch(table.data, partition), self._previous.get(tp)
            )
            self._epochs[tp] = self._previous[tp] = epoch
            headers = epoch_header(epoch)
        self._headers[tp] = headers
        return headers

    async def settled(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every sealed write handed to the producer is
        in its database (or its record failed, which stops the worker). A revocation must
        not let a partition go with writes still to come into its store."""
        waiting = set(self._unsettled)
        if waiting:
            await asyncio.wait(waiting, timeout=timeout)
        return not (self._unsettled & waiting)

    def _topic(self, table: Any) -> str:
        try:
            return self._topics[table.name]
        except KeyError:
            topic = self._topics[table.name] = str(table.changelog_topic.get_topic_name())
            self._tables[topic] = table
            return topic

    def _lease(self) -> MembershipLease | None:
        lease = getattr(getattr(self.app, "consumer", None), "membership", None)
        return lease if isinstance(lease, MembershipLease) else None

    def _persist_offsets(
        self,
        sent: Sent,
        seals: list[tuple[SealedStore, int, Writes]],
        only_again: set[tuple[str, int]],
    ) -> None:
        lease = self._lease()
        generation = None if lease is None else lease.generation
        last: dict[tuple[str, int], tuple[asyncio.Future[Any], int]] = {}
        for topic, partition, future, count in sent:
            last[(topic, partition)] = (future, count)
            future.add_done_callback(partial(self._landed, topic, partition, count))
        sealed: dict[tuple[str, int], tuple[SealedStore, list[Writes]]] = {}
        for sealed_store, partition, writes in seals:
            tp = (self._topic(sealed_store.table), partition)
            if tp not in last:  # its records are always added first: a bug
                raise StockflowError(f"table writes sealed without changelog records: {tp}")
            sealed.setdefault(tp, (sealed_store, []))[1].append(writes)
        for (topic, partition), (future, count) in last.items():
            if (topic, partition) in only_again:
                continue  # values the store holds: no offset to move, nothing to wait for
            seal = sealed.get((topic, partition))
            if seal is None:  # a store that writes at once (memory://)
                table = self._tables[topic]
                future.add_done_callback(partial(_persisted, table, TP(topic, partition), count))
                continue
            store, batches = seal
            self._unsettled.add(future)
            epoch = self._epochs.get((topic, partition))
            future.add_done_callback(
                partial(self._acknowledged, store, partition, batches, count, generation, epoch)
            )

    def _landed(self, topic: str, partition: int, count: int, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        foreign = self._own.acknowledged((topic, partition), future.result().offset, count)
        if foreign is not None:
            first, last = foreign
            self.foreign_records += last - first + 1
            epoch = self._epochs.get((topic, partition))
            if epoch is not None:  # no epoch, no group: nobody else writes
                self.repairs.foreign(topic, partition, first, last, epoch)
            log.warning(
                "%s partition %d: offsets %d..%d were written by another worker between this "
                "worker's records (one of the two had lost the partition: every reader skips "
                "the records of the lower epoch, and their keys are written again)",
                topic,
                partition,
                first,
                last,
            )

    def _acknowledged(
        self,
        store: SealedStore,
        partition: int,
        writes: list[Writes],
        count: int,
        generation: int | None,
        epoch: int | None,
        future: asyncio.Future[Any],
    ) -> None:
        """``generation``: the lease's when the records were handed to the producer;
        ``epoch``: the one they were written in."""
        self._unsettled.discard(future)
        error = asyncio.CancelledError() if future.cancelled() else future.exception()
        if error is not None:
            if isinstance(error, MembershipLost):
                store.unsent(partition)  # never sent: the partition goes to its new owner
            # else check_delivery stops the worker: its restart restores from the changelog
            return
        offset: int | None = future.result().offset + count - 1
        lease = self._lease()
        if lease is not None and not (lease.generation == generation and lease.holds()):
            # Not known to have been the owner when the records were appended (see the module
            # docstring): their values go to the store (the log holds them, and a restore from
            # the offset persisted before replays the log over them in its order), the offset
            # does not. A confirmed lease at the acknowledgement, in the generation that sent
            # them, proves the group had not dropped this worker before the append: it drops a
            # member only a session timeout after its last heartbeat, twice the lease's window.
            # If the worker had lost the partition, its successor's higher epoch fences these
            # records out of the log; the store marks itself to be restored whole next time.
            log.warning(
                "changelog records of partition %d acknowledged at offset %d while the group "
                "membership was not confirmed: kept without moving the persisted offset",
                partition,
                offset,
            )
            offset = None
        try:
            store.acknowledged(partition, writes, offset, epoch)
        except Exception as exc:
            log.critical("writing acknowledged table changes failed; stopping the worker")
            _crash(self.app, exc)


def _persisted(table: Any, tp: TP, count: int, future: asyncio.Future[Any]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    # Faust's own bookkeeping (Table._on_changelog_sent): the last changelog offset this
    # partition's local store holds, where a restore of a kept store starts reading.
    table.data.set_persisted_offset(tp, future.result().offset + count - 1)


_crashing: set[asyncio.Task[Any]] = set()  # referenced until done


def _crash(app: Any, exc: BaseException) -> None:
    task = asyncio.ensure_future(app.crash(exc))
    _crashing.add(task)
    task.add_done_callback(_crashing.discard)


def check_delivery(app: Any, sent: Sent, what: str) -> None:
    """Stop the worker if any of ``sent`` fails: a lost state change or output must not be
    committed past. After the restart the records are processed again from the last commit
    (and an unclean stop restores the tables from their changelogs). Not for a batch held back
    because the group dropped this worker (:class:`MembershipLost`): its partitions are being
    revoked, and the new owner processes their records again."""

    def check(future: asyncio.Future[Any]) -> None:
        exc = None if future.cancelled() else future.exception()
        if isinstance(exc, MembershipLost):
            return  # never sent, and nothing of it committed: the new owner does it again
        if exc is not None:
            log.critical("%s failed; stopping the worker", what, exc_info=exc)
            _crash(app, exc)

    for _topic, _partition, future, _count in sent:
        future.add_done_callback(check)
