"""Agents tier: stockflow's real Faust agents in Faust's ``test_context`` with the memory store.

Producer sends are captured instead of produced, so each test drives one agent and inspects both
what it published and what it wrote to its table.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka.structs import RecordMetadata, TopicPartition

from stockflow import Settings, create_app

from agent_world import AgentWorld, Sent


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentWorld]:
    settings = Settings(
        app_id=f"agents{uuid.uuid4().hex[:6]}", store="memory://", partitions=4, web_enabled=False
    )
    app = create_app(settings)
    app.finalize()
    app.flow_control.resume()
    world = AgentWorld(app=app, handle=app.stockflow)

    # stockflow publishes through the app's producer; capture what it would have produced, and
    # answer as the client does: a future of the record's metadata (offsets per partition).
    offsets: dict[tuple[str, int], int] = {}

    async def capture(
        topic: str, key: Any, value: Any, partition: Any, timestamp: Any, headers: Any
    ) -> asyncio.Future[RecordMetadata]:
        world.sent.append(Sent(topic, key, value, partition))
        tp = TopicPartition(topic, partition or 0)
        offset = offsets[(topic, tp.partition)] = offsets.get((topic, tp.partition), -1) + 1
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        future.set_result(RecordMetadata(topic, tp.partition, tp, offset, -1, 0, 0))
        return future

    monkeypatch.setattr(app.producer, "send", capture)
    yield world
