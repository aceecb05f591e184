"""Fetch lanes against the real broker: an aiokafka consumer whose fetches are split by topic
(:mod:`stockflow._faust.lanes`) reads every record of every partition exactly once and in
order, over a connection of its own per lane. (Every worker in this tier runs with lanes on,
the default, and so does the chaos tier: rebalances, kills and refetches go through them.)"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.client import ConnectionGroup

from stockflow._faust.lanes import split_fetches
from stockflow.testing import EmbeddedBroker

TOPICS = ("orders-like", "commands-like", "other")
PER_PARTITION = 40


async def _produce(bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        sends = [
            await producer.send(topic, f"{topic}-{p}-{i}".encode(), partition=p)
            for i in range(PER_PARTITION)
            for topic in TOPICS
            for p in (0, 1)
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def _read_split(bootstrap: str) -> tuple[dict[TopicPartition, list[int]], set[object]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=200
    )
    await consumer.start()
    try:
        split_fetches(consumer, {"orders-like": "orders", "commands-like": "commands"})
        partitions = [TopicPartition(topic, p) for topic in TOPICS for p in (0, 1)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        offsets: dict[TopicPartition, list[int]] = {tp: [] for tp in partitions}
        wanted = len(partitions) * PER_PARTITION
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while sum(map(len, offsets.values())) < wanted and loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                offsets[tp].extend(record.offset for record in records)
                assert all(
                    record.value == f"{tp.topic}-{tp.partition}-{record.offset}".encode()
                    for record in records
                )
        return offsets, {group for _node, group in consumer._client._conns}
    finally:
        await consumer.stop()


def test_split_fetches_read_every_record_once_each_lane_on_its_own_connection() -> None:
    with EmbeddedBroker() as broker:
        broker.create_topics(list(TOPICS), partitions=2)
        asyncio.run(_produce(broker.bootstrap))
        offsets, groups = asyncio.run(_read_split(broker.bootstrap))

    assert offsets == {tp: list(range(PER_PARTITION)) for tp in offsets}
    assert {(ConnectionGroup.DEFAULT, "orders"), (ConnectionGroup.DEFAULT, "commands")} <= groups
    assert ConnectionGroup.DEFAULT in groups  # "other" and the consumer's own requests
