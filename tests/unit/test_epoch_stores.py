"""Epochs in the table stores (stockflow._faust.epochs): the batched restore, the standby
applier and Faust's own restore path skip a late record of a worker that had lost the partition
and keep the highest epoch with the persisted offset; the owner's acknowledged writes keep it
too; a partition that took records while the membership was unconfirmed is restored whole."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from rocks_fakes import Changelog, RocksStore, Table

from stockflow._faust.epochs import (
    EPOCH_KEY,
    UNCONFIRMED_KEY,
    fence_faust_restore,
    is_unconfirmed,
    stored_epoch,
)
from stockflow._faust.fast_restore import RestoreTarget, write_records
from stockflow.fencing import epoch_header
from stockflow.tables import SelfHealingRecovery
from stockflow.tables.store import TableStore

CHANGELOG = TP("app-products-changelog", 0)


@dataclass
class Record:
    offset: int
    key: bytes
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def stamped(offset: int, key: bytes, value: bytes | None, epoch: int | None) -> Record:
    return Record(offset, key, value, [] if epoch is None else epoch_header(epoch))


def test_the_batched_restore_skips_a_late_record_and_keeps_the_epoch(tmp_path: Path) -> None:
    store = RocksStore(tmp_path)
    skipped: list[tuple[str, int, bytes]] = []
    target = RestoreTarget(store=store, first=0, end=100, skipped=lambda *s: skipped.append(s))
    log = [
        stamped(0, b"s:a", b"10", 3),
        stamped(1, b"s:a", b"8", 4),  # the successor
        stamped(2, b"s:a", b"10", 3),  # the frozen worker's late record
        stamped(3, b"s:b", b"1", None),  # unstamped: always taken
    ]
    assert write_records(target, CHANGELOG, log) == 3
    db = store.dbs[0]
    assert db[b"s:a"] == b"8" and db[b"s:b"] == b"1"
    assert db[store.offset_key] == b"3" and stored_epoch(store, 0) == 4
    # A restore from the persisted offset on still skips what the first one skipped.
    assert write_records(target, CHANGELOG, [stamped(4, b"s:a", b"9", 3)]) == 4
    assert db[b"s:a"] == b"8"
    # Each skipped record's key is written again once the partition is active here, unless
    # a later record of the batch wrote it (the owner's, written again already).
    assert skipped == [(CHANGELOG.topic, 0, b"s:a")] * 2
    late_then_again = [stamped(5, b"s:c", b"1", 3), stamped(6, b"s:c", b"2", 4)]
    assert write_records(target, CHANGELOG, late_then_again) == 6
    assert len(skipped) == 2 and db[b"s:c"] == b"2"


def test_faust_s_restore_path_is_fenced_too(caplog: Any) -> None:
    applied: list[Any] = []
    store = SimpleNamespace()  # a memory store: its epochs live on the object
    table = SimpleNamespace(name="products", data=store, apply_changelog_batch=applied.extend)
    skipped: list[tuple[str, int, bytes]] = []
    fence_faust_restore(table, lambda *s: skipped.append(s))

    def event(offset: int, epoch: int) -> Any:
        message = SimpleNamespace(
            topic="products-changelog",
            partition=0,
            offset=offset,
            key=b"k%d" % offset,
            headers=epoch_header(epoch),
        )
        return SimpleNamespace(message=message)

    with caplog.at_level(logging.WARNING):
        table.apply_changelog_batch([event(0, 2), event(1, 5), event(2, 2)])
        table.apply_changelog_batch([event(3, 4)])  # a later batch remembers the highest
    assert [e.message.offset for e in applied] == [0, 1]
    assert stored_epoch(store, 0) == 5
    assert caplog.text.count("skipped 1 changelog record") == 2
    assert skipped == [("products-changelog", 0, b"k2"), ("products-changelog", 0, b"k3")]


def test_acknowledged_writes_keep_their_epoch_or_mark_an_unconfirmed_partition(
    tmp_path: Path,
) -> None:
    data = RocksStore(tmp_path)
    store = TableStore(Table(data), Changelog())  # type: ignore[arg-type]
    store.partition = 0
    store.put("s:a", b"1")
    store.partition = None
    store.acknowledged(0, [{b"s:a": b"1"}], 0, epoch=7)
    assert data.dbs[0][EPOCH_KEY] == b"7" and not is_unconfirmed(data, 0)
    store.partition = 1
    store.put("s:b", b"2")
    store.partition = None
    store.acknowledged(1, [{b"s:b": b"2"}], None, epoch=7)
    assert data.dbs[1][b"s:b"] == b"2"  # kept: the worker may still own the partition
    assert EPOCH_KEY not in data.dbs[1] and is_unconfirmed(data, 1)


def test_an_unconfirmed_partition_is_discarded_and_restored_whole(
    tmp_path: Path, monkeypatch: Any
) -> None:
    data = RocksStore(tmp_path)
    data.dbs[0][UNCONFIRMED_KEY] = b"1"
    data.dbs[0][b"s:a"] = b"late"
    discarded: list[int] = []
    table = SimpleNamespace(name="products", data=data)
    recovery: Any = SelfHealingRecovery.__new__(SelfHealingRecovery)
    recovery.tp_to_table = {CHANGELOG: table, TP(CHANGELOG.topic, 1): table}

    async def earliest_offsets(tp: TP) -> dict[TP, int]:
        return {tp: 0}

    consumer = SimpleNamespace(earliest_offsets=earliest_offsets)
    destination = {CHANGELOG: 40, TP(CHANGELOG.topic, 1): 40}
    monkeypatch.setattr(
        "stockflow._faust.recovery.discard_partition", lambda t, p: discarded.append(p)
    )
    highwaters = {CHANGELOG: 50, TP(CHANGELOG.topic, 1): 50}
    asyncio.run(recovery._heal(consumer, destination, highwaters, set(highwaters)))
    assert discarded == [0]
    assert destination == {CHANGELOG: -1, TP(CHANGELOG.topic, 1): 40}
