"""Records a fetch skips on the embedded broker, with and without the reader's guard
(:class:`stockflow.holes.HoleGuard`).

Several producers write the same partitions at once (``--producers``, each sending
``--batch`` records to every partition and waiting for the acknowledgements, in a loop) while
one groupless aiokafka reader follows the topic from the beginning. The reader counts every
fetch that starts past its next offset and every hole inside a fetch, and at the end how many
records it read against how many the partitions hold. With ``--guard`` the reader goes through
:class:`~stockflow.holes.HoleGuard` (delivers up to a hole, seeks back to it); it should then
read every record (docs/reliability.md, "Records a fetch skipped").

Run as ``python -m bench.broker_holes [--seconds 60] [--producers 3] [--batch 2] [--guard]``.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, field
from itertools import pairwise

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stockflow.holes import from_beginning
from stockflow.testing.broker import EmbeddedBroker, create_topics

__all__ = ["HoleCount", "count_holes", "main"]

TOPIC = "bench-holes"
PARTITIONS = 4


@dataclass
class HoleCount:
    sent: int = 0
    read: int = 0
    late_starts: list[tuple[int, int, int]] = field(default_factory=list)
    """(partition, next offset, first offset fetched) of fetches that started past it."""
    inner: list[tuple[int, int, int]] = field(default_factory=list)
    """(partition, offset, next offset fetched) of holes inside one fetch."""
    refetched: int = 0
    passed: int = 0


async def _produce(bootstrap: str, name: int, batch: int, stop: asyncio.Event) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    sent = 0
    try:
        while not stop.is_set():
            futures = []
            for partition in range(PARTITIONS):
                for _ in range(batch):
                    key = f"{name}-{sent}".encode()
                    futures.append(
                        await producer.send(TOPIC, b"x" * 100, key=key, partition=partition)
                    )
                    sent += 1
            await asyncio.gather(*futures)
            await asyncio.sleep(0.002)
    finally:
        await producer.stop()
    return sent


async def _follow(bootstrap: str, guarded: bool, stop: asyncio.Event, count: HoleCount) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    guard = await from_beginning(consumer, tps)
    following = dict.fromkeys(tps, 0)
    try:
        while True:
            fetched = await consumer.getmany(timeout_ms=200, max_records=5000)
            if not fetched and stop.is_set():
                break
            for tp, records in fetched.items():
                if guarded:
                    records = list(guard.take(tp, records))
                if not records:
                    continue
                if records[0].offset > following[tp]:
                    count.late_starts.append((tp.partition, following[tp], records[0].offset))
                for before, after in pairwise(records):
                    if after.offset != before.offset + 1:
                        count.inner.append((tp.partition, before.offset + 1, after.offset))
                following[tp] = records[-1].offset + 1
                count.read += len(records)
    finally:
        count.refetched, count.passed = guard.refetched, guard.passed
        await consumer.stop()


async def count_holes(seconds: float, producers: int, batch: int, guarded: bool) -> HoleCount:
    count = HoleCount()
    with EmbeddedBroker() as broker:
        await create_topics(broker.bootstrap, [TOPIC], partitions=PARTITIONS)
        stop = asyncio.Event()
        reader = asyncio.create_task(_follow(broker.bootstrap, guarded, stop, count))
        writers = [
            asyncio.create_task(_produce(broker.bootstrap, n, batch, stop))
            for n in range(producers)
        ]
        await asyncio.sleep(seconds)
        stop.set()
        count.sent = sum(await asyncio.gather(*writers))
        await asyncio.wait_for(reader, 60)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--producers", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2, help="records per partition per send")
    parser.add_argument("--guard", action="store_true", help="read through HoleGuard")
    args = parser.parse_args()
    count = asyncio.run(count_holes(args.seconds, args.producers, args.batch, args.guard))
    print(
        f"producers {args.producers}, batch {args.batch}, guard {args.guard}: "
        f"sent {count.sent:,}, read {count.read:,} ({count.sent - count.read:,} never read); "
        f"fetches starting past the next offset {len(count.late_starts)}, holes inside a "
        f"fetch {len(count.inner)}; guard refetches {count.refetched}, passed {count.passed}"
    )
    for what, rows in (("late starts", count.late_starts), ("inner holes", count.inner)):
        if rows:
            print(f"  first {what}: {rows[:5]}")


if __name__ == "__main__":
    main()
