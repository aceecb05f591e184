"""Where an order's latency goes, hop by hop, from the timestamps the records carry.

Every record on the broker carries its producer's append time (``CreateTime``, one clock: all
processes run on this machine). For each timed order, :func:`hop_figures` splits its latency
(send -> outcome at the harness) along a chain of intermediate topics:

- ``order -> <first middle topic>``: from the order's record to the last record on that topic
  that names the order (stockflow's product commands, the pipe's product-keyed records; the
  last, because the order moves on only once every line has: a single-line order has one);
- ``<middle> -> <next middle>``, for each further topic of the chain (stockflow's multi-line
  orders: the line answers its order desk waits for, on the order replies topic);
- ``<last middle topic> -> outcome``: from there to the order's outcome on ``reservations``
  (stockflow's ``Order*`` record; the pipe's last line record);
- ``outcome -> harness``: from the outcome's record to its arrival at the harness consumer
  (the harness's own fetch: the same for every system).

stockflow's internal records carry several orders each (one record per partition and batch):
every order a record names gets that record's time.
"""

from __future__ import annotations

import asyncio
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.harness import offered_run
from bench.load import Workload
from bench.system import ORDERS, RESERVATIONS

__all__ = ["TimedRecord", "hop_figures", "hop_run", "read_topics"]

ORDER_ID = re.compile(rb'"order_id":\s*"([^"]+)"')

TimedRecord = tuple[str, bytes | None, bytes | None, int]
"""``(topic, key, value, timestamp_ms)`` as read back from the broker."""


def _times(
    records: Iterable[TimedRecord],
    prefix: bytes,
    middle_topics: Sequence[str],
    outcome_prefix: bytes | None,
) -> tuple[dict[str, int], dict[str, dict[str, int]], dict[str, int]]:
    """Per order (keys starting with ``prefix``): its order record's time, the last record on
    each of ``middle_topics`` naming it, and its outcome's time (the first record on
    ``reservations`` starting with ``outcome_prefix``; without one, the last keyed by it)."""
    orders: dict[str, int] = {}
    middle: dict[str, dict[str, int]] = {topic: {} for topic in middle_topics}
    outcomes: dict[str, int] = {}
    for topic, key, value, timestamp in records:
        if topic == ORDERS:
            if key is not None and key.startswith(prefix):
                orders.setdefault(key.decode(), timestamp)
        elif topic == RESERVATIONS:
            if key is None or not key.startswith(prefix):
                continue
            if outcome_prefix is None:
                outcomes[key.decode()] = max(timestamp, outcomes.get(key.decode(), timestamp))
            elif value is not None and value.startswith(outcome_prefix):
                outcomes.setdefault(key.decode(), timestamp)
        elif topic in middle and value is not None and prefix in value:
            seen = middle[topic]
            for order_id in ORDER_ID.findall(value):
                if order_id.startswith(prefix):
                    name = order_id.decode()
                    seen[name] = max(timestamp, seen.get(name, timestamp))
    return orders, middle, outcomes


def _summary(hop: str, values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "hop": hop,
        "orders": len(ordered),
        "p50_ms": statistics.median(ordered),
        "mean_ms": statistics.fmean(ordered),
        "p90_ms": ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))],
    }


def hop_figures(
    sent: Mapping[bytes, float],
    arrived: Mapping[str, float],
    records: Iterable[TimedRecord],
    prefix: bytes,
    middle_topics: Sequence[str],
    outcome_prefix: bytes | None = None,
) -> list[dict[str, Any]]:
    """Per hop, over the orders answered: p50, mean and p90 in ms (``sent``/``arrived``: the
    harness's ``time.time()`` per order; record timestamps in ms). The hops through the
    intermediate topics count only the orders found on every one of them."""
    orders, middle, outcomes = _times(records, prefix, middle_topics, outcome_prefix)
    hops: dict[str, list[float]] = {}
    for raw_key, sent_at in sent.items():
        order_id = raw_key.decode()
        if order_id not in arrived or order_id not in orders or order_id not in outcomes:
            continue
        placed, outcome = orders[order_id], outcomes[order_id]
        if all(order_id in middle[topic] for topic in middle_topics):
            names = ["order", *middle_topics, "outcome"]
            times = [placed, *(middle[topic][order_id] for topic in middle_topics), outcome]
            for i in range(len(times) - 1):
                hop = f"{names[i]} -> {names[i + 1]}"
                hops.setdefault(hop, []).append(times[i + 1] - times[i])
        hops.setdefault("order -> outcome", []).append(outcome - placed)
        hops.setdefault("outcome -> harness", []).append(arrived[order_id] * 1000 - outcome)
        hops.setdefault("total", []).append((arrived[order_id] - sent_at) * 1000)
    return [_summary(hop, values) for hop, values in hops.items()]


async def read_topics(bootstrap: str, *, idle_polls: int = 3) -> list[TimedRecord]:
    """Every record of every topic but changelogs and the broker's own, from the beginning."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        topics = [t for t in await consumer.topics() if "changelog" not in t and t[0] != "_"]
        parts = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in consumer.partitions_for_topic(topic) or ()
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        records: list[TimedRecord] = []
        idle = 0
        while idle < idle_polls:  # bounded: stops after idle_polls empty fetches in a row
            fetched = await consumer.getmany(timeout_ms=500, max_records=20_000)
            idle = 0 if fetched else idle + 1
            for tp, batch in fetched.items():
                records.extend((tp.topic, r.key, r.value, r.timestamp) for r in batch)
        return records
    finally:
        await consumer.stop()


def hop_run(
    name: str,
    load: Workload,
    rate: float,
    *,
    middle_topics: Sequence[str],
    outcome_prefix: bytes | None = None,
    partitions: int,
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
) -> list[dict[str, Any]]:
    """``load`` offered at ``rate`` to ``name`` (as the latency section does), then its hops
    through ``middle_topics``."""
    result, sent, arrived, records = offered_run(
        name,
        load,
        rate,
        partitions=partitions,
        env=env,
        timeout=timeout,
        read_back=lambda broker: asyncio.run(read_topics(broker.bootstrap)),
    )
    rows = hop_figures(
        sent, arrived, records or [], load.prefix.encode(), middle_topics, outcome_prefix
    )
    for row in rows:
        row.update(system=name, workload=load.kind, offered=rate, cpu_cores=result.cpu_cores)
    return rows
