"""What one fetch costs the embedded broker as a partition's log grows.

tansu's storage engine lists every record batch stored in a partition on each fetch of it that
has data past the fetch offset (``tansu-storage/src/dynostore.rs``, ``fetch``, build
``510f3e2``), so a fetch's time grows with the log, not with what it returns. This writes
one-record batches to a one-partition topic on a fresh embedded broker and, at each size in
``--sizes``, times fetches of the last record alone (docs/benchmarks.md, "The broker's log
length").

Run as ``python -m bench.broker_fetch [--sizes 200,2000,...] [--fetches 20]``.
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
    bootstrap: str, sizes: Sequence[int], fetches: int
) -> list[tuple[int, float]]:
    """``(records stored, p50 ms of a fetch of the last one)`` at each of ``sizes``."""
    await create_topics(bootstrap, [TOPIC], partitions=1)
    # A batch holds at most 64 bytes: one record each, as a producer without linger writes
    # under light load. tansu answers a fetch with no wait at all with nothing: 100 ms.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, max_batch_size=64)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, fetch_max_wait_ms=100, enable_auto_commit=False
    )
    await producer.start()
    await consumer.start()
    tp = TopicPartition(TOPIC, 0)
    consumer.assign([tp])
    results: list[tuple[int, float]] = []
    stored = 0
    try:
        for size in sorted(sizes):
            while stored < size:
                sends = [
                    await producer.send(TOPIC, b"x" * 40, key=b"k") for _ in range(SENDS_AT_ONCE)
                ]
                await asyncio.gather(*sends)
                stored += SENDS_AT_ONCE
            times = []
            for _ in range(fetches):
                consumer.seek(tp, stored - 1)
                started = time.perf_counter()
                got = await consumer.getmany(tp, timeout_ms=5_000)
                times.append((time.perf_counter() - started) * 1000)
                if not got.get(tp):
                    raise RuntimeError(f"no record fetched at {stored} records stored")
            results.append((stored, statistics.median(times)))
    finally:
        await producer.stop()
        await consumer.stop()
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--fetches", type=int, default=20)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    with EmbeddedBroker() as broker:
        for stored, ms in asyncio.run(fetch_times(broker.bootstrap, sizes, args.fetches)):
            print(f"{stored:>8,} records stored: a fetch of the last one {ms:6.2f} ms (p50)")


if __name__ == "__main__":
    main()
