"""TableStore over RocksDB through rocksdict (Faust's default binding): a partition's writes
are gathered while its records are applied and land in its database in one write batch when
the partition changes; reads and range scans of that partition see them before, nothing else
sees a database without them after, and every write still reaches the changelog in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rocksdict import Options, Rdict

from stockflow.errors import StockflowError
from stockflow.tables.store import TableStore


class RocksStore:
    use_rocksdict = True

    def __init__(self, root: Path) -> None:
        self.dbs = {
            partition: Rdict(str(root / f"p{partition}"), options=Options(raw_mode=True))
            for partition in (0, 1)
        }
        self.writes = 0

    def _db_for_partition(self, partition: int) -> Rdict:
        return self.dbs[partition]


class Table:
    def __init__(self, data: RocksStore) -> None:
        self.data = data

    def get(self, key: bytes) -> Any:
        raise AssertionError("reads outside a partition's records are not part of this test")


class Changelog:
    def __init__(self) -> None:
        self.records: list[tuple[int, bytes, bytes | None]] = []

    def add(self, table: Any, partition: int, key: bytes, value: bytes | None) -> None:
        self.records.append((partition, key, value))


@pytest.fixture
def world(tmp_path: Path) -> tuple[TableStore, RocksStore, Changelog]:
    data = RocksStore(tmp_path)
    changelog = Changelog()
    store = TableStore(Table(data), changelog)  # type: ignore[arg-type]
    yield store, data, changelog
    for db in data.dbs.values():
        db.close()


def test_writes_wait_for_the_partition_to_end_and_reads_see_them(world: Any) -> None:
    store, data, changelog = world
    store.partition = 0
    store.put("s:1:p", b"10")
    store.put("s:1:p", b"9")  # a hot key: written twice, the database gets the last value
    store.put("r:1:p:o1", b"entry")
    store.delete("t:00000:gone")
    assert store.get("s:1:p") == b"9"
    assert store.get("t:00000:gone") is None
    assert data.dbs[0].get(b"s:1:p") is None  # not in the database yet
    store.partition = None
    assert data.dbs[0][b"s:1:p"] == b"9"
    assert data.dbs[0][b"r:1:p:o1"] == b"entry"
    assert changelog.records == [
        (0, b"s:1:p", b"10"),
        (0, b"s:1:p", b"9"),
        (0, b"r:1:p:o1", b"entry"),
        (0, b"t:00000:gone", None),
    ]


def test_a_delete_after_a_put_in_the_same_batch_leaves_nothing(world: Any) -> None:
    store, data, _changelog = world
    store.partition = 1
    data.dbs[1][b"k"] = b"old"
    store.put("k", b"new")
    store.delete("k")
    assert store.get("k") is None
    store.partition = None
    assert data.dbs[1].get(b"k") is None


def test_a_scan_sees_the_batch_so_far(world: Any) -> None:
    store, _data, _changelog = world
    store.partition = 0
    store.put("r:1:p:o1", b"a")
    store.put("r:1:p:o2", b"b")
    store.put("r:1:q:o3", b"c")
    assert list(store.scan("r:1:p:", partition=0)) == [("r:1:p:o1", b"a"), ("r:1:p:o2", b"b")]
    store.put("r:1:p:o0", b"z")  # after the scan: gathered again
    assert next(store.scan("r:1:p:", partition=0)) == ("r:1:p:o0", b"z")
    store.partition = None


def test_moving_to_another_partition_writes_the_previous_one(world: Any) -> None:
    store, data, _changelog = world
    store.partition = 0
    store.put("k0", b"zero")
    store.partition = 1  # the batch processor moves from one partition's records to the next
    store.put("k1", b"one")
    assert data.dbs[0][b"k0"] == b"zero"
    assert data.dbs[1].get(b"k1") is None
    store.partition = None
    assert data.dbs[1][b"k1"] == b"one"
    assert data.dbs[0].get(b"k1") is None and data.dbs[1].get(b"k0") is None


def test_writes_outside_a_partition_are_a_bug(world: Any) -> None:
    store, _data, _changelog = world
    with pytest.raises(StockflowError):
        store.put("k", b"v")
