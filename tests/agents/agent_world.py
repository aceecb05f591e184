"""What the agent tests share: captured sends and putting a message on a named topic."""

from __future__ import annotations

import asyncio
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
        """What was produced to ``role``'s topic, internal batches unpacked into one
        :class:`Sent` per command (with the batch record's partition)."""
        name = self.handle.topics[role].get_topic_name()
        result: list[Sent] = []
        for sent in (s for s in self.sent if s.topic == name):
            body = sent.json()
            items = body.get("commands") or body.get("answers")
            if body.get("type") in ("ProductBatch", "ReplyBatch") and items:
                result.extend(
                    Sent(sent.topic, None, json.dumps(item).encode(), sent.partition)
                    for item in items
                )
            else:
                result.append(sent)
        return result

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
        event = await wrapper.put(value, key=key, partition=partition)
    finally:
        wrapper.to_message = original
    # stockflow's agents take records in batches and acknowledge a batch once it is processed;
    # put() returns when the record is queued, so wait for its acknowledgement.
    deadline = asyncio.get_running_loop().time() + 5.0
    while not event.message.acked:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"record on {topic} was not processed")
        await asyncio.sleep(0.001)
    # Its record batches are queued to the (capturing) client by tasks: let them run.
    for _ in range(10):
        await asyncio.sleep(0)
