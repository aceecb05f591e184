"""StandbyApplier: a standby partition's fetched changelog records land in its RocksDB store in
one write batch with the persisted offset, and Faust's standby offset moves; anything else
(a memory store, another partition) is left to Faust's path; a standby partition's records
fetched before recovery is complete are fetched again, never handed to Faust."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faust.types import TP
from rocksdict import Options, Rdict

from stockflow._faust.standby import StandbyApplier

STANDBY = TP("app-products-changelog", 1)
ACTIVE = TP("orders", 0)


@dataclass
class Record:
    offset: int
    key: bytes
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class RocksStore:
    use_rocksdict = True
    offset_key = b"__faust\x00offset__"

    def __init__(self, path: Path) -> None:
        self.db = Rdict(str(path), options=Options(raw_mode=True))

    def _db_for_partition(self, partition: int) -> Rdict:
        assert partition == STANDBY.partition
        return self.db


@dataclass
class Completed:
    done: bool = True

    def is_set(self) -> bool:
        return self.done


@dataclass
class Recovery:
    tp_to_table: dict[TP, Any]
    standby_tps: set[TP] = field(default_factory=lambda: {STANDBY})
    standby_offsets: dict[TP, int] = field(default_factory=dict)
    in_recovery: bool = False
    completed: Completed = field(default_factory=Completed)

    def standby_remaining_total(self) -> int:
        return 0


@dataclass
class Tables:
    recovery: Recovery
    standbys_ready: bool = False

    def on_standbys_ready(self) -> None:
        self.standbys_ready = True


@dataclass
class Table:
    data: Any


@dataclass
class App:
    tables: Tables


def world(tmp_path: Path, store: Any = None) -> tuple[App, Any]:
    store = store if store is not None else RocksStore(tmp_path / "db")
    app = App(Tables(Recovery({STANDBY: Table(store)})))
    return app, store


def test_standby_records_are_written_with_their_offset_and_taken_out(tmp_path: Path) -> None:
    app, store = world(tmp_path)
    records: dict[TP, Any] = {
        STANDBY: [Record(4, b"s:a", b"1"), Record(5, b"t:x", b""), Record(6, b"t:x", None)],
        ACTIVE: [Record(0, b"o", b"{}")],
    }
    assert StandbyApplier(app).take(records) == ({STANDBY: 7}, {})
    assert list(records) == [ACTIVE]  # the rest goes on to the processor / Faust
    assert store.db[b"s:a"] == b"1" and b"t:x" not in store.db
    assert store.db[store.offset_key] == b"6"  # where a takeover resumes restoring
    assert app.tables.recovery.standby_offsets[STANDBY] == 6
    assert app.tables.standbys_ready


def test_records_already_applied_are_skipped(tmp_path: Path) -> None:
    app, store = world(tmp_path)
    app.tables.recovery.standby_offsets[STANDBY] = 5
    records: dict[TP, Any] = {STANDBY: [Record(5, b"k", b"old"), Record(6, b"k", b"new")]}
    assert StandbyApplier(app).take(records) == ({STANDBY: 7}, {})
    assert store.db[b"k"] == b"new" and store.db[store.offset_key] == b"6"


def test_records_fetched_before_recovery_completes_are_fetched_again(tmp_path: Path) -> None:
    # Faust's recovery loop would count them as seen and write them only at the next rebalance;
    # this applier then skipped them: a hole under the store's persisted offset.
    app, store = world(tmp_path)
    # Each guard alone: recovering (though the last one completed), and not yet completed.
    for in_recovery, completed in ((True, True), (False, False)):
        app.tables.recovery.in_recovery = in_recovery
        app.tables.recovery.completed.done = completed
        records: dict[TP, Any] = {
            STANDBY: [Record(3, b"k", b"v"), Record(4, b"k", b"w")],
            ACTIVE: [Record(0, b"o", b"{}")],
        }
        assert StandbyApplier(app).take(records) == ({}, {STANDBY: 3})
        assert list(records) == [ACTIVE]  # not handed to Faust either
        assert b"k" not in store.db and STANDBY not in app.tables.recovery.standby_offsets


def test_a_memory_store_keeps_faust_s_path(tmp_path: Path) -> None:
    class MemoryStore:
        use_rocksdict = False

    app, _store = world(tmp_path, store=MemoryStore())
    records: dict[TP, Any] = {STANDBY: [Record(0, b"k", b"v")]}
    assert StandbyApplier(app).take(records) == ({}, {}) and STANDBY in records
