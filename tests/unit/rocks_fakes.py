"""Fakes of a Faust RocksDB table for TableStore tests: real rocksdict databases (one per
partition, in a temp dir), Faust's ``Table.get`` over them, and a changelog whose ``ack`` plays
the broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rocksdict import Options, Rdict

from stockflow.tables.store import TableStore

__all__ = ["Changelog", "RocksStore", "Table", "apply_op"]


class RocksStore:
    use_rocksdict = True
    offset_key = b"__faust\0offset__"

    def __init__(self, root: Path) -> None:
        self.dbs = {
            partition: Rdict(str(root / f"p{partition}"), options=Options(raw_mode=True))
            for partition in (0, 1)
        }
        self._dbs = self.dbs  # as Faust's store holds them (TableStore reads it)

    def _db_for_partition(self, partition: int) -> Rdict:
        return self.dbs[partition]


class Table:
    def __init__(self, data: RocksStore) -> None:
        self.data = data

    def get(self, key: bytes) -> Any:
        # Faust's Table.get: every partition's database.
        return next((db[key] for db in self.data.dbs.values() if key in db), None)


class Changelog:
    """Records every changelog record and every sealed batch; ``ack`` plays the broker."""

    def __init__(self) -> None:
        self.records: list[tuple[int, bytes, bytes | None]] = []
        self.sealed: list[tuple[TableStore, int, dict[bytes, bytes | None], int]] = []

    def add(self, table: Any, partition: int, key: bytes, value: bytes | None) -> None:
        self.records.append((partition, key, value))

    def seal(self, store: TableStore, partition: int, writes: dict[bytes, bytes | None]) -> None:
        # The offset of the batch's last changelog record so far.
        self.sealed.append((store, partition, writes, len(self.records) - 1))

    def ack(self, count: int = 1, *, persist: bool = True) -> None:
        """The broker acknowledges the oldest ``count`` sealed batches (``persist=False``: as
        the ChangelogWriter hands them over while the membership is not confirmed)."""
        for store, partition, writes, offset in self.sealed[:count]:
            store.acknowledged(partition, [writes], offset if persist else None)
        del self.sealed[:count]


def apply_op(
    store: TableStore,
    changelog: Changelog,
    model: dict[int, dict[str, bytes]],
    op: str,
    partition: int,
    key: str,
    value: bytes,
) -> None:
    """One step of a property test: ``put``/``delete`` (in ``partition``, also in ``model``,
    the values every read must show), ``switch`` (the batch ends) or ``ack`` (the broker
    acknowledges the oldest sealed batch); any other ``op`` is the test's own."""
    if op in ("put", "delete"):
        if store.partition != partition:
            store.partition = partition
        if op == "put":
            store.put(key, value)
            model[partition][key] = value
        else:
            store.delete(key)
            model[partition].pop(key, None)
    elif op == "switch":
        store.partition = None
    elif op == "ack" and changelog.sealed:
        changelog.ack()
