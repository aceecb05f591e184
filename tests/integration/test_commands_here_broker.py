"""A product command applied where it was published (stockflow._faust.commands_here) is
processed as its fetched copy: against the real broker, the offset and timestamp its
acknowledgement gives are those of the record a consumer reads back, with the same key and
bytes, while other records (another producer's, earlier sends' in the same record batch) are
written to the same partitions in between."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stockflow._faust.commands_here import Published
from stockflow._faust.producing import BatchSender
from stockflow.agents.publish import Publisher
from stockflow.processing.records import Out
from stockflow.testing import EmbeddedBroker

COMMANDS = "sf-product-commands"
REPLIES = "sf-order-replies"
PARTITIONS = 3


class Topic:
    def __init__(self, name: str) -> None:
        self.name = name

    def get_topic_name(self) -> str:
        return self.name


def _outputs(round_: int) -> list[Out]:
    """A processed batch's outputs: commands for two or three partitions (several per
    partition: one ProductBatch record each), and answers."""
    outputs = [
        Out("product_commands", f"p-{n}".encode(), f'{{"round":{round_},"n":{n}}}'.encode(), n % 3)
        for n in range(round_ % 4 + 1)
    ]
    outputs.append(Out("order_replies", b"o-1", f'{{"answer":{round_}}}'.encode(), 0))
    return outputs


async def _publish(bootstrap: str) -> list[Published]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    other = AIOKafkaProducer(bootstrap_servers=bootstrap)  # another worker's desk
    await producer.start()
    await other.start()
    try:
        conf = SimpleNamespace(producer_max_batch_size=256 * 1024, producer_compression_type=None)
        app: Any = SimpleNamespace(
            producer=SimpleNamespace(_ensure_producer=lambda: producer), conf=conf
        )
        sender = BatchSender(app, compression="zstd")
        topics: Any = {"product_commands": Topic(COMMANDS), "order_replies": Topic(REPLIES)}
        publisher = Publisher(app, topics, partitions=PARTITIONS, sender=sender)
        published: list[Published] = []
        for round_ in range(40):
            if round_ % 3 == 0:
                await other.send(COMMANDS, b"theirs", partition=round_ % PARTITIONS)
            await publisher.publish(_outputs(round_), commands=published)
            if round_ % 5 == 0:
                await asyncio.sleep(0.01)  # some sends join an open batch, some start one
        await sender.flushed()
        await asyncio.wait([p.delivery for p in published], timeout=30)
        return published
    finally:
        await other.stop()
        await producer.stop()


async def _read(bootstrap: str, count: int) -> dict[tuple[int, int], Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(COMMANDS, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: dict[tuple[int, int], Any] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(records) < count and loop.time() < deadline:
            for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                for record in batch:
                    records[(tp.partition, record.offset)] = record
        return records
    finally:
        await consumer.stop()


def test_an_acknowledged_command_is_the_record_read_back_at_its_offset() -> None:
    with EmbeddedBroker() as broker:
        broker.create_topics([COMMANDS, REPLIES], partitions=PARTITIONS)
        published = asyncio.run(_publish(broker.bootstrap))
        theirs = 14  # other.send in rounds 0, 3, ..., 39
        records = asyncio.run(_read(broker.bootstrap, len(published) + theirs))

    assert len(published) == sum(min(round_ % 4 + 1, 3) for round_ in range(40))
    assert len(records) == len(published) + theirs
    placed = set()
    for command in published:
        offset = command.offset()
        assert offset is not None  # acknowledged, and the broker kept the producer's timestamp
        record = records[(command.partition, offset)]
        assert (record.key, record.value, record.timestamp) == (
            command.key,
            command.value,
            command.timestamp,
        )
        placed.add((command.partition, offset))
    assert len(placed) == len(published)
