"""Agents tier: stockflow's real Faust agents in Faust's ``test_context`` with the memory store.

Producer sends are captured instead of produced, so each test drives one agent and inspects both
what it published and what it wrote to its table.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.structs import RecordMetadata, TopicPartition

from stockflow import Settings, create_app

from agent_world import AgentWorld, Sent


class CapturingClient:
    """Stands in for aiokafka's producer: ``send_batch`` (the batch built as it is handed
    over, so later records start another) and the metadata look-ups of a topic's partitions
    and of the brokers."""

    def __init__(self, world: AgentWorld, partitions: int) -> None:
        self.offsets: dict[tuple[str, int], int] = {}
        self.world = world
        self.client = self
        self.cluster = self
        self.partitions = partitions

    async def _wait_on_metadata(self, topic: str) -> None:
        return None

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def brokers(self) -> set[str]:
        return {"broker-0"}  # one, as the embedded broker: outputs follow the client's order

    async def send_batch(
        self, batch: BatchBuilder, topic: str, *, partition: int
    ) -> asyncio.Future[RecordMetadata]:
        built = DefaultRecordBatch(bytearray(batch._build()))  # read as a consumer reads it
        records = [(record.key, record.value) for record in built]
        base = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = base + len(records)
        for key, value in records:
            self.world.sent.append(Sent(topic, key, value, partition))
        tp = TopicPartition(topic, partition)
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        future.set_result(RecordMetadata(topic, partition, tp, base, -1, 0, 0))
        return future


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentWorld]:
    settings = Settings(
        app_id=f"agents{uuid.uuid4().hex[:6]}", store="memory://", partitions=4, web_enabled=False
    )
    app = create_app(settings)
    app.finalize()
    app.flow_control.resume()
    world = AgentWorld(app=app, handle=app.stockflow)

    # stockflow publishes through the app's producer client, a record batch per partition;
    # capture what it would have produced, and answer as the client does: a future of the
    # batch's metadata (offsets per partition).
    client = CapturingClient(world, settings.partitions)
    monkeypatch.setattr(app.producer, "_ensure_producer", lambda: client)
    yield world
