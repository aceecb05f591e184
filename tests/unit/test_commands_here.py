"""Product command records applied in the worker that published them (stockflow._faust.
commands_here): which acknowledged records may be applied at once, and at which offset."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from stockflow._faust.commands_here import CommandsHere, Published

TP0 = ("product-commands", 0)
TP1 = ("product-commands", 1)
ROUND = (1, 0)


@dataclass(frozen=True)
class At:
    offset: int


def published(delivery: Any, count: int = 1) -> Published:
    return Published("product-commands", 0, None, b"{}", 1_700_000_000_000, delivery, count)


def delivered(result: Any = None, *, error: BaseException | None = None) -> Any:
    loop = asyncio.new_event_loop()
    try:
        future = loop.create_future()
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
        return future
    finally:
        loop.close()


def test_an_acknowledged_record_is_at_its_batchs_base_offset_plus_its_place() -> None:
    metadata = SimpleNamespace(offset=40, timestamp_type=0)
    assert published(delivered(metadata), count=1).offset() == 40
    # The third record of a batch that earlier sends started.
    assert published(delivered(metadata), count=3).offset() == 42


def test_a_record_not_acknowledged_or_stamped_by_the_broker_has_no_offset() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert published(loop.create_future()).offset() is None  # not yet
        cancelled = loop.create_future()
        cancelled.cancel()
        assert published(cancelled).offset() is None
    finally:
        loop.close()
    assert published(delivered(error=OSError("lost"))).offset() is None
    assert published(delivered(None)).offset() is None  # acks=0: no metadata
    # LogAppendTime: the fetched copy carries the broker's clock, not the one published.
    stamped = SimpleNamespace(offset=40, timestamp_type=1)
    assert published(delivered(stamped)).offset() is None


def test_records_next_in_their_partition_are_taken_in_offset_order() -> None:
    here = CommandsHere()
    for offset in (12, 10, 11):
        here.add(TP0, At(offset), ROUND)
    here.add(TP1, At(5), ROUND)

    ready = here.take({TP0: 10, TP1: 5}.get, ROUND)

    assert ready == [(TP0, [At(10), At(11), At(12)]), (TP1, [At(5)])]
    assert (here.applied, here.dropped, len(here)) == (4, 0, 0)


def test_a_gap_or_an_unknown_next_offset_leaves_the_records_to_the_fetch() -> None:
    here = CommandsHere()
    for offset in (9, 10, 12):  # 9 was fetched first; 11 is not processed yet
        here.add(TP0, At(offset), ROUND)
    here.add(TP1, At(5), ROUND)  # its next offset is not known (no fetch since assignment)

    ready = here.take({TP0: 10}.get, ROUND)

    assert ready == [(TP0, [At(10)])]
    assert (here.applied, here.dropped, len(here)) == (1, 3, 0)


def test_records_published_before_a_rebalance_are_left_to_the_fetch() -> None:
    here = CommandsHere()
    here.add(TP0, At(10), ROUND)
    here.add(TP0, At(11), (1, 1))  # published after a revocation began

    assert here.take({TP0: 10}.get, (1, 1)) == []  # 10's round is over, and 11 follows it
    assert here.dropped == 2

    here.add(TP0, At(10), ROUND)
    here.clear()
    assert (len(here), here.dropped, here.take({TP0: 10}.get, ROUND)) == (0, 3, [])


@given(
    offsets=st.sets(st.integers(0, 30), max_size=20),
    start=st.one_of(st.none(), st.integers(0, 30)),
)
def test_exactly_the_run_that_follows_on_from_the_next_offset_is_taken(
    offsets: set[int], start: int | None
) -> None:
    here = CommandsHere()
    for offset in sorted(offsets, reverse=True):
        here.add(TP0, At(offset), ROUND)

    ready = here.take(lambda tp: start, ROUND)

    expected: list[int] = []
    while start is not None and start + len(expected) in offsets:
        expected.append(start + len(expected))
    assert [record.offset for _tp, run in ready for record in run] == expected
    assert here.applied + here.dropped == len(offsets)
