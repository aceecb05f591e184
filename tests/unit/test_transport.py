"""TunedConsumer: a record that aiokafka returned before a seek moved its partition back over it
is never delivered after that seek; every other record is delivered, none is skipped.

Faust's consumer is not started here: its ``getmany`` is replaced by a fake fetch, and the
aiokafka fetch positions by a dict, so that a seek can be placed exactly between two records.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from stockflow.transport import TunedConsumer

ORDERS = TP("orders", 0)
REPLIES = TP("replies", 0)


@dataclass
class FakeMessage:
    offset: int


class FakeThread:
    """Stands in for the consumer thread: aiokafka's fetch position per partition."""

    def __init__(self, positions: dict[TP, int | None]) -> None:
        self.positions = positions

    def fetch_position(self, tp: TP) -> int | None:
        return self.positions.get(tp)


def make_consumer(positions: dict[TP, int | None]) -> Any:
    consumer: Any = TunedConsumer.__new__(TunedConsumer)  # no Faust service machinery needed
    consumer._thread = FakeThread(positions)
    return consumer


def fake_fetch(
    monkeypatch: pytest.MonkeyPatch,
    records: list[tuple[TP, int]],
    *,
    seek_before: int | None = None,
    seek: dict[TP, int] | None = None,
) -> None:
    """Faust's getmany yields ``records``; before the record at index ``seek_before`` a seek
    happens: the seek counter moves and aiokafka's positions become ``seek``."""

    async def getmany(self: Any, timeout: float) -> Any:
        for index, (tp, offset) in enumerate(records):
            if index == seek_before:
                self._seeks += 1
                self._thread.positions.update(seek or {})
            yield tp, FakeMessage(offset)

    monkeypatch.setattr(faust_aiokafka.Consumer, "getmany", getmany)


def delivered(consumer: Any) -> list[tuple[TP, int]]:
    async def collect() -> list[tuple[TP, int]]:
        return [(tp, message.offset) async for tp, message in consumer.getmany(timeout=0.1)]

    return asyncio.run(collect())


def test_without_a_seek_every_record_is_delivered(monkeypatch: pytest.MonkeyPatch) -> None:
    records = [(ORDERS, 10), (REPLIES, 3), (ORDERS, 11)]
    fake_fetch(monkeypatch, records)
    assert delivered(make_consumer({ORDERS: 12, REPLIES: 4})) == records


def test_records_behind_a_seek_back_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker had read orders up to 12; a rebalance seeks it back to its committed offset 5.
    records = [(ORDERS, 10), (ORDERS, 11), (REPLIES, 3), (ORDERS, 12)]
    fake_fetch(monkeypatch, records, seek_before=1, seek={ORDERS: 5})
    consumer = make_consumer({ORDERS: 13, REPLIES: 4})
    # 10 came before the seek (processed, and fetched again from 5); 11 and 12 lie at or above
    # the new position and are fetched again too; replies were not moved and keep flowing.
    assert delivered(consumer) == [(ORDERS, 10), (REPLIES, 3)]


def test_a_seek_that_does_not_move_a_partition_back_drops_nothing_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = [(ORDERS, 10), (ORDERS, 11)]
    fake_fetch(monkeypatch, records, seek_before=0, seek={ORDERS: 12})
    assert delivered(make_consumer({ORDERS: 12})) == records


def test_a_partition_without_a_position_is_fetched_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # Revoked, or its position being reset: nothing of it is delivered from the old fetch.
    records = [(ORDERS, 10), (REPLIES, 3)]
    fake_fetch(monkeypatch, records, seek_before=0, seek={ORDERS: None})
    assert delivered(make_consumer({ORDERS: 11, REPLIES: 4})) == [(REPLIES, 3)]
