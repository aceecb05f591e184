"""Reading and writing whole topics, for tests and the demo.

Whole-topic reads (:func:`read_topics`, :class:`Record`) live in the runtime's
:mod:`stockflow.kafka`, because ``stockflow audit`` and ``stockflow record`` use them in
production; they are re-exported here for tests.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stockflow.errors import BrokerError
from stockflow.kafka import Record, read_topic, read_topics, topic_partitions

__all__ = [
    "Record",
    "consumed_to_end",
    "produce",
    "read_topic",
    "read_topics",
    "wait_for",
]


def _encode(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value).encode()


async def produce(
    bootstrap: str,
    records: Iterable[tuple[str, Any, Any]],
    *,
    linger_ms: int = 5,
    client_kwargs: Mapping[str, Any] | None = None,
    timestamps: Iterable[int | None] | None = None,
) -> int:
    """Send ``(topic, key, value)`` records; dicts become JSON, str becomes UTF-8. Returns the
    number sent once every one is acknowledged. ``timestamps`` (epoch ms, one per record) sets
    the records' timestamps; default: now."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=linger_ms, acks="all", **dict(client_kwargs or {})
    )
    await producer.start()
    try:
        stamps = iter(timestamps) if timestamps is not None else None
        futures = [
            await producer.send(
                topic,
                key=_encode(key),
                value=_encode(value),
                timestamp_ms=next(stamps) if stamps is not None else None,
            )
            for topic, key, value in records
        ]
        await producer.flush()
        for future in futures:
            await future
        return len(futures)
    finally:
        await producer.stop()


def wait_for(
    bootstrap: str,
    topics: Iterable[str],
    done: Any,
    *,
    timeout: float = 60.0,
    interval: float = 0.5,
) -> dict[str, list[Record]]:
    """Re-read ``topics`` until ``done(records_by_topic)`` is true; the last read is returned.
    Raises :class:`BrokerError` with what was seen when ``timeout`` passes."""
    names = list(topics)
    deadline = time.monotonic() + timeout
    while True:
        seen = asyncio.run(read_topics(bootstrap, names))
        if done(seen):
            return seen
        if time.monotonic() > deadline:
            counts = {name: len(records) for name, records in seen.items()}
            raise BrokerError(f"condition not met in {timeout}s; records seen: {counts}")
        time.sleep(interval)


async def consumed_to_end(
    bootstrap: str,
    group: str,
    topics: Iterable[str],
    *,
    client_kwargs: Mapping[str, Any] | None = None,
) -> tuple[bool, dict[str, int]]:
    """Whether ``group`` has committed every record of ``topics``, and the ends it was
    compared with (``"topic[partition]" -> end offset``).

    Committed offsets are read without joining the group (OffsetFetch), the ends from Fetch
    responses (see the module docstring)."""
    from stockflow._faust.transport import fetched_highwaters

    kwargs = dict(client_kwargs or {})
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **kwargs
    )
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, topics)
        ends = await fetched_highwaters(bootstrap.split(","), partitions, {}, client_kwargs=kwargs)
        caught_up = True
        for tp in partitions:
            committed = await consumer.committed(tp)
            if ends[tp] > 0 and (committed or 0) < ends[tp]:
                caught_up = False
                break
        return caught_up, {f"{tp.topic}[{tp.partition}]": ends[tp] for tp in partitions}
    finally:
        await consumer.stop()
