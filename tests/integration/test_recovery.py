"""The two recovery fixes, each shown against the failure it prevents.

1. tansu's ListOffsets(latest) reports the end of a topic wrongly when records share a batch;
   stockflow takes the end from a Fetch response's high watermark (stockflow.transport).
2. A worker whose local state says it applied changelog offsets beyond the changelog's end (the
   topic was recreated, or a broker lost its log) recovers by itself instead of dying with
   Faust's ConsistencyError (stockflow.tables.recovery).
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stockflow.testing import EmbeddedBroker
from stockflow.testing.harness import Harness
from stockflow.transport import fetched_highwaters

from expectations import OUTCOMES, order_placed


async def _batch_then_ends(bootstrap: str, topic: str, count: int) -> tuple[int, int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=200)
    await producer.start()
    try:
        futures = [await producer.send(topic, b"x", partition=0) for _ in range(count)]
        await producer.flush()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        listed = (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()
    fetched = await fetched_highwaters([bootstrap], [tp], {tp: listed})
    return listed, fetched[tp]


def test_end_offsets_come_from_fetch_not_list_offsets() -> None:
    with EmbeddedBroker() as broker:
        broker.create_topics(["batched"], partitions=1)
        listed, fetched = asyncio.run(_batch_then_ends(broker.bootstrap, "batched", 10))
    assert fetched == 10  # ten records at offsets 0..9
    # The broker defect this works around (if tansu is ever fixed, listed becomes 10 too).
    assert listed <= fetched


def test_state_beyond_its_changelog_is_rebuilt_not_fatal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = Harness(workdir=tmp_path / "first")
    with first:
        worker = first.start_worker("w")
        first.stock("sku", 5)
        first.send([order_placed("before", ("sku", 2))])
        first.wait_outcomes(["before"])
        worker.stop()  # clean: its RocksDB keeps state and the changelog offsets it applied
    app_env = {k: v for k, v in first.env.items() if k != "STOCKFLOW_BROKER"}

    # A new, empty broker: every changelog now ends before the offsets the local state holds.
    second = Harness(workdir=tmp_path / "second", env=app_env)
    with second:
        again = second.worker("w")
        again.datadir = worker.datadir  # the same local state
        again.start()
        again.wait_ready(60)
        log = again.log_text()
        assert "ConsistencyError" not in log
        assert "discarding the local partition" in log
        second.stock("sku", 1)
        second.send([order_placed("after", ("sku", 1))])
        decisions = second.wait_outcomes(["after"])
        outcomes = [d for d in decisions if d["type"] in OUTCOMES and d["order_id"] == "after"]
        assert [d["type"] for d in outcomes] == ["OrderReserved"]
        assert second.stock_state()["sku"] == {"on_hand": 1, "reserved": 1, "pending_sum": 1}


def test_memory_store_state_survives_a_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Found by the benchmark: restored keys came back as bytes while live lookups used str,
    # so after every restore each product looked never stocked.
    with Harness(workdir=tmp_path, env={"STOCKFLOW_STORE": "memory://"}) as harness:
        worker = harness.start_worker()
        harness.stock("sku", 3)
        harness.send([order_placed("first", ("sku", 2))])
        harness.wait_outcomes(["first"])
        worker.stop()
        worker.start()
        worker.wait_ready(60)
        # One at a time: two orders in flight together reach the product in either order.
        harness.send([order_placed("second", ("sku", 1))])
        harness.wait_outcomes(["second"])
        harness.send([order_placed("third", ("sku", 1))])
        decisions = harness.wait_outcomes(["second", "third"])
        outcomes = {d["order_id"]: d for d in decisions if d["type"] in OUTCOMES}
        assert outcomes["second"]["type"] == "OrderReserved"
        assert outcomes["third"]["reason"] == "insufficient_stock"
