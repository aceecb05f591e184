"""The parts of Faust that :mod:`stockflow.tables` touches, as small Protocols.

Faust's own types say little here (a table's store is a ``StoreT`` of ``Any``; a RocksDB
store's per-partition database is private), so these describe what stockflow relies on: a
table of raw bytes (:func:`~stockflow.tables.create_state_table` makes them so), its store,
which is Faust's memory store (a dict in ``.data``) or its RocksDB store (one ``rocksdict``
database per partition, ``_db_for_partition``), and the app settings the
:class:`~stockflow.tables.UncleanShutdownGuard` reads. Checked against Faust's classes below
(``if TYPE_CHECKING``), so a Faust upgrade that breaks them fails ``mypy``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeAlias

from rocksdict import WriteBatch

__all__ = [
    "FaustTable",
    "GuardedApp",
    "MemoryTableData",
    "PartitionDB",
    "RawValue",
    "RocksDBTableData",
    "TableData",
    "TableFactory",
]

RawValue: TypeAlias = bytes | bytearray | memoryview | str
"""A stored value as a store may hand it back (stockflow writes ``bytes``)."""


class PartitionDB(Protocol):
    """One table partition's RocksDB database (a ``rocksdict.Rdict`` opened in raw mode)."""

    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def items(self, *, from_key: bytes) -> Iterable[tuple[bytes, bytes]]: ...

    def keys(self, *, from_key: bytes) -> Iterable[bytes]: ...

    def write(self, batch: WriteBatch) -> None: ...


class TableData(Protocol):
    """A table's local store (``table.data``): either kind takes item writes and deletes."""

    def __setitem__(self, key: bytes, value: bytes) -> None: ...

    def __delitem__(self, key: bytes) -> None: ...


class RocksDBTableData(TableData, Protocol):
    """Faust's RocksDB store: one database per partition."""

    offset_key: bytes
    """The key of each database's persisted offset (the last changelog offset it holds)."""

    def _db_for_partition(self, partition: int) -> PartitionDB: ...


class MemoryTableData(TableData, Protocol):
    """Faust's memory store: one dictionary for every partition (keys as written or restored:
    ``bytes``, or ``str`` from older writers)."""

    @property
    def data(self) -> Mapping[bytes | str, RawValue]: ...


class FaustTable(Protocol):
    """A Faust table of raw bytes keys and values."""

    @property
    def name(self) -> str: ...

    @property
    def data(self) -> TableData: ...

    def get(self, key: bytes) -> RawValue | None: ...


class TableFactory(Protocol):
    """What :func:`~stockflow.tables.create_state_table` calls on the app."""

    def Table(  # Faust's name
        self,
        name: str,
        *,
        default: None,
        partitions: int,
        schema: object,
        key_type: type[bytes],
        value_type: type[bytes],
        help: str,
        options: dict[str, object],
    ) -> FaustTable: ...


class _TableSettings(Protocol):
    @property
    def tabledir(self) -> Path: ...

    @property
    def store(self) -> object: ...  # a URL; only its text is read


class GuardedApp(Protocol):
    """What :class:`~stockflow.tables.UncleanShutdownGuard` reads of the app (and, if present,
    mode's ``crash_reason``)."""

    @property
    def conf(self) -> _TableSettings: ...


if TYPE_CHECKING:
    import faust
    from faust.stores.memory import Store as MemoryStore
    from faust.stores.rocksdb import Store as RocksDBStore

    def _faust_fits(
        app: faust.App,
        table: faust.Table[bytes, bytes],
        memory: MemoryStore[bytes, bytes],
        rocksdb: RocksDBStore,
    ) -> tuple[TableFactory, GuardedApp, FaustTable, MemoryTableData, RocksDBTableData]:
        return app, app, table, memory, rocksdb
