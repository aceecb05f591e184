"""The baseline pipe: the ceiling for a Python program on this broker.

A minimal hand-written aiokafka program that moves the same records along the same path as
stockflow: read ``orders``, write one record per line to a product-keyed topic, read that topic,
write one result per line to ``reservations``. It batches (``getmany``, a lingering producer,
no per-record await) and has no framework, no state, no consumer group (partitions are assigned
and read from the beginning, so it never waits for a group join; it commits nothing).

Run as ``python -m bench.baseline_pipe --bootstrap HOST:PORT``; stopped by SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

__all__ = ["MIDDLE_TOPIC", "main", "matcher", "run_pipe"]

MIDDLE_TOPIC = "pipe-by-product"


def matcher(key: bytes, value: bytes) -> str | None:
    """Every record the pipe writes for a timed order is one line's result."""
    return "moved"


async def _consumer(bootstrap: str, topic: str, fetch_wait_ms: int) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_wait_ms,
        max_partition_fetch_bytes=1024 * 1024,
    )
    await consumer.start()
    ids = consumer.partitions_for_topic(topic) or set()
    partitions = [TopicPartition(topic, p) for p in sorted(ids)]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    return consumer


async def _stage(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    sink: str,
    transform: object,
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=100, max_records=5000)
        for messages in batch.values():
            for message in messages:
                for key, value in transform(message.value):  # type: ignore[operator]
                    await producer.send(sink, key=key, value=value)


def _split(raw: bytes) -> list[tuple[bytes, bytes]]:
    """``orders`` -> the product-keyed topic: one record per line (a StockSet passes as one)."""
    event = json.loads(raw)
    if event.get("type") == "StockSet":
        pid = event["product_id"]
        return [(pid.encode(), json.dumps({"product_id": pid, "order_id": None}).encode())]
    order_id = event["order_id"]
    return [
        (
            line["product_id"].encode(),
            json.dumps(
                {
                    "order_id": order_id,
                    "product_id": line["product_id"],
                    "quantity": line["quantity"],
                }
            ).encode(),
        )
        for line in event["lines"]
    ]


def _answer(raw: bytes) -> list[tuple[bytes, bytes]]:
    """The product-keyed topic -> ``reservations``, keyed by order (by product for stock)."""
    line = json.loads(raw)
    key = line["order_id"] or line["product_id"]
    value = {"order_id": line["order_id"], "product_id": line["product_id"], "status": "moved"}
    return [(key.encode(), json.dumps(value).encode())]


async def run_pipe(
    bootstrap: str, source: str, sink: str, fetch_wait_ms: int, linger_ms: int
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        acks="all",
    )
    await producer.start()
    first = await _consumer(bootstrap, source, fetch_wait_ms)
    second = await _consumer(bootstrap, MIDDLE_TOPIC, fetch_wait_ms)
    print("pipe ready", flush=True)
    try:
        await asyncio.gather(
            _stage(first, producer, MIDDLE_TOPIC, _split, stop),
            _stage(second, producer, sink, _answer, stop),
        )
    finally:
        await first.stop()
        await second.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", default="orders")
    parser.add_argument("--sink", default="reservations")
    parser.add_argument("--fetch-wait-ms", type=int, default=50)
    parser.add_argument("--linger-ms", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(
        run_pipe(args.bootstrap, args.source, args.sink, args.fetch_wait_ms, args.linger_ms)
    )


if __name__ == "__main__":
    main()
