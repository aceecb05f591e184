"""stockflow's Faust agents, registered from one table of :class:`Handler` rows (agent, topic,
handler): the same table gives the :class:`BatchProcessor` its routes (:func:`routes`), so the
agents and the batch consumer cannot disagree on what a record of a topic does.

With stockflow's transport (the default, ``STOCKFLOW_CONSUMER=batch``) the consumer gives the
records of stockflow's topics to the processor directly and the agents' streams stay empty;
the agents still declare the topics, so that Faust subscribes, assigns and co-partitions them
with the tables. With ``STOCKFLOW_CONSUMER=stream``, an app whose transport was created before
:func:`stockflow.install`, or in Faust's ``test_context``, records arrive here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import cast

import faust
from faust.types import TP, AgentT, AppT, ChannelT, Message, StreamT, TopicT

from stockflow._faust.batches import BatchProcessor, Probe, Record, Route
from stockflow.garbage import collect_between_batches
from stockflow.processing.records import Meta, Step
from stockflow.tables.store import TableStore

__all__ = ["Batching", "Handler", "register_agents", "routes"]


@dataclass(frozen=True, slots=True)
class Batching:
    """``max_records`` per batch at most; a batch closes after ``within`` seconds even when
    short (the latency a hop may add under light load). Only for the stream path
    (``streams``); with the batch consumer (``streams=False``) each agent takes what reaches
    its stream one record at a time, without a timer."""

    max_records: int = 1000
    within: float = 0.005
    streams: bool = True


@dataclass(frozen=True, slots=True)
class Handler:
    """One row of the agent table: the agent ``agent`` (its name after the app id prefix, also
    its metrics label) reads ``topic`` and hands each record to ``handle`` against ``store``.
    Rows that share an agent are one agent reading their topics as one stream. ``timers``:
    the timer scheduler sends ``store``'s due-timer ticks into ``topic``
    (:func:`stockflow.agents.register_scheduler`)."""

    agent: str
    topic: TopicT
    handle: Callable[[bytes | None, Meta], Step]
    store: TableStore
    timers: bool = False


def routes(
    handlers: Sequence[Handler], *, prefix: str, probe: Callable[[str], Probe]
) -> dict[str, Route]:
    """The processor's routes, by topic name; ``probe(agent)`` is called once per agent."""
    probes: dict[str, Probe] = {}
    result: dict[str, Route] = {}
    for row in handlers:
        if row.agent not in probes:
            probes[row.agent] = probe(row.agent)
        name = f"{prefix}.{row.agent}"
        result[row.topic.get_topic_name()] = Route(name, row.handle, row.store, probes[row.agent])
    return result


def register_agents(
    app: AppT,
    handlers: Sequence[Handler],
    *,
    prefix: str,
    processor: BatchProcessor,
    batching: Batching,
) -> list[AgentT[bytes]]:
    """One Faust agent per distinct ``Handler.agent``, named ``{prefix}.{agent}``; the
    processor's routes say what each record of its topics does."""
    topics: dict[str, list[TopicT]] = {}
    for row in handlers:
        topics.setdefault(row.agent, []).append(row.topic)
    body = _agent_body(processor, batching)
    return [
        app.agent(_channel(app, channel), name=f"{prefix}.{agent}")(body)
        for agent, channel in topics.items()
    ]


def _channel(app: AppT, topics: Sequence[TopicT]) -> ChannelT[bytes]:
    if len(topics) == 1:
        return topics[0]
    # An agent of several topics (orders: the public topic and the internal replies) reads them
    # as one stream, so one writer sees all of an order's events in order.
    names = [topic.get_topic_name() for topic in topics]
    return app.topic(*names, key_serializer="raw", value_serializer="raw")


def _agent_body(
    processor: BatchProcessor, batching: Batching
) -> Callable[[StreamT[bytes]], Awaitable[None]]:
    async def agent(stream: StreamT[bytes]) -> None:
        if not batching.streams:
            # The batch consumer hands stockflow's records to the processor, so in a worker
            # these streams carry nothing: the agents exist for the topic subscription (and
            # Faust's test_context, which waits for each record before it sends the next).
            # take_events would wake every agent every ``within`` for nothing: 0.09 cores of
            # an idle worker, measured, and as many wake-ups of a busy one.
            async for event in cast(faust.Stream[bytes], stream).events():
                message = event.message
                await processor.process(
                    [(TP(message.topic, message.partition), [_record(message)])]
                )
                collect_between_batches()
            return
        # Faust acknowledges a batch's records only after this body returns for it: a crash
        # mid-batch redelivers the whole batch (processing is idempotent).
        # Faust's StreamT does not declare take_events; every stream it hands an agent has it.
        events_of = cast(faust.Stream[bytes], stream).take_events
        async for events in events_of(batching.max_records, within=batching.within):
            by_partition: dict[TP, list[Record]] = {}
            for event in events:
                message = event.message
                by_partition.setdefault(TP(message.topic, message.partition), []).append(
                    _record(message)
                )
            await processor.process(by_partition.items())
            del by_partition, events  # freed before the collector looks (stockflow.garbage)
            collect_between_batches()

    return agent


def _record(message: Message) -> Record:
    """A Faust message as the processor reads it (timestamp in milliseconds)."""
    return Record(
        topic=message.topic,
        offset=message.offset,
        timestamp=round(message.timestamp * 1000),
        key=message.key,
        value=message.value,
    )
