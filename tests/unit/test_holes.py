"""stockflow.holes: a reader never moves past records a fetch skipped (tansu 0.6 can return a
later record of a partition before an earlier one another producer is still writing)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from stockflow.holes import FRESH_SECONDS, REFETCHES, HoleGuard, first_hole, from_beginning

NOW = 1_000.0
"""The guards' clock (epoch seconds); records are stamped at it unless a test says otherwise."""


@dataclass(frozen=True)
class Rec:
    offset: int
    timestamp: int = int(NOW * 1000)


def recs(*offsets: int) -> list[Rec]:
    return [Rec(o) for o in offsets]


def test_first_hole_finds_where_offsets_stop_following_each_other() -> None:
    assert first_hole(recs(5, 6, 7), 5) is None
    assert first_hole(recs(6, 7), 5) == 0
    assert first_hole(recs(5, 6, 9, 10), 5) == 2
    assert first_hole(recs(5, 6, 9, 10), 9, begin=2) is None
    assert first_hole([], 5) is None


@given(st.lists(st.integers(min_value=1, max_value=3), max_size=30), st.integers(0, 100))
def test_first_hole_agrees_with_a_plain_walk(steps: list[int], start: int) -> None:
    offsets = [start]
    for step in steps:
        offsets.append(offsets[-1] + step)
    walk = next((i for i, o in enumerate(offsets) if o != start + i), None)
    assert first_hole(recs(*offsets), start) == walk


class Reader:
    def __init__(self) -> None:
        self.seeks: list[tuple[str, int]] = []
        self.guard = HoleGuard(
            lambda tp, offset: self.seeks.append((tp, offset)), clock=lambda: NOW
        )


def test_records_up_to_a_hole_are_delivered_and_the_partition_fetched_again_from_it() -> None:
    reader = Reader()
    guard = reader.guard

    assert guard.take("p", recs(0, 1, 2)) == recs(0, 1, 2)
    assert guard.take("p", recs(3, 4, 7, 8)) == recs(3, 4)
    assert reader.seeks == [("p", 5)]
    # fetched again: the hole is filled now, and what was delivered is not delivered twice
    assert guard.take("p", recs(5, 6, 7, 8)) == recs(5, 6, 7, 8)
    assert guard.take("p", recs(7, 8, 9)) == recs(9)
    assert (guard.refetched, guard.passed) == (1, 0)


def test_a_fetch_that_starts_past_the_next_offset_delivers_nothing_until_fetched_again() -> None:
    reader = Reader()
    guard = reader.guard
    guard.moved("p", 10)

    assert guard.take("p", recs(12, 13)) == []
    assert reader.seeks == [("p", 10)]
    assert guard.take("p", recs(10, 11, 12, 13)) == recs(10, 11, 12, 13)


def test_a_hole_that_every_refetch_shows_is_the_logs_own_and_is_passed() -> None:
    reader = Reader()
    guard = reader.guard
    guard.take("p", recs(0, 1))

    for _ in range(REFETCHES):
        assert guard.take("p", recs(3, 4)) == []
    # a transaction marker at 2 (Apache Kafka): passed, and a second hole in the same fetch
    # is fetched again on its own
    assert guard.take("p", recs(3, 4, 6)) == recs(3, 4)
    assert reader.seeks == [("p", 2)] * REFETCHES + [("p", 5)]
    assert guard.passed == 1


def test_a_hole_before_records_older_than_any_write_in_flight_is_passed_at_once() -> None:
    # A compacted topic read whole: its holes lie between records written long ago.
    reader = Reader()
    guard = reader.guard
    guard.moved("p", 0)
    old = int((NOW - FRESH_SECONDS - 1) * 1000)

    assert guard.take("p", [Rec(0, old), Rec(5, old), Rec(9, old)]) == [
        Rec(0, old),
        Rec(5, old),
        Rec(9, old),
    ]
    assert reader.seeks == [] and guard.passed == 2
    # a fresh record after a hole is still fetched again
    assert guard.take("p", [Rec(12)]) == []
    assert reader.seeks == [("p", 10)]


def test_partitions_are_guarded_apart_and_a_seek_resets_the_next_offset() -> None:
    reader = Reader()
    guard = reader.guard
    guard.take("a", recs(0, 1))
    assert guard.take("b", recs(40, 41)) == recs(40, 41)  # first fetch: starts anywhere
    guard.moved("a", 100)
    assert guard.take("a", recs(100)) == recs(100)
    guard.moved("b", None)
    assert guard.take("b", recs(7)) == recs(7)
    assert reader.seeks == []


@given(
    size=st.integers(1, 40),
    markers=st.sets(st.integers(0, 39), max_size=5),
    hidden=st.lists(st.sets(st.integers(0, 39), max_size=4), max_size=REFETCHES),
    limits=st.lists(st.integers(1, 10), min_size=1, max_size=20),
)
def test_a_guarded_reader_delivers_every_record_of_the_log_once_and_in_order(
    size: int, markers: set[int], hidden: list[set[int]], limits: list[int]
) -> None:
    """A log of ``size`` offsets without ``markers`` (never there); fetch ``i`` does not show
    ``hidden[i]`` (written late by another producer) and returns at most ``limits[i]``."""
    log = [o for o in range(size) if o not in markers]
    position = {"p": 0}
    guard = HoleGuard(lambda tp, offset: position.__setitem__(tp, offset), clock=lambda: NOW)
    guard.moved("p", 0)  # read from the log's start, as the readers do
    delivered: list[int] = []
    for fetch in range(200):
        invisible = hidden[fetch] if fetch < len(hidden) else set()
        shown = [o for o in log if o >= position["p"] and o not in invisible]
        shown = shown[: limits[fetch % len(limits)]]
        if shown:
            position["p"] = shown[-1] + 1  # the consumer moves past what it returned
        delivered.extend(r.offset for r in guard.take("p", recs(*shown)))
        if delivered == log:
            break
    assert delivered == log


def test_from_beginning_seeks_each_partition_to_its_log_start_and_guards_from_there() -> None:
    class Consumer:
        def __init__(self) -> None:
            self.seeks: list[tuple[str, int]] = []

        def seek(self, tp: str, offset: int) -> None:
            self.seeks.append((tp, offset))

        async def beginning_offsets(self, tps: list[str]) -> dict[str, int]:
            return {"a": 0, "b": 40}

    consumer = Consumer()
    guard = asyncio.run(from_beginning(consumer, ["a", "b"]))

    assert consumer.seeks == [("a", 0), ("b", 40)]
    now_ms = int(time.time() * 1000)  # the guard's own clock: a record just written
    assert guard.take("b", [Rec(41, now_ms)]) == []  # 40 not readable yet: fetched again
    assert consumer.seeks[-1] == ("b", 40)
