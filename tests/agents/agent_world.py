"""What the agent tests share: captured sends and putting a message on a named topic."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AgentWorld", "Sent", "put_from"]


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
