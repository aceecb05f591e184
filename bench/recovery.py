"""Recovery and memory: a worker holding N products and N ledger entries.

Building N = 1,000,000 through a worker at a few hundred orders/s would take hours, so the state
is *synthesized*: stockflow's own processors (:class:`~stockflow.processing.ProductWriter`,
:class:`~stockflow.processing.OrderDesk`) apply, per product, a ``StockSet`` and one single-line
order that reserves from it, against an in-memory store; the final value of every key is then
written to the changelog partition the worker would have written it to. That is the state a
compacted changelog converges to (tansu never compacts, see BROKER.md): per product its
counters, ledger entry, applied marker and marker timer; per order its saga and expiry timer.
Deadline timers are left out, as if they had fired (they do nothing for a reserved saga).

Then, on one broker: a raw aiokafka read of both changelogs (the baseline); worker A restores
from scratch (its peak RSS is the RocksDB figure); A is SIGKILLed and replacement B starts on an
empty data directory (a new host) while probe orders are sent; B is SIGKILLed and C restarts on
B's directory (the same host); finally D restores into ``memory://`` (its peak RSS is the memory
store figure). A probe order must be *reserved*: a rejection as ``unknown_product`` would mean the
restore missed state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.load import Tally, consume_outcomes
from bench.procs import status_kib
from bench.systems import ORDERS, RESERVATIONS, StockflowSystem, stockflow_matcher
from stockflow.kafka import groupless_consumer, topic_partitions
from stockflow.settings import Settings
from stockflow.testing.broker import EmbeddedBroker
from stockflow.testing.worker import WorkerProcess

__all__ = ["RecoveryResult", "raw_read", "recovery_run", "synthesize"]

TTL_SECONDS = 86_400
"""Reservation TTL of the synthesized state and its workers: nothing expires during the run."""

Changelog = dict[int, list[tuple[bytes, bytes]]]


class _RecordingStore:
    """A dict store remembering the partition each key was written from."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[int, bytes]] = {}
        self.partition = 0

    def get(self, key: str) -> bytes | None:
        item = self.data.get(key)
        return None if item is None else item[1]

    def put(self, key: str, value: bytes) -> None:
        self.data[key] = (self.partition, value)

    def put_shared(self, key: str, value: bytes) -> None:
        self.put(key, value)  # one value per key either way: this changelog keeps the last

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def scan(self, prefix: str, *, partition: int, start: str | None = None) -> Iterator[Any]:
        return iter(())  # never needed: no timers fire and no shortfall arises while building

    def first_key(self, prefix: str, *, partition: int) -> str | None:
        return None  # as scan

    def changelog(self) -> Changelog:
        result: Changelog = {}
        for key, (partition, value) in self.data.items():
            if ":deadline:" in key:
                continue  # fired (a no-op for a reserved saga) and deleted by a real worker
            result.setdefault(partition, []).append((key.encode(), value))
        return result


def synthesize(n: int, partitions: int, now_ms: int) -> tuple[Changelog, Changelog]:
    """Products and orders changelogs of N products, each with one pending reservation."""
    from stockflow.core.policy import Policy
    from stockflow.keys import partition_for
    from stockflow.models import SetStock
    from stockflow.processing import Meta, OrderDesk, ProductWriter
    from stockflow.processing.codec import encode

    policy = Policy(reservation_ttl_ms=TTL_SECONDS * 1000)
    products, orders = _RecordingStore(), _RecordingStore()
    writer, desk = ProductWriter(products, policy), OrderDesk(orders, policy)
    commands, replies = "stockflow-product-commands", "stockflow-order-replies"
    for i in range(n):
        pid, oid = f"sku-{i}", f"state-{i}"
        pp, op = partition_for(pid.encode(), partitions), partition_for(oid.encode(), partitions)
        products.partition = pp
        stock_set = SetStock(product_id=pid, on_hand=10, source=f"inventory/{pp}/{i}")
        writer.handle(encode(stock_set), Meta(commands, pp, i, now_ms, pid.encode()))
        orders.partition = op
        order = (
            b'{"type":"OrderPlaced","order_id":"%s","lines":[{"product_id":"%s","quantity":1}]}'
            % (oid.encode(), pid.encode())
        )
        step = desk.handle_order(order, Meta(ORDERS, op, i, now_ms, oid.encode()))
        reserve = next(o for o in step.outputs if o.role == "product_commands")
        step = writer.handle(reserve.value, Meta(commands, pp, n + i, now_ms, pid.encode()))
        # A held single-line order its writer decides has no answer to send back (its saga
        # stays as placed); one the saga decides (an older policy) has.
        for answer in (o for o in step.outputs if o.role == "order_replies"):
            desk.handle_reply(answer.value, Meta(replies, op, i, now_ms, oid.encode()))
    return products.changelog(), orders.changelog()


async def _write(
    bootstrap: str, topic: str, changelog: Changelog, *, compression: str = "none"
) -> int:
    """Writes ``changelog`` to ``topic``, its record batches compressed as the worker's own
    changelog writer compresses them (``STOCKFLOW_INTERNAL_COMPRESSION``): the restore reads
    what a worker would have left."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=20,
        max_batch_size=512 * 1024,
        acks="all",
        compression_type=None if compression == "none" else compression,
    )
    await producer.start()
    count = 0
    try:
        for partition, records in changelog.items():
            for key, value in records:
                await producer.send(topic, key=key, value=value, partition=partition)
                count += 1
        await producer.flush()
        return count
    finally:
        await producer.stop()


async def raw_read(bootstrap: str, topics: list[str]) -> tuple[int, float]:
    """Records in ``topics`` and the seconds a group-less aiokafka consumer needs to read them
    from the beginning to the end (the high watermark of Fetch responses)."""
    consumer = groupless_consumer(
        bootstrap, fetch_max_wait_ms=10, max_partition_fetch_bytes=4 * 1024 * 1024
    )
    await consumer.start()
    try:
        started = time.monotonic()
        tps = await topic_partitions(consumer, topics)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        count = 0
        pending = set(tps)
        while pending:
            batch = await consumer.getmany(timeout_ms=200, max_records=50_000)
            count += sum(len(messages) for messages in batch.values())
            for tp in list(pending):
                end = consumer.highwater(tp)
                if end is not None and await consumer.position(tp) >= end:
                    pending.discard(tp)
        return count, time.monotonic() - started
    finally:
        await consumer.stop()


async def _probe(bootstrap: str, tag: str, n: int, timeout: float) -> tuple[float, str, str]:
    """Send a probe order every 100 ms until the worker decides again.

    Returns when the first outcome arrived, its status, and the status of the first probe sent
    *after* that (a fresh order on a live worker). Probes sent while no worker ran may time out
    in their saga (they waited longer than ``STOCKFLOW_SAGA_TIMEOUT``): a decision all the
    same, but only the fresh one shows whether the restored stock is right."""
    prefix = f"probe-{tag}-"
    tally = Tally(want=1 << 30, parts=1)
    ready = asyncio.Event()
    consumer = asyncio.create_task(
        consume_outcomes(
            bootstrap,
            RESERVATIONS,
            prefix.encode(),
            stockflow_matcher,
            tally,
            timeout=timeout,
            started=ready,
        )
    )
    await asyncio.wait_for(ready.wait(), 30)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks="all")
    await producer.start()
    first: tuple[float, str] | None = None
    boundary: int | None = None
    fresh = "none"
    try:
        index = 0
        while not consumer.done():
            if tally.arrived and first is None:
                oid = min(tally.arrived, key=tally.arrived.__getitem__)
                first, boundary = (tally.arrived[oid], tally.status_of[oid]), index
            done = [o for o in tally.arrived if boundary is not None and _index(o) >= boundary]
            if done:
                fresh = tally.status_of[min(done, key=_index)]
                break
            oid, pid = f"{prefix}{index}", f"sku-{(index * 7919) % max(n, 1)}"
            line = {"product_id": pid, "quantity": 1}
            value = json.dumps({"type": "OrderPlaced", "order_id": oid, "lines": [line]})
            await producer.send(ORDERS, key=oid.encode(), value=value.encode())
            index += 1
            await asyncio.wait([consumer], timeout=0.1)
    finally:
        await producer.stop()
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
    if first is None:
        return float("nan"), "none", fresh
    return first[0], first[1], fresh


def _index(order_id: str) -> int:
    return int(order_id.rsplit("-", 1)[1])


@dataclass
class RecoveryResult:
    """Seconds and MiB. ``*_decided_s``: from the worker's start (cold) or from the SIGKILL or
    stop of its predecessor until the first probe order's outcome arrived; ``*_ready_s``: until
    the worker logged ``Worker ready`` (its changelog restore done)."""

    products: int
    changelog_records: int = 0
    raw_read_s: float = 0.0
    cold_ready_s: float = 0.0
    cold_decided_s: float = 0.0
    replacement_ready_s: float = 0.0
    replacement_decided_s: float = 0.0
    restart_ready_s: float = 0.0
    restart_decided_s: float = 0.0
    memory_ready_s: float = 0.0
    memory_decided_s: float = 0.0
    rss_rocksdb_mb: float = 0.0
    rss_memory_mb: float = 0.0
    rss_empty_mb: float = 0.0
    empty_ready_s: float = 0.0
    probes: dict[str, str] = field(default_factory=dict)
    phases: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


RUNS = (
    # (tag, how the previous worker ends, data directory, store)
    ("cold", None, "new", "rocksdb://"),
    ("replacement", "kill", "new", "rocksdb://"),
    ("restart", "kill", "same", "rocksdb://"),
    ("memory", "stop", "new", "memory://"),
)


def recovery_run(
    n: int,
    partitions: int,
    timeout: float = 900.0,
    runs: tuple[str, ...] | None = None,
    env: Mapping[str, str] | None = None,
) -> RecoveryResult:
    """See the module docstring; ``timeout`` bounds each worker's wait for a decision; ``runs``
    selects among :data:`RUNS` by tag (a replacement needs the run before it)."""
    result = RecoveryResult(products=n)
    env = {**dict(env or {}), "STOCKFLOW_RESERVATION_TTL": str(TTL_SECONDS)}
    app = "bench.variants" if any(key.startswith("BENCH_") for key in env) else "stockflow"
    with EmbeddedBroker() as empty:  # the baseline: an idle worker holding nothing
        idle = StockflowSystem(empty, partitions, env)
        try:
            idle.start(timeout)
            result.empty_ready_s = idle.ready_s or float("nan")
            asyncio.run(_probe(empty.bootstrap, "empty", 1, 60))
            result.rss_empty_mb = (status_kib(idle.pid) or 0) / 1024
        finally:
            idle.stop()
    with EmbeddedBroker() as broker:
        system = StockflowSystem(broker, partitions, env)
        system.create_topics()
        products, orders = synthesize(n, partitions, int(time.time() * 1000))
        compression = env.get(
            "STOCKFLOW_INTERNAL_COMPRESSION", Settings.model_fields["internal_compression"].default
        )
        result.changelog_records = asyncio.run(
            _write(broker.bootstrap, system.changelogs[0], products, compression=compression)
        ) + asyncio.run(
            _write(broker.bootstrap, system.changelogs[1], orders, compression=compression)
        )
        del products, orders
        _count, result.raw_read_s = asyncio.run(raw_read(broker.bootstrap, system.changelogs))
        previous: WorkerProcess | None = None
        try:
            for tag, ending, datadir, store in RUNS:
                if runs is not None and tag not in runs:
                    continue
                since = time.time()
                if previous is not None:
                    previous.kill() if ending == "kill" else previous.stop()
                worker = WorkerProcess(
                    {**system.env, "STOCKFLOW_STORE": store},
                    datadir=previous.datadir if datadir == "same" and previous else None,
                    app=app,
                )
                previous = worker
                worker.start()
                arrived, first, fresh = asyncio.run(_probe(broker.bootstrap, tag, n, timeout))
                result.probes[tag] = fresh if first == fresh else f"first {first}; then {fresh}"
                setattr(result, f"{tag}_decided_s", arrived - since)
                phases = _phases(worker, since)
                result.phases[tag] = phases
                setattr(result, f"{tag}_ready_s", phases.get("ready", float("nan")))
                rss = (status_kib(worker.pid) or 0) / 1024
                if tag == "cold":
                    result.rss_rocksdb_mb = rss
                elif tag == "memory":
                    result.rss_memory_mb = rss
        finally:
            if previous is not None:
                previous.stop()
    return result


PHASES = (
    ("started", "[^Worker]: Starting"),
    ("assigned", "Highwater for active changelog partitions"),
    ("ready", "Worker ready"),
)
"""Log lines that mark a worker's start-up phases: Python and Faust imported; partitions
assigned (the group joined); changelogs restored."""


def _phases(worker: WorkerProcess, since: float) -> dict[str, float]:
    """Seconds from ``since`` to the first log line of each phase (from its timestamp)."""
    found: dict[str, float] = {}
    for line in worker.log_text().splitlines():
        for name, marker in PHASES:
            if name not in found and marker in line:
                match = re.search(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", line)
                if match:
                    stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
                    found[name] = round(stamp.timestamp() - since, 3)
    return found
