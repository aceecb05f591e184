"""Agents tier: stockflow's real Faust agents in Faust's ``test_context`` with the memory store.

Topic sends are captured instead of produced, so each test drives one agent and inspects both
what it published and what it wrote to its table.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from stockflow import Settings, create_app


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes
    partition: int | None

    def json(self) -> Any:
        return json.loads(self.value)


@dataclass
class AgentWorld:
    app: Any
    handle: Any
    sent: list[Sent] = field(default_factory=list)

    def sent_to(self, role: str) -> list[Sent]:
        name = self.handle.topics[role].get_topic_name()
        return [s for s in self.sent if s.topic == name]

    def agent(self, suffix: str) -> Any:
        return self.app.agents[f"{self.handle.settings.app_id}.{suffix}"]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentWorld]:
    settings = Settings(
        app_id=f"agents{uuid.uuid4().hex[:6]}", store="memory://", partitions=4, web_enabled=False
    )
    app = create_app(settings)
    app.finalize()
    app.flow_control.resume()
    world = AgentWorld(app=app, handle=app.stockflow)
    for topic in world.handle.topics.values():

        async def capture(
            *, key: Any = None, value: Any = None, partition: Any = None, _topic: Any = topic
        ) -> None:
            world.sent.append(Sent(_topic.get_topic_name(), key, value, partition))

        monkeypatch.setattr(topic, "send", capture)
    yield world


async def put_from(
    wrapper: Any, topic: str, value: bytes, *, key: bytes | None, partition: int = 0
) -> None:
    """``wrapper.put`` with the message attributed to ``topic`` (test_context otherwise names
    every message's topic ``<internal>``)."""
    original = wrapper.to_message

    def to_message(*args: Any, **kwargs: Any) -> Any:
        message = original(*args, **kwargs)
        message.topic = topic
        return message

    wrapper.to_message = to_message
    try:
        await wrapper.put(value, key=key, partition=partition)
    finally:
        wrapper.to_message = original
