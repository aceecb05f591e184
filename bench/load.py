"""Workloads, the load generator and the outcome consumer.

A :class:`Workload` is a deterministic set of input records: ``StockSet`` records (one per
product, plus a warm-up product) and ``OrderPlaced`` records keyed by order id. Every system under
test reads the same records; each system says how it recognises an outcome
(:data:`Matcher`) and how many output records make one order's outcome (``parts``).

Clocks: the producer and the consumer run in the harness process, so produce and arrival times
come from one clock (``time.time()``).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from stockflow.holes import from_beginning
from stockflow.kafka import groupless_consumer, topic_partitions

__all__ = [
    "WARM_PRODUCT",
    "ZIPF_SKEW",
    "Matcher",
    "Tally",
    "Workload",
    "consume_outcomes",
    "highwaters",
    "produce",
    "run_load",
    "workload",
]

WARM_PRODUCT = "sku-warm"

ZIPF_SKEW = 1.0
"""The ``zipf`` workload's exponent, the classic law: over 2,000 products the most popular one
takes about 12% of the orders, the hundredth about 0.12%."""
"""A product with plenty of stock that only warm-up orders use."""

Record = tuple[bytes, bytes]
Matcher = Callable[[bytes, bytes], str | None]
"""``(key, value) -> status`` of an outcome record of the timed run, or ``None`` to skip it.
Only records whose key starts with the workload's prefix are offered."""


@dataclass(frozen=True)
class Workload:
    """``kind``: ``spread`` (single-line orders over ``products`` products), ``hot`` (every order
    for one product with stock for 10% of them), ``multi`` (``lines`` distinct products) or
    ``zipf`` (single-line orders whose product follows Zipf's law with exponent ``skew`` over
    ``products`` products, each stocked for half the average demand: the popular ones sell out,
    the long tail does not; the shape of an independent run of issue 11)."""

    kind: str
    orders: int
    products: int
    lines: int
    stock: int
    prefix: str
    seed: int = 6
    skew: float = 0.0
    """Zipf's exponent of the product picked by a single-line order; 0: uniform."""

    def product_id(self, index: int) -> str:
        return f"sku-{index}"

    def stock_records(self) -> list[Record]:
        """One StockSet per product (keyed by product id), the warm-up product last."""
        ids = [self.product_id(i) for i in range(self.products)] + [WARM_PRODUCT]
        on_hand = [self.stock] * self.products + [10_000_000]
        return [
            (pid.encode(), _json({"type": "StockSet", "product_id": pid, "on_hand": qty}))
            for pid, qty in zip(ids, on_hand, strict=True)
        ]

    def order_records(self) -> list[Record]:
        records = []
        for i, picks in enumerate(self._picks()):
            lines = [{"product_id": self.product_id(p), "quantity": 1} for p in picks]
            records.append(_order(f"{self.prefix}{i}", lines))
        return records

    def _picks(self) -> list[list[int]]:
        """Each order's product indexes, the same on every call (seeded)."""
        rng = random.Random(self.seed)
        if self.skew:
            weights = [1 / (rank + 1) ** self.skew for rank in range(self.products)]
            return [[p] for p in rng.choices(range(self.products), weights, k=self.orders)]
        if self.lines == 1:
            return [[rng.randrange(self.products)] for _ in range(self.orders)]
        return [rng.sample(range(self.products), self.lines) for _ in range(self.orders)]

    def warm_records(self, count: int) -> list[Record]:
        line = [{"product_id": WARM_PRODUCT, "quantity": 1}]
        return [_order(f"warm-{self.prefix}{i}", line) for i in range(count)]

    @property
    def expected_reserved(self) -> int:
        """Orders that must be reserved (every system sees the same stock): hot stock is the
        bound; spread and multi have stock for everyone; zipf, each product's stock or its
        demand, whichever is less (every order has one line of one unit)."""
        if self.skew:
            demand = Counter(picks[0] for picks in self._picks())
            return sum(min(count, self.stock) for count in demand.values())
        return min(self.orders, self.stock) if self.kind == "hot" else self.orders


def workload(kind: str, orders: int, products: int, prefix: str | None = None) -> Workload:
    prefix = prefix or f"{kind}-"
    if kind == "spread":
        return Workload(kind, orders, products, 1, orders, prefix)
    if kind == "hot":
        return Workload(kind, orders, 1, 1, max(orders // 10, 1), prefix)
    if kind == "multi":
        return Workload(kind, orders, products, 3, orders, prefix)
    if kind == "zipf":
        stock = max(orders // (2 * products), 1)  # half the average demand
        return Workload(kind, orders, products, 1, stock, prefix, skew=ZIPF_SKEW)
    raise ValueError(f"unknown workload {kind!r}")


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _order(order_id: str, lines: list[dict[str, object]]) -> Record:
    return order_id.encode(), _json({"type": "OrderPlaced", "order_id": order_id, "lines": lines})


# --- producing ------------------------------------------------------------------------------


async def produce(
    bootstrap: str,
    topic: str,
    records: Sequence[Record],
    *,
    rate: float | None = None,
    linger_ms: int = 5,
    partitions: dict[bytes, int] | None = None,
) -> dict[bytes, float]:
    """Send ``records``; as fast as possible, or paced at ``rate`` records/s. Returns each key's
    send time. Waits until every record is acknowledged; ``partitions``, if given, receives the
    partition each key was written to."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        acks="all",
        request_timeout_ms=30_000,
    )
    await producer.start()
    sent: dict[bytes, float] = {}
    try:
        futures = []
        started = time.time()
        tick = 0.005
        for index, (key, value) in enumerate(records):
            if rate is not None:
                due = started + index / rate
                delay = due - time.time()
                if delay > tick:
                    await asyncio.sleep(delay)
            sent[key] = time.time()
            futures.append(await producer.send(topic, key=key, value=value))
        await producer.flush()
        for (key, _value), future in zip(records, futures, strict=True):
            metadata = await future
            if partitions is not None:
                partitions[key] = metadata.partition
        return sent
    finally:
        await producer.stop()


# --- consuming ------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the consumer saw of one timed run."""

    want: int
    parts: int
    arrived: dict[str, float] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    status_of: dict[str, str] = field(default_factory=dict)
    _partial: dict[str, int] = field(default_factory=dict)

    def add(self, order_id: str, status: str, now: float) -> None:
        if order_id in self.arrived:
            return  # a redelivered outcome (at-least-once)
        seen = self._partial.get(order_id, 0) + 1
        if seen < self.parts:
            self._partial[order_id] = seen
            return
        self._partial.pop(order_id, None)
        self.arrived[order_id] = now
        self.status_of[order_id] = status
        self.statuses[status] = self.statuses.get(status, 0) + 1

    @property
    def done(self) -> bool:
        return len(self.arrived) >= self.want


async def consume_outcomes(
    bootstrap: str,
    topic: str,
    prefix: bytes,
    matcher: Matcher,
    tally: Tally,
    *,
    timeout: float,
    started: asyncio.Event | None = None,
) -> Tally:
    """Read ``topic`` from the beginning without a group until ``tally`` is done or
    ``timeout`` passes (then the tally is returned incomplete)."""
    consumer = groupless_consumer(
        bootstrap, fetch_max_wait_ms=10, max_partition_fetch_bytes=4 * 1024 * 1024
    )
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, [topic])
        consumer.assign(partitions)
        # Every system's outputs are read through the same guard: a record a tansu fetch
        # skipped (stockflow.holes) left a tally waiting out its timeout.
        guard = await from_beginning(consumer, partitions)
        if started is not None:
            started.set()
        deadline = time.monotonic() + timeout
        while not tally.done and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=50, max_records=20_000)
            now = time.time()
            for tp, messages in batch.items():
                for message in guard.take(tp, messages):
                    key = message.key
                    if key is None or not key.startswith(prefix) or message.value is None:
                        continue
                    status = matcher(key, message.value)
                    if status is not None:
                        tally.add(key.decode(), status, now)
        return tally
    finally:
        await consumer.stop()


async def run_load(
    bootstrap: str,
    source: str,
    sink: str,
    records: Sequence[Record],
    prefix: str,
    matcher: Matcher,
    *,
    parts: int,
    timeout: float,
    rate: float | None = None,
    linger_ms: int = 5,
) -> tuple[dict[bytes, float], Tally]:
    """Start the consumer, then produce ``records`` into ``source`` and wait for their outcomes
    on ``sink``. Returns send times and the tally."""
    tally = Tally(want=len(records), parts=parts)
    ready = asyncio.Event()
    consumer = asyncio.create_task(
        consume_outcomes(
            bootstrap, sink, prefix.encode(), matcher, tally, timeout=timeout, started=ready
        )
    )
    await asyncio.wait_for(ready.wait(), timeout=30)
    sent = await produce(bootstrap, source, records, rate=rate, linger_ms=linger_ms)
    await consumer
    return sent, tally


async def highwaters(bootstrap: str, topic: str, *, timeout: float = 10.0) -> dict[int, int]:
    """Each partition's high watermark as a Fetch response reports it (ListOffsets is wrong on
    tansu 0.6, see BROKER.md)."""
    consumer = groupless_consumer(
        bootstrap, auto_offset_reset="latest", fetch_max_wait_ms=10, max_partition_fetch_bytes=1024
    )
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, [topic])
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout
        while any(consumer.highwater(tp) is None for tp in partitions):
            if time.monotonic() > deadline:
                break
            await consumer.getmany(timeout_ms=50, max_records=1)
        return {tp.partition: consumer.highwater(tp) or 0 for tp in partitions}
    finally:
        await consumer.stop()
