"""Epochs: a changelog record written by a worker that had lost its partition, landed behind
its successor's records, is skipped by every reader; a successor always writes a higher epoch."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stockflow.fencing import (
    EPOCH_HEADER,
    Fence,
    OwnOffsets,
    epoch_header,
    foreign_keys,
    next_epoch,
    record_epoch,
)
from stockflow.kafka import Record
from stockflow.testing.harness import compact_changelog, fold_changelog


def test_headers_carry_the_epoch_both_ways() -> None:
    assert epoch_header(7) == [(EPOCH_HEADER, b"7")]
    assert record_epoch(epoch_header(7)) == 7
    assert record_epoch({EPOCH_HEADER: b"12"}) == 12
    assert record_epoch([("other", b"1"), (EPOCH_HEADER, b"3")]) == 3


def test_a_record_without_a_readable_epoch_is_unfenced() -> None:
    for headers in (None, [], [("other", b"1")], [(EPOCH_HEADER, b"-1")], [(EPOCH_HEADER, b"x")]):
        assert record_epoch(headers) is None
    fence = Fence({0: 9})
    assert fence.admit(0, None)
    assert fence.highest == {0: 9}


def test_a_lower_epoch_after_a_higher_one_is_skipped_per_partition() -> None:
    fence = Fence()
    assert fence.admit(0, 3) and fence.admit(0, 3) and fence.admit(0, 5)
    assert not fence.admit(0, 3)
    assert fence.admit(1, 3)  # another partition: its own history
    assert fence.highest == {0: 5, 1: 3}


def test_next_epoch_is_above_what_was_read_and_never_goes_back() -> None:
    assert next_epoch(4, None) == 4
    assert next_epoch(4, 2) == 4
    assert next_epoch(4, 4) == 5  # the coordinator did not count the rebalance
    assert next_epoch(1, 40) == 41  # the coordinator lost the group and counts from 1
    assert next_epoch(None, None) == 0
    assert next_epoch(-1, None, previous=6) == 6


def _records(partition: int, writes: list[tuple[str, int, int]], start: int) -> list[Record]:
    return [
        Record("changelog", partition, start + i, key.encode(), str(value).encode(), 0, epoch)
        for i, (key, value, epoch) in enumerate(writes)
    ]


@given(
    before=st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 9)), max_size=6),
    held=st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 9)), min_size=1, max_size=4),
    successor=st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 9)), max_size=6),
    landed=st.integers(0, 6),
    generations=st.tuples(st.integers(0, 5), st.integers(0, 5)),
)
def test_late_records_never_change_what_the_successor_restores(
    before: list[tuple[str, int]],
    held: list[tuple[str, int]],
    successor: list[tuple[str, int]],
    landed: int,
    generations: tuple[int, int],
) -> None:
    """A worker writes ``before`` (acknowledged) and ``held`` (in flight when it froze). Its
    successor restores what is on the broker, takes its epoch, writes ``successor``; the held
    records land after ``landed`` of them. Every later reader sees what the successor saw and
    wrote, or, if the late records landed before any of the successor's, the same log as if
    they had landed before its restore, which it then processes again (idempotent)."""
    first = next_epoch(generations[0], None)
    log_before = [(k, v, first) for k, v in before]
    restored = {k: v for k, v, _ in log_before}
    second = next_epoch(generations[1], first if log_before else None)
    if not log_before and second <= first:
        second = first + 1  # a coordinator that counts rebalances: the successor's is higher
    landed = min(landed, len(successor))
    late = [(k, v, first) for k, v in held]
    mine = [(k, v, second) for k, v in successor]
    log = log_before + mine[:landed] + late + mine[landed:]
    folded = fold_changelog(_records(0, log, 0))
    if landed:
        expected = dict(restored)
        expected.update({k: v for k, v, _ in mine})
    else:  # landed before any of the successor's: read as if there before its restore
        expected = {k: v for k, v, _ in log_before + late + mine}
    assert folded == {k: str(v).encode() for k, v in expected.items()}


def test_own_offsets_find_records_another_writer_put_between_this_writer_s() -> None:
    own = OwnOffsets()
    tp = ("products-changelog", 0)
    assert own.acknowledged(tp, 10, 2) is None  # the first batch after a rebalance
    assert own.acknowledged(tp, 10, 5) is None  # the same batch, with more records
    assert own.acknowledged(tp, 15, 1) is None  # contiguous
    assert own.acknowledged(tp, 19, 2) == (16, 18)  # three foreign records
    assert own.acknowledged(("orders-changelog", 0), 0, 1) is None
    own.forget()
    assert own.acknowledged(tp, 40, 1) is None


def test_own_offsets_find_records_between_where_the_restore_stopped_and_the_first_batch() -> None:
    own = OwnOffsets()
    tp = ("products-changelog", 0)
    own.begin(tp, 20)  # the restore read offsets 0..19
    assert own.acknowledged(tp, 12, 3) is None  # a batch of the round before, acknowledged late
    assert own.acknowledged(tp, 22, 1) == (20, 21)  # landed after the restore, before this batch
    own.begin(tp, 30)
    assert own.acknowledged(tp, 30, 2) is None  # nothing between


class _Raw:
    """An aiokafka record as :func:`foreign_keys` reads it."""

    def __init__(self, offset: int, key: bytes | None, epoch: int | None) -> None:
        self.offset, self.key = offset, key
        self.headers = [] if epoch is None else epoch_header(epoch)


def test_foreign_keys_are_those_of_a_lower_epoch_or_none_within_the_range() -> None:
    records = [
        _Raw(4, b"before", 1),
        _Raw(5, b"late", 1),
        _Raw(6, b"successor", 9),  # a higher epoch: not this reader's to write again
        _Raw(7, b"old-writer", None),
        _Raw(8, None, 1),
        _Raw(9, b"after", 1),
    ]
    assert foreign_keys(records, 5, 8, 3) == ({b"late", b"old-writer"}, True)
    assert foreign_keys(records[:3], 5, 8, 3) == ({b"late"}, False)  # read on
    assert foreign_keys([], 5, 8, 3) == (set(), False)
    assert foreign_keys([_Raw(10, b"x", 1)], 5, 8, 3) == (set(), True)  # the range is gone


_Write = tuple[str, int]
_writes = st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 9)), max_size=4)


@given(
    before=_writes,
    held=st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 9)), min_size=1, max_size=4),
    batches=st.lists(_writes, min_size=1, max_size=4),
    landed=st.integers(0, 3),
    delay=st.integers(0, 2),
)
def test_keys_written_again_make_the_compacted_log_say_what_the_owner_holds(
    before: list[_Write],
    held: list[_Write],
    batches: list[list[_Write]],
    landed: int,
    delay: int,
) -> None:
    """A worker wrote ``before`` and froze with ``held`` in flight. Its successor restores,
    starts where its restore stopped (OwnOffsets.begin) and writes ``batches``; the held records
    land after ``landed`` of them. When the successor's next batch is acknowledged it notices
    them, reads their keys back (foreign_keys) and, ``delay`` batches later, writes those keys
    again with the values it holds (a delete for a key it does not hold). Then the log, read
    whole or as a compacting broker keeps it, says what the successor holds, even where the
    late records preceded all of its own."""
    first, second = 1, 2
    landed = min(landed, len(batches) - 1)
    log: list[Record] = []

    def append(writes: list[tuple[str, bytes | None, int]]) -> int:
        base = len(log)
        for i, (key, value, epoch) in enumerate(writes):
            log.append(Record("changelog", 0, base + i, key.encode(), value, 0, epoch))
        return base

    def encoded(writes: list[_Write], epoch: int) -> list[tuple[str, bytes | None, int]]:
        return [(k, str(v).encode(), epoch) for k, v in writes]

    append(encoded(before, first))
    holds: dict[str, bytes] = {k: str(v).encode() for k, v in before}  # the successor's store
    tp = ("changelog", 0)
    own = OwnOffsets()
    own.begin(tp, len(log))
    due: set[str] = set()
    wait = 0
    for number, batch in enumerate(batches):
        if number == landed:
            append(encoded(held, first))  # the late records
        if not batch:
            continue
        base = append(encoded(batch, second))
        holds.update((k, str(v).encode()) for k, v in batch)
        found = own.acknowledged(tp, base, len(batch))
        if found is not None:
            start, end = found
            raw = [_Raw(r.offset, r.key, r.epoch) for r in log[start : end + 1]]
            keys, done = foreign_keys(raw, start, end, second)
            assert done and keys == {k.encode() for k, _v in held}
            due |= {key.decode() for key in keys}
            wait = delay
        elif due and wait <= 0:
            again = [(k, holds.get(k), second) for k in sorted(due)]
            own.acknowledged(tp, append(again), len(again))
            due = set()
        wait -= 1
    if due:  # with the next send at the latest
        append([(k, holds.get(k), second) for k in sorted(due)])
    if any(batches[landed:]):  # a batch of the successor's after the late records noticed them
        assert fold_changelog(log) == holds
        assert fold_changelog(compact_changelog(log)) == holds
