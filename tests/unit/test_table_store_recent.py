"""TableStore reads acknowledged writes from memory (stockflow.tables.recent) for as long as
nothing but the store wrote its databases: within one consumer generation, until writes are
dropped unsent. A rebalance (a new generation) may have restored a partition from the
changelog, and reads then show the database again."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rocks_fakes import Changelog, RocksStore, apply_op
from rocks_fakes import Table as PlainTable

from stockflow.tables import recent as recent_module
from stockflow.tables.overlay import ABSENT
from stockflow.tables.recent import RecentWrites
from stockflow.tables.store import TableStore


class Table(PlainTable):
    def __init__(self, data: RocksStore) -> None:
        super().__init__(data)
        self.app = SimpleNamespace(consumer_generation_id=1, rebalancing_count=0)


@pytest.fixture
def world(tmp_path: Path) -> Any:
    data = RocksStore(tmp_path)
    changelog = Changelog()
    table = Table(data)
    store = TableStore(table, changelog)  # type: ignore[arg-type]
    yield store, data, changelog, table.app
    for db in data.dbs.values():
        db.close()


def write(store: TableStore, changelog: Changelog, partition: int, key: str, value: bytes) -> None:
    store.partition = partition
    store.put(key, value)
    store.partition = None
    changelog.ack()


def test_an_acknowledged_write_is_read_back_as_the_object_written(world: Any) -> None:
    store, data, changelog, _app = world
    value = b"[10,1,2]"
    write(store, changelog, 0, "s:1:p", value)
    assert data.dbs[0][b"s:1:p"] == value  # in the database
    store.partition = 0
    # The very object: the product writer's Written check (identity) holds, no decode.
    assert store.get("s:1:p") is value
    store.partition = None


@pytest.mark.parametrize(
    "counter",
    [
        "consumer_generation_id",  # a new generation
        "rebalancing_count",  # revoked and assigned again, the broker's generation unchanged
    ],
)
def test_after_a_rebalance_reads_show_what_a_restore_put_in_the_database(
    world: Any, counter: str
) -> None:
    store, data, changelog, app = world
    write(store, changelog, 0, "s:1:p", b"mine")
    # A rebalance: another worker owned the partition meanwhile, and the recovery restored
    # its writes from the changelog into this worker's database.
    setattr(app, counter, getattr(app, counter) + 1)
    data.dbs[0][b"s:1:p"] = b"theirs"
    store.partition = 0
    assert store.get("s:1:p") == b"theirs"
    store.partition = None


def test_writes_dropped_unsent_drop_what_is_kept_of_their_partition(world: Any) -> None:
    store, data, changelog, _app = world
    write(store, changelog, 0, "s:1:p", b"mine")
    write(store, changelog, 1, "s:2:p", b"other")
    store.unsent(0)
    data.dbs[0][b"s:1:p"] = b"restored"
    data.dbs[1][b"s:2:p"] = b"restored"
    store.partition = 0
    assert store.get("s:1:p") == b"restored"
    store.partition = 1
    assert store.get("s:2:p") == b"other"  # partition 1 was not dropped
    store.partition = None


def test_a_delete_is_kept_as_one() -> None:
    recent = RecentWrites()
    recent.check(1)
    recent.add(0, {b"k": b"v"})
    recent.add(0, {b"k": None})
    assert recent.find(0, b"k") is None
    assert recent.find(0, b"other") is ABSENT
    assert recent.find(1, b"k") is ABSENT


def test_values_are_kept_for_one_to_two_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recent_module, "RECENT_CAP", 4)
    recent = RecentWrites()
    recent.check(1)
    recent.add(0, {b"a": b"1", b"b": b"2"})
    recent.add(0, {b"c": b"3", b"d": b"4"})
    recent.add(0, {b"e": b"5"})  # the window is full: a..d become the older one
    assert [recent.find(0, k) for k in (b"a", b"d", b"e")] == [b"1", b"4", b"5"]
    recent.add(0, {b"f": b"6", b"g": b"7", b"h": b"8", b"i": b"9"})  # full again: a..d go
    assert recent.find(0, b"a") is ABSENT
    assert [recent.find(0, k) for k in (b"e", b"i")] == [b"5", b"9"]
    recent.check(2)
    assert all(recent.find(0, k) is ABSENT for k in (b"e", b"f", b"g", b"h", b"i"))


_KEYS = st.sampled_from(["a", "b", "c"])
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from([0, 1]), _KEYS, st.binary(max_size=2)),
        st.tuples(st.just("delete"), st.sampled_from([0, 1]), _KEYS, st.just(b"")),
        st.tuples(st.sampled_from(["ack", "switch"]), st.just(0), st.just(""), st.just(b"")),
        # A rebalance after every write was acknowledged, and a restore that wrote the key.
        st.tuples(st.just("restore"), st.sampled_from([0, 1]), _KEYS, st.binary(max_size=2)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(ops=_OPS, cap=st.sampled_from([1, 3, 65_536]))
def test_reads_see_the_last_write_or_the_restored_value_whatever_is_acknowledged(
    ops: list,  # type: ignore[type-arg]
    cap: int,
) -> None:
    saved = recent_module.RECENT_CAP
    recent_module.RECENT_CAP = cap
    with tempfile.TemporaryDirectory() as root:
        data = RocksStore(Path(root))
        changelog = Changelog()
        table = Table(data)
        store = TableStore(table, changelog)  # type: ignore[arg-type]
        model: dict[int, dict[str, bytes]] = {0: {}, 1: {}}
        try:
            for op, partition, key, value in ops:
                apply_op(store, changelog, model, op, partition, key, value)
                if op == "restore":
                    store.partition = None
                    changelog.ack(len(changelog.sealed))
                    table.app.consumer_generation_id += 1
                    data.dbs[partition][key.encode()] = value
                    model[partition][key] = value
                current = store.partition
                for read in (0, 1):
                    store.partition = read
                    for k in ("a", "b", "c"):
                        assert store.get(k) == model[read].get(k), (read, k)
                store.partition = current
        finally:
            recent_module.RECENT_CAP = saved
            for db in data.dbs.values():
                db.close()
