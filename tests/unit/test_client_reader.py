"""stockflow.client.reader: the client's reader of outcomes does not move past a record a fetch
skipped (stockflow.holes); it fetches the partition again from the hole."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from stockflow.client.reader import Reader
from stockflow.models import LineRefusal, OrderRejected

TOPIC = "reservations"
TP0 = TopicPartition(TOPIC, 0)


@dataclass(frozen=True)
class FakeRecord:
    offset: int
    key: bytes
    value: bytes
    timestamp: int = field(default_factory=lambda: int(time.time() * 1000))


def rejected(order_id: str, offset: int) -> FakeRecord:
    event = OrderRejected(
        order_id=order_id,
        reason="insufficient_stock",
        lines=[LineRefusal(product_id="p", quantity=1, reason="insufficient_stock")],
    )
    return FakeRecord(offset, order_id.encode(), event.model_dump_json().encode())


class FakeConsumer:
    """Answers getmany from a script; records seeks."""

    def __init__(self, fetches: list[dict[TopicPartition, list[FakeRecord]]]) -> None:
        self.fetches = fetches
        self.seeks: list[tuple[TopicPartition, int]] = []

    def assign(self, tps: Any) -> None: ...
    def pause(self, *tps: Any) -> None: ...
    def resume(self, *tps: Any) -> None: ...

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def end_offsets(self, tps: Any) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 10)

    async def getmany(self, timeout_ms: int = 0) -> dict[TopicPartition, list[FakeRecord]]:
        if self.fetches:
            return self.fetches.pop(0)
        await asyncio.sleep(0.01)
        return {}


def test_an_outcome_a_fetch_skipped_is_fetched_again_and_answered_once() -> None:
    consumer = FakeConsumer(
        [
            {TP0: [rejected("o-2", 10), rejected("o-1", 12)]},  # 11 not readable yet
            {TP0: [rejected("o-3", 11), rejected("o-1", 12)]},
        ]
    )
    reader = Reader(consumer, TOPIC)  # type: ignore[arg-type]
    seen: list[tuple[str, object]] = []

    async def run() -> None:
        for order in ("o-1", "o-3"):
            reader.track(order)
            reader.add(order, lambda event, order=order: seen.append((order, event)) or True)
        await reader.start(1)
        await reader.watch(0)
        for _ in range(100):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.01)
        await reader.stop()

    asyncio.run(run())

    assert (TP0, 11) in consumer.seeks
    assert [order for order, _ in seen] == ["o-3", "o-1"]  # o-1 after o-3, once
    assert reader.records_read == 3  # 12 the first time was held back with the hole
