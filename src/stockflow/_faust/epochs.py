"""Where the table stores keep what :mod:`stockflow.fencing` needs across restarts, and the
fence on Faust's own restore path.

A RocksDB partition keeps the highest epoch of the changelog records it holds under
:data:`EPOCH_KEY`, written in the same ``WriteBatch`` as its persisted offset (a restore from
that offset must skip a late record as the first restore did). Faust's store hides only its own
offset key from iteration; stockflow reads its tables by key prefix only, and these keys sort
before every stockflow key (``_`` before the letters of ``stockflow.keys``).

:data:`UNCONFIRMED_KEY` marks a partition whose database took records acknowledged while this
worker's membership was not confirmed (``stockflow._faust.changelog``): if the worker had lost
the partition, those values may be a frozen writer's late records, which the fence skips in the
log but which are in this database, under keys the replay from the persisted offset need not
touch again. The next recovery of such a partition discards the database and restores it whole
(``stockflow._faust.recovery``). A worker that was in fact still the owner loses nothing but
that restore's time.

A memory store (``memory://``) persists nothing; its highest epochs live on the store object.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Final

from stockflow.fencing import Fence, record_epoch

__all__ = [
    "EPOCH_KEY",
    "UNCONFIRMED_KEY",
    "Skipped",
    "fence_faust_restore",
    "is_unconfirmed",
    "load_fence",
    "log_skipped",
    "mark_position",
    "save_epoch",
    "stored_epoch",
]

log = logging.getLogger(__name__)

Skipped = Callable[[str, int, bytes], None]
"""Told the changelog topic, partition and key of each late record a reader skips
(:meth:`stockflow._faust.repairs.Repairs.skipped`)."""

EPOCH_KEY: Final = b"__stockflow\0epoch__"
UNCONFIRMED_KEY: Final = b"__stockflow\0unconfirmed__"
_MEMORY_EPOCHS: Final = "_stockflow_epochs"


def _rocksdb(store: Any) -> bool:
    return hasattr(store, "_db_for_partition")


def stored_epoch(store: Any, partition: int) -> int | None:
    """The highest epoch ``store``'s ``partition`` holds records of (``None``: none known)."""
    if _rocksdb(store):
        raw = store._db_for_partition(partition).get(EPOCH_KEY)
        return None if raw is None else int(raw)
    epochs: dict[int, int] = getattr(store, _MEMORY_EPOCHS, {})
    return epochs.get(partition)


def save_epoch(store: Any, partition: int, epoch: int) -> None:
    """Remember ``epoch`` as ``partition``'s highest, at once (Faust's restore path; the
    batched writers put it in their ``WriteBatch`` with :func:`mark_position`)."""
    if _rocksdb(store):
        store._db_for_partition(partition).put(EPOCH_KEY, str(epoch).encode())
        return
    epochs = getattr(store, _MEMORY_EPOCHS, None)
    if epochs is None:
        epochs = {}
        setattr(store, _MEMORY_EPOCHS, epochs)
    epochs[partition] = max(epoch, epochs.get(partition, epoch))


def mark_position(put: Any, offset_key: bytes, offset: int | None, epoch: int | None) -> None:
    """Through ``put`` (a ``WriteBatch``'s, with the records): the persisted ``offset`` and
    the highest ``epoch``, or, for ``offset`` ``None`` (the membership was not confirmed when
    the records were acknowledged), the mark that the partition is to be restored whole."""
    if offset is None:
        put(UNCONFIRMED_KEY, b"1")
        return
    put(offset_key, str(offset).encode())
    if epoch is not None:
        put(EPOCH_KEY, str(epoch).encode())


def load_fence(store: Any, partitions: Iterable[int]) -> Fence:
    """A fence that starts from what ``store`` holds of each of ``partitions``."""
    known = {p: e for p in partitions if (e := stored_epoch(store, p)) is not None}
    return Fence(known)


def is_unconfirmed(store: Any, partition: int) -> bool:
    """Whether ``partition``'s database took records while the membership was unconfirmed."""
    return _rocksdb(store) and store._db_for_partition(partition).get(UNCONFIRMED_KEY) is not None


def log_skipped(table: str, partition: int, skipped: int, highest: int) -> None:
    log.warning(
        "%s partition %d: skipped %d changelog record(s) written in an epoch below %d "
        "(a worker that had already lost the partition)",
        table,
        partition,
        skipped,
        highest,
    )


def fence_faust_restore(table: Any, skipped: Skipped | None = None) -> None:
    """Skip late records on Faust's own restore path too (``Table.apply_changelog_batch``:
    the memory store, and what the batched restore left to Faust), telling ``skipped`` the
    changelog topic, partition and key of each record skipped that no later record of the
    batch wrote again."""
    apply = table.apply_changelog_batch

    def fenced(batch: Iterable[Any]) -> None:
        store = table.data
        events = list(batch)
        fence = load_fence(store, {event.message.partition for event in events})
        admitted = []
        counts: dict[int, int] = {}
        late: dict[tuple[str, int, bytes], None] = {}  # skipped, not written again after
        for event in events:
            message = event.message
            if fence.admit(message.partition, record_epoch(message.headers)):
                admitted.append(event)
                if late:
                    late.pop((message.topic, message.partition, message.key), None)
                continue
            counts[message.partition] = counts.get(message.partition, 0) + 1
            if message.key is not None:
                late[(message.topic, message.partition, message.key)] = None
        apply(admitted)
        for partition, epoch in fence.highest.items():
            save_epoch(store, partition, epoch)  # after the records: never ahead of them
        for partition, count in counts.items():
            log_skipped(table.name, partition, count, fence.highest[partition])
        if skipped is not None:
            for topic, partition, key in late:
                skipped(topic, partition, key)

    table.apply_changelog_batch = fenced
