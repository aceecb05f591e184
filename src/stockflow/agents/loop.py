"""stockflow's Faust agents: they subscribe stockflow's topics and, where records reach them
through Faust's streams, hand them to the same :class:`BatchProcessor` as the batch consumer.

With stockflow's transport (the default, ``STOCKFLOW_CONSUMER=batch``) the consumer gives the
records of stockflow's topics to the processor directly and the agents' streams stay empty;
the agents still declare the topics, so that Faust subscribes, assigns and co-partitions them
with the tables. With ``STOCKFLOW_CONSUMER=stream``, an app whose transport was created before
:func:`stockflow.install`, or in Faust's ``test_context``, records arrive here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from faust.types import TP

from stockflow._faust.batches import BatchProcessor, Record

__all__ = ["Batching", "register_agents"]


@dataclass(frozen=True, slots=True)
class Batching:
    """``max_records`` per batch at most; a batch closes after ``within`` seconds even when
    short (the latency a hop may add under light load). Only for the stream path."""

    max_records: int = 1000
    within: float = 0.005


def register_agents(
    app: Any,
    agents: Sequence[tuple[str, Any]],
    *,
    processor: BatchProcessor,
    batching: Batching,
) -> list[Any]:
    """One Faust agent per ``(name, channel)``; the processor's routes say what each record
    of the channel's topics does."""
    return [
        app.agent(channel, name=name)(_agent_body(processor, batching)) for name, channel in agents
    ]


def _agent_body(processor: BatchProcessor, batching: Batching) -> Any:
    async def agent(stream: Any) -> None:
        # Faust acknowledges a batch's records only after this body returns for it: a crash
        # mid-batch redelivers the whole batch (processing is idempotent).
        async for events in stream.take_events(batching.max_records, within=batching.within):
            by_partition: dict[Any, list[Record]] = {}
            for event in events:
                message = event.message
                by_partition.setdefault(TP(message.topic, message.partition), []).append(
                    Record(
                        topic=message.topic,
                        offset=message.offset,
                        timestamp=round(message.timestamp * 1000),
                        key=message.key,
                        value=message.value,
                    )
                )
            await processor.process(by_partition.items())

    return agent
