"""What a chaos run sends: a product catalog, orders with their lifecycle commands, restocks,
duplicates and garbage, produced at a steady rate by a background thread.

Everything is drawn from one seeded :class:`random.Random`, so a run's input mix is
reproducible (the interleaving with kills and cuts is not: it depends on timing). Bad input is
always keyed ``bad-<n>`` and valid input never is, so a check can find every bad record on the
topics and demand a dead letter for each.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stockflow.chaos.garbage import BAD_KEY_PREFIX, bad_record
from stockflow.keys import partition_for

__all__ = [
    "Catalog",
    "LoadMix",
    "LoadProducer",
    "OutRecord",
    "make_catalog",
]

log = logging.getLogger(__name__)

_UNICODE_NAMES = ("café-crème", "商品", "🎁-gift", "Ωmega-ß", "naïve-ürün", "עברית", "e\u0301-nfd")


@dataclass(frozen=True, slots=True)
class Catalog:
    """Products with their initial stock, covering every partition; ``unknown`` are never
    stocked (orders for them are rejected ``unknown_product``)."""

    stock: dict[str, int]
    unknown: tuple[str, ...]
    partitions: int

    @property
    def products(self) -> list[str]:
        return list(self.stock)


def make_catalog(
    rng: random.Random, partitions: int, *, per_partition: int = 3, units: tuple[int, int] = (5, 25)
) -> Catalog:
    """ASCII and Unicode product ids (CJK, emoji, RTL, combining marks), at least
    ``per_partition`` on each partition of the product-keyed topics."""
    names = (
        f"{_UNICODE_NAMES[n % len(_UNICODE_NAMES)]}-{n}" if n % 3 == 2 else f"sku-{n:03d}"
        for n in itertools.count()
    )
    per: Counter[int] = Counter()
    stock: dict[str, int] = {}
    for name in names:
        if all(per[p] >= per_partition for p in range(partitions)):
            break
        part = partition_for(name.encode(), partitions)
        if per[part] < per_partition:
            per[part] += 1
            stock[name] = rng.randint(*units)
    return Catalog(stock=stock, unknown=("never-stocked", "nie-auf-lager-ä"), partitions=partitions)


@dataclass(frozen=True, slots=True)
class LoadMix:
    """Rates of everything a producer sends, per order placed (probabilities) or per second."""

    rate: float = 30.0
    """Orders placed per second."""
    multi_line: float = 0.2
    partial: float = 0.15
    unknown_product: float = 0.02
    oversized: float = 0.01
    """Valid but absurd: a quantity of 10**9 (refused), or more lines than allowed."""
    pay_after: float = 0.2
    cancel_after: float = 0.1
    both_after: float = 0.03
    """Payment and cancellation after the order, in random order."""
    before: float = 0.05
    """A payment or cancellation sent before its order is placed."""
    twice: float = 0.05
    """An after-command sent a second time (a separate record, later)."""
    duplicate: float = 0.0
    """Chance that any record is sent again (1.0: every input at least twice)."""
    garbage: float = 0.0
    """Bad records per order placed."""
    shuffle: bool = False
    """Shuffle each batch before sending (a placement may then follow its payment)."""
    restock: float = 0.8
    """Units restocked (``StockAdjusted``) as a fraction of the units ordered."""
    lifecycle_delay: tuple[float, float] = (0.0, 3.0)
    short_ttl: float = 0.1
    """Chance that an order carries its own ``reservation_ttl`` of ``ttl_range`` seconds: it
    expires during the run (the default TTL outlives any run), racing its payment, its
    cancellation, the kills and the cuts."""
    ttl_range: tuple[float, float] = (1.0, 6.0)
    abandon: float = 0.5
    """Chance that an order with a TTL of its own gets no payment and no cancellation at all
    (an abandoned cart): reserved, it must expire, which the run checks
    (:func:`stockflow.chaos.checks.awaiting_expiry`)."""


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to send; ``kind`` is the event type, ``bad:<what>`` for garbage."""

    topic: str
    key: bytes | None
    value: bytes | None
    kind: str
    copy: bool = False


def _encode(rng: random.Random, event: dict[str, Any]) -> bytes:
    # Both JSON spellings of non-ASCII text: escaped (\u00e9) and raw UTF-8.
    return json.dumps(event, ensure_ascii=rng.random() < 0.5).encode()


@dataclass
class _Sent:
    """What a producer sent and got acknowledged (by kind), and how sending went."""

    records: Counter[str] = field(default_factory=Counter)
    copies: Counter[str] = field(default_factory=Counter)
    order_ids: list[str] = field(default_factory=list)
    send_failures: int = 0


class LoadProducer:
    """Sends orders (with lifecycle commands, restocks, duplicates and garbage per ``mix``) at a
    steady rate from a background thread, until :meth:`stop`.

    Sending goes through one long-lived producer; a batch that fails (the broker unreachable)
    is retried until it is acknowledged, for at most ``stall_timeout`` seconds. A retried batch
    may land twice: that is an ordinary duplicate, and the checks count what is on the topics.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        topics: dict[str, str],
        catalog: Catalog,
        mix: LoadMix,
        seed: int,
        tick: float = 0.1,
        stall_timeout: float = 180.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.catalog = catalog
        self.mix = mix
        self.rng = random.Random(seed)
        self.tick = tick
        self.stall_timeout = stall_timeout
        self.sent = _Sent()
        self.error: BaseException | None = None
        self._scheduled: list[tuple[float, int, OutRecord]] = []
        self._seq = itertools.count()
        self._orders = itertools.count()
        self._bad = itertools.count()
        self._adjustments = itertools.count()
        self._restock_budget = 0.0
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None
        self._prefix = f"o{seed % 1000:03d}"

    # --- control ----------------------------------------------------------------------------

    def start(self) -> LoadProducer:
        self._thread = threading.Thread(target=self._run, name="chaos-load", daemon=True)
        self._thread.start()
        return self

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def stop(self, timeout: float = 120.0) -> None:
        """Stop placing orders, send everything still scheduled, and wait for the acks."""
        self._stop.set()
        self._paused.clear()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"load producer did not finish within {timeout}s")
        if self.error is not None:
            raise RuntimeError("load producer failed") from self.error

    def abort(self) -> None:
        """Stop at once, without waiting (for cleanup after a failure)."""
        self._stop.set()
        self._paused.clear()

    @property
    def orders_placed(self) -> int:
        return len(self.sent.order_ids)

    # --- generation ---------------------------------------------------------------------------

    def _schedule(self, record: OutRecord, delay: float) -> None:
        heapq.heappush(self._scheduled, (time.monotonic() + delay, next(self._seq), record))

    def _order(self) -> list[OutRecord]:
        rng, mix, catalog = self.rng, self.mix, self.catalog
        n = next(self._orders)
        order_id = f"{self._prefix}-{n:06d}-{rng.randrange(16**4):04x}"
        if rng.random() < 0.05:
            order_id = f"заказ-{order_id}-✓"
        count = rng.randint(2, 3) if rng.random() < mix.multi_line else 1
        lines: list[dict[str, Any]] = [
            {"product_id": p, "quantity": rng.randint(1, 3)}
            for p in rng.sample(catalog.products, count)
        ]
        units = sum(line["quantity"] for line in lines)
        if rng.random() < mix.unknown_product:
            lines[0]["product_id"] = rng.choice(catalog.unknown)
        event: dict[str, Any] = {"type": "OrderPlaced", "order_id": order_id, "lines": lines}
        if rng.random() < mix.oversized:
            if rng.random() < 0.5:
                lines[0]["quantity"] = 1_000_000_000
            else:
                # More lines than STOCKFLOW_MAX_LINES (100): rejected as invalid_order.
                event["lines"] = [{"product_id": f"line-{i}", "quantity": 1} for i in range(150)]
        if rng.random() < mix.partial:
            event["fulfilment"] = "partial"
        abandoned = False
        if rng.random() < mix.short_ttl:
            event["reservation_ttl"] = round(rng.uniform(*mix.ttl_range), 3)
            abandoned = rng.random() < mix.abandon
        if rng.random() < 0.05:
            event["source"] = {"channel": "app", "note": "producers may add fields"}
        key = order_id.encode()
        orders = self.topics["orders"]
        self.sent.order_ids.append(order_id)
        self._restock_budget += mix.restock * units

        def command(kind: str) -> OutRecord:
            body: dict[str, Any] = {"type": kind, "order_id": order_id}
            if kind == "OrderCancelled":
                body["reason"] = rng.choice(["changed mind", "délai trop long", "🙅"])
            return OutRecord(orders, key, _encode(rng, body), kind)

        now: list[OutRecord] = []
        if rng.random() < mix.before and not abandoned:
            now.append(command(rng.choice(["OrderPaid", "OrderCancelled"])))
        now.append(OutRecord(orders, key, _encode(rng, event), "OrderPlaced"))
        if abandoned:
            return now
        after: list[str] = []
        draw = rng.random()
        if draw < mix.pay_after:
            after = ["OrderPaid"]
        elif draw < mix.pay_after + mix.cancel_after:
            after = ["OrderCancelled"]
        elif draw < mix.pay_after + mix.cancel_after + mix.both_after:
            after = rng.sample(["OrderPaid", "OrderCancelled"], 2)
        if after and rng.random() < mix.twice:
            after.append(after[0])
        delay = 0.0
        for kind in after:
            delay += rng.uniform(*mix.lifecycle_delay)
            self._schedule(command(kind), delay)
        return now

    def _restocks(self) -> list[OutRecord]:
        records = []
        while self._restock_budget >= 1:
            delta = min(int(self._restock_budget), self.rng.randint(1, 5))
            self._restock_budget -= delta
            product = self.rng.choice(self.catalog.products)
            event = {
                "type": "StockAdjusted",
                "product_id": product,
                "delta": delta,
                "adjustment_id": f"adj-{self._prefix}-{next(self._adjustments)}",
            }
            records.append(
                OutRecord(
                    self.topics["inventory"],
                    product.encode(),
                    _encode(self.rng, event),
                    "StockAdjusted",
                )
            )
        return records

    def _garbage(self) -> OutRecord:
        n = next(self._bad)
        topic, value, what = bad_record(self.rng, n, self.catalog.products)
        return OutRecord(self.topics[topic], f"{BAD_KEY_PREFIX}{n}".encode(), value, f"bad:{what}")

    def _batch(self, count: int, final: bool) -> list[OutRecord]:
        batch: list[OutRecord] = []
        for _ in range(count):
            batch.extend(self._order())
            if self.rng.random() < self.mix.garbage:
                batch.append(self._garbage())
        batch.extend(self._restocks())
        now = time.monotonic()
        while self._scheduled and (final or self._scheduled[0][0] <= now):
            batch.append(heapq.heappop(self._scheduled)[2])
        copies = []
        for record in batch:
            if not record.copy and self.rng.random() < self.mix.duplicate:
                twin = OutRecord(record.topic, record.key, record.value, record.kind, copy=True)
                if final or self.rng.random() < 0.5:
                    copies.append(twin)
                else:
                    self._schedule(twin, self.rng.uniform(0.0, 2.0))
        batch.extend(copies)
        if self.mix.shuffle:
            self.rng.shuffle(batch)
        return batch

    # --- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by stop()
            log.exception("load producer failed")
            self.error = exc

    async def _main(self) -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", linger_ms=5, request_timeout_ms=10_000
        )
        await self._retry(producer.start)
        try:
            last = time.monotonic()
            carry = 0.0
            while not self._stop.is_set():
                await asyncio.sleep(self.tick)
                now = time.monotonic()
                if self._paused.is_set():
                    last = now
                    continue
                carry += (now - last) * self.mix.rate
                last = now
                count, carry = int(carry), carry - int(carry)
                await self._send(producer, self._batch(count, final=False))
            await self._send(producer, self._batch(0, final=True))
        finally:
            await producer.stop()

    async def _retry(self, action: Callable[[], Any]) -> None:
        deadline = time.monotonic() + self.stall_timeout
        while True:
            try:
                await action()
                return
            except Exception as exc:  # KafkaError, OSError: the broker is unreachable
                self.sent.send_failures += 1
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not send for {self.stall_timeout}s") from exc
                log.info("send failed (%s); retrying", exc)
                await asyncio.sleep(0.5)

    async def _send(self, producer: Any, batch: list[OutRecord]) -> None:
        if not batch:
            return

        async def attempt() -> None:
            futures = []
            try:
                for record in batch:
                    futures.append(
                        await producer.send(record.topic, key=record.key, value=record.value)
                    )
            finally:
                # Every delivery's result is taken, even when a send fails half-way, so that an
                # outage leaves no "Future exception was never retrieved" for the records after
                # the first failed one.
                results = await asyncio.gather(*futures, return_exceptions=True)
            failed = next((r for r in results if isinstance(r, BaseException)), None)
            if failed is not None:
                raise failed

        await self._retry(attempt)
        for record in batch:
            (self.sent.copies if record.copy else self.sent.records)[record.kind] += 1
