"""The keys a lost writer's late records wrote, written again by their partition's owner.

The epochs (:mod:`stockflow.fencing`) make every reader skip a late record that lands behind a
record of a higher epoch. Two cases remain where the log alone says the wrong thing:

- A late record that lands after the new owner's restore stopped reading but before its first
  write precedes every record of the higher epoch: readers take it.
- A compacted changelog (``cleanup.policy=compact`` on Apache Kafka and Redpanda; tansu does
  not compact) keeps only each key's last record. When that is a late record, the owner's
  record of the key is gone: a restore that skips the late one loses the key.

So the owner writes each such key again, with the value it holds, in its own (higher) epoch,
after the late record: the key's last record, the one compaction keeps, is the owner's again,
and the log read whole or compacted says what the owner's store says. The value is the store's
own, so nothing the tables hold changes; the records move no persisted offset.

Where the keys come from:

- records another worker put between this worker's own batches of a partition, or between
  where its restore stopped reading and its first batch (the writer notices them when its next
  batch is acknowledged, :class:`~stockflow.fencing.OwnOffsets`): read back from the broker;
- records a restore or a standby replica skipped (:meth:`Repairs.skipped`): written when the
  partition is active here.

Compaction never touches a log's active segment, so the owner's records normally outlive the
seconds between a late record landing and its key written again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from faust.types import TP

from stockflow._faust.app_state import changelog_writer, rebalance_round, tables_recovered
from stockflow.fencing import foreign_keys

__all__ = ["KeyReader", "Repairs", "app_repairs", "read_foreign_keys"]

log = logging.getLogger(__name__)

Partition = tuple[str, int]  # (changelog topic, partition)
KeyReader = Callable[[Any, str, int, int, int, int], Awaitable[set[bytes]]]
"""``(app, topic, partition, first, last, epoch)``: the keys of ``first..last`` written in an
epoch below ``epoch``."""

_READ_TIMEOUT = 30.0  # seconds to read a foreign range back; a late record is one batch or two


class Repairs:
    """The keys due to be written again, per changelog partition. One per
    :class:`~stockflow._faust.changelog.ChangelogWriter`, which writes them (:meth:`take`) in
    its next send (:attr:`flush`)."""

    def __init__(self, app: Any, read_keys: KeyReader | None = None) -> None:
        self.app = app
        self._read_keys = read_keys or read_foreign_keys
        self._due: dict[Partition, set[bytes]] = {}  # to write in this rebalance round
        self._remembered: dict[Partition, set[bytes]] = {}  # for when the partition is active
        self._round: object = None
        self._reads: set[asyncio.Future[Any]] = set()
        self._flushes: set[asyncio.Future[Any]] = set()
        self.flush: Callable[[], Awaitable[None]] | None = None
        """The writer's send, run when keys become due between batches."""
        self.written = 0
        """Keys written again."""

    @property
    def due(self) -> bool:
        """Whether keys wait to be written (in partitions held or not: :meth:`take` sorts)."""
        return bool(self._due)

    def skipped(self, topic: str, partition: int, key: bytes) -> None:
        """A reader (restore, standby) skipped a late record of ``key``: this worker writes
        the key again once the partition is active here (:meth:`adopt`)."""
        self._remembered.setdefault((topic, partition), set()).add(key)

    def adopt(self, active: Iterable[Partition]) -> None:
        """The changelog partitions this worker writes in the round that begins: the keys
        readers skipped in them are due."""
        self._check_round()
        for tp in active:
            keys = self._remembered.pop(tp, None)
            if keys:
                self._due.setdefault(tp, set()).update(keys)
        if self._due:
            self._kick()

    def foreign(self, topic: str, partition: int, first: int, last: int, epoch: int) -> None:
        """Offsets ``first..last`` of a partition this worker writes in ``epoch`` were written
        by another worker: their keys are read back and written again."""
        self._check_round()
        task = asyncio.ensure_future(self._read(topic, partition, first, last, epoch))
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)

    async def _read(self, topic: str, partition: int, first: int, last: int, epoch: int) -> None:
        started = self._round
        try:
            keys = await self._read_keys(self.app, topic, partition, first, last, epoch)
        except Exception as exc:  # a broker hiccup: the next reader's restore skips them
            log.warning(
                "%s partition %d: could not read offsets %d..%d back to write their keys again: %r",
                topic,
                partition,
                first,
                last,
                exc,
            )
            return
        if not keys:
            return
        self._check_round()
        due = self._due if self._round == started else self._remembered
        due.setdefault((topic, partition), set()).update(keys)
        if self._due:
            self._kick()

    async def close(self, timeout: float = 5.0) -> None:
        """At shutdown: reads still under way are cancelled (their consumers stopped; the next
        owner's restore skips those records and writes their keys again), and a send of keys
        already read is given up to ``timeout`` seconds to be handed to the producer."""
        for task in self._reads:
            task.cancel()
        pending = self._reads | self._flushes
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def take(self) -> dict[Partition, set[bytes]]:
        """The keys due in the partitions this worker holds now; those of a partition it does
        not hold are kept for when it does."""
        self._check_round()
        due, self._due = self._due, {}
        held = {}
        for tp, keys in due.items():
            if holds_active(self.app, tp):
                held[tp] = keys
            else:
                self._remembered.setdefault(tp, set()).update(keys)
        return held

    def _check_round(self) -> None:
        current = rebalance_round(self.app)
        if current != self._round:
            self._round = current
            for tp, keys in self._due.items():
                self._remembered.setdefault(tp, set()).update(keys)
            self._due = {}

    def _kick(self) -> None:
        flush = self.flush
        if flush is None:
            return
        task = asyncio.ensure_future(flush())
        self._flushes.add(task)
        task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Future[Any]) -> None:
        self._flushes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("writing keys again failed: %r", task.exception())


def app_repairs(app: Any) -> Repairs | None:
    """The repairs of ``app``'s changelog writer (``None`` before :func:`stockflow.install`
    gave the transport one)."""
    repairs = getattr(changelog_writer(app), "repairs", None)
    return repairs if isinstance(repairs, Repairs) else None


def holds_active(app: Any, tp: Partition) -> bool:
    """Whether this worker writes changelog partition ``tp`` now: assigned as active, its
    tables recovered."""
    assignor = getattr(app, "assignor", None)
    if assignor is None or not tables_recovered(app):
        return False
    return bool(assignor.is_active(TP(*tp)))


async def read_foreign_keys(
    app: Any,
    topic: str,
    partition: int,
    first: int,
    last: int,
    epoch: int,
    *,
    timeout: float = _READ_TIMEOUT,
) -> set[bytes]:
    """Read offsets ``first..last`` of a changelog partition with a group-less consumer: the
    keys written in an epoch below ``epoch`` (:func:`stockflow.fencing.foreign_keys`)."""
    from aiokafka import TopicPartition

    from stockflow._faust.transport import client_settings
    from stockflow.kafka import groupless_consumer

    servers, auth = client_settings(app, app.transport)
    consumer = groupless_consumer(servers, client_kwargs=auth, fetch_max_wait_ms=100)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, first)
        keys: set[bytes] = set()
        async with asyncio.timeout(timeout):
            while True:
                fetched = await consumer.getmany(tp, timeout_ms=500)
                found, done = foreign_keys(fetched.get(tp, ()), first, last, epoch)
                keys |= found
                if done:
                    return keys
    finally:
        await consumer.stop()
