"""What one fetch costs the embedded broker as a partition's log grows.

tansu's storage engine lists every record batch stored in a partition on each fetch of it that
has data past the fetch offset (``tansu-storage/src/dynostore.rs``, ``fetch``, build
``510f3e2``), so a fetch's time grows with the log, not with what it returns. This writes
one-record batches to each partition of a topic on a fresh embedded broker and, at each size in
``--sizes`` (batches per partition), times fetches of the last record of every partition in one
request (docs/benchmarks.md, "The broker's log length"). ``--partitions 1,4,16``: each count
timed at each size; the listing is paid once per partition with data in the fetch.

Run as ``python -m bench.broker_fetch [--sizes 200,2000,...] [--partitions 1] [--fetches 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stockflow.testing.broker import EmbeddedBroker, create_topics

__all__ = ["fetch_times", "main"]

TOPIC = "bench-fetch-cost"
SIZES = (200, 2_000, 5_000, 10_000, 20_000, 40_000)
SENDS_AT_ONCE = 200


async def fetch_times(
    bootstrap: str, sizes: Sequence[int], fetches: int, partitions: Sequence[int] = (1,)
) -> list[tuple[int, int, float]]:
    """``(records stored per partition, partitions fetched, p50 ms of one fetch of the last
    record of each)`` at each of ``sizes`` and ``partitions``."""
    await create_topics(bootstrap, [TOPIC], partitions=max(partitions))
    # A batch holds at most 64 bytes: one record each, as a producer without linger writes
    # under light load. tansu answers a fetch with no wait at all with nothing: 100 ms.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, max_batch_size=64)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, fetch_max_wait_ms=100, enable_auto_commit=False
    )
    await producer.start()
    await consumer.start()
    every = [TopicPartition(TOPIC, p) for p in range(max(partitions))]
    results: list[tuple[int, int, float]] = []
    stored = 0
    try:
        for size in sorted(sizes):
            while stored < size:
                sends = [
                    await producer.send(TOPIC, b"x" * 40, partition=tp.partition)
                    for tp in every
                    for _ in range(SENDS_AT_ONCE)
                ]
                await asyncio.gather(*sends)
                stored += SENDS_AT_ONCE
            for count in sorted(partitions):
                tps = every[:count]
                consumer.assign(tps)
                times = [await _fetch_last(consumer, tps, stored) for _ in range(fetches)]
                results.append((stored, count, statistics.median(times)))
    finally:
        await producer.stop()
        await consumer.stop()
    return results


async def _fetch_last(
    consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition], stored: int
) -> float:
    """Milliseconds until the last record of every partition in ``tps`` is fetched."""
    for tp in tps:
        consumer.seek(tp, stored - 1)
    started = time.perf_counter()
    got = 0
    while got < len(tps):  # one request unless the broker answers for some partitions only
        records = await consumer.getmany(*tps, timeout_ms=5_000)
        if not records:
            raise RuntimeError(f"no record fetched at {stored} records stored")
        got += sum(len(batch) for batch in records.values())
    return (time.perf_counter() - started) * 1000


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--partitions", default="1")
    parser.add_argument("--fetches", type=int, default=20)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    counts = [int(s) for s in args.partitions.split(",")]
    with EmbeddedBroker() as broker:
        timed = asyncio.run(fetch_times(broker.bootstrap, sizes, args.fetches, counts))
    for stored, count, ms in timed:
        print(
            f"{stored:>8,} records stored per partition, {count:>3} partition(s) fetched: "
            f"{ms:6.2f} ms (p50)"
        )


if __name__ == "__main__":
    main()
