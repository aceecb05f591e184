""":class:`stockflow.tables.TableStore` over both kinds of Faust store it meets, each built from
what :mod:`stockflow.tables.protocols` says stockflow touches: the memory store (a dict in
``.data``) and the RocksDB store (one real raw-mode ``rocksdict`` database per partition)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rocksdict import Options, Rdict

from stockflow._faust.changelog import ChangelogWriter
from stockflow.errors import StockflowError
from stockflow.tables import TableStore


class MemoryData(dict[bytes, bytes]):
    """Faust's memory store: item access, and the same dictionary as ``.data``."""

    @property
    def data(self) -> dict[bytes, bytes]:
        return self


class RocksDBData:
    """Faust's RocksDB store: a raw-mode database per partition."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dbs: dict[int, Rdict] = {}

    def _db_for_partition(self, partition: int) -> Rdict:
        if partition not in self.dbs:
            path = str(self.root / f"table-{partition}.db")
            self.dbs[partition] = Rdict(path, options=Options(raw_mode=True))
        return self.dbs[partition]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        raise AssertionError("writes go to the partition's database")

    def __delitem__(self, key: bytes) -> None:
        raise AssertionError("deletes go to the partition's database")


class FaustRocksDBData(RocksDBData):
    """As Faust's store also holds them: the open databases in ``_dbs``, one dict for the
    store's life, a partition's entry dropped when it is revoked (TableStore reads it)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._dbs = self.dbs


class Table:
    def __init__(self, data: Any) -> None:
        self.name = "t"
        self.data = data

    def get(self, key: bytes) -> bytes | None:
        if isinstance(self.data, MemoryData):
            return self.data.get(key)
        return None  # Faust's search of every partition: not used with a partition set


class Changelog(ChangelogWriter):
    def __init__(self) -> None:
        self.records: list[tuple[int, bytes, bytes | None]] = []

    def add(self, table: Any, partition: int, key: bytes, value: bytes | None) -> None:
        self.records.append((partition, key, value))


@pytest.fixture(params=["memory", "rocksdb", "rocksdb-dbs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TableStore]:
    kinds = {"memory": MemoryData, "rocksdb": RocksDBData, "rocksdb-dbs": FaustRocksDBData}
    data = MemoryData() if request.param == "memory" else kinds[request.param](tmp_path)
    yield TableStore(Table(data), Changelog())
    if isinstance(data, RocksDBData):
        for db in data.dbs.values():
            db.close()


def test_a_revoked_partitions_database_is_opened_again_by_the_next_read(tmp_path: Path) -> None:
    data = FaustRocksDBData(tmp_path)
    store = TableStore(Table(data), Changelog())
    store.partition = 1
    store.put("stock:a", b"1")
    assert store.get("stock:a") == b"1"
    store.partition = None
    data.dbs.pop(1).close()  # Faust's revocation closes the partition's database
    store.partition = 1
    assert store.get("stock:a") == b"1"  # read from the database opened again
    assert 1 in data._dbs
    store.partition = None
    for db in data.dbs.values():
        db.close()


def test_writes_reach_the_store_and_the_changelog_in_order(store: TableStore) -> None:
    store.partition = 1
    store.put("stock:a", b"1")
    store.put("stock:b", b"2")
    store.delete("stock:a")
    store.delete("stock:never")  # idempotent
    assert store.get("stock:a") is None
    assert store.get("stock:b") == b"2"
    assert isinstance(store.changelog, Changelog)
    assert store.changelog.records == [
        (1, b"stock:a", b"1"),
        (1, b"stock:b", b"2"),
        (1, b"stock:a", None),
        (1, b"stock:never", None),
    ]
    # What a key written again carries (stockflow._faust.repairs), on every kind of store.
    assert store.current(1, b"stock:b") == b"2"
    assert store.current(1, b"stock:a") is None


def test_scan_is_ordered_bounded_by_the_prefix_and_starts_where_asked(store: TableStore) -> None:
    store.partition = 0
    for key in ["timer:3", "stock:b", "timer:1", "timer:2", "u"]:
        store.put(key, key.encode())
    store.partition = None
    assert [k for k, _ in store.scan("timer:", partition=0)] == ["timer:1", "timer:2", "timer:3"]
    assert list(store.scan("timer:", partition=0, start="timer:2")) == [
        ("timer:2", b"timer:2"),
        ("timer:3", b"timer:3"),
    ]


def test_writes_outside_a_record_are_refused(store: TableStore) -> None:
    with pytest.raises(StockflowError, match="outside of the processing of a record"):
        store.put("stock:a", b"1")


def test_memory_values_written_as_text_are_read_as_bytes() -> None:
    data = MemoryData()
    data[b"stock:a"] = "3"  # type: ignore[assignment]  # an older writer's str value
    store = TableStore(Table(data), Changelog())
    assert store.get("stock:a") == b"3"
    assert list(store.scan("stock:", partition=0)) == [("stock:a", b"3")]
