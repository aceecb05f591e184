"""stockflow's aiokafka transport for Faust: Faust's own, with measured problems fixed.

1. **Fetch wait.** Faust hard-codes ``fetch_max_wait_ms=1500`` for its consumer. On a broker
   that re-checks for data at half the remaining wait (tansu) that adds up to ~750 ms to every
   hop, and stockflow has three hops per order. :attr:`Settings.fetch_max_wait_ms` applies.
2. **End offsets.** Faust's changelog recovery reads each changelog's end from ListOffsets. On
   tansu 0.6 ListOffsets(latest) returns the base offset of the last *batch* plus one (ten
   records in one batch at offsets 1..10: it says 2), while the high watermark in a Fetch
   response is right. A worker trusting ListOffsets stops restoring early and decides on stale
   stock, or crashes with ``ConsistencyError``. :func:`fetched_highwaters` asks a Fetch for the
   high watermark and takes the larger of the two answers. On Apache Kafka both agree, so the
   fix costs one extra fetch per recovery and changes nothing else.
3. **Records fetched before a seek** are never delivered after it (:class:`TunedConsumer`).
4. **Flush before commit** drains Faust's producer buffer completely
   (:func:`complete_producer_flush`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import aiokafka
from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

__all__ = [
    "TunedTransport",
    "complete_producer_flush",
    "fetched_highwaters",
    "use_tuned_transport",
]

log = logging.getLogger(__name__)

HIGHWATER_TIMEOUT = 10.0
"""Seconds to wait for Fetch responses that carry the high watermarks."""


async def fetched_highwaters(
    bootstrap_servers: list[str],
    partitions: Iterable[TP],
    reported: Mapping[TP, int | None],
    *,
    client_kwargs: Mapping[str, Any] | None = None,
    timeout: float = HIGHWATER_TIMEOUT,
) -> dict[TP, int]:
    """The high watermark of each partition as a Fetch response reports it.

    A throwaway consumer without a group is positioned at each reported end and fetches once:
    every Fetch response carries the partition's true high watermark, records or not.
    """
    tps = list(partitions)
    if not tps:
        return {}
    consumer = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
        max_partition_fetch_bytes=1024,
        auto_offset_reset="earliest",
        **dict(client_kwargs or {}),
    )
    await consumer.start()
    try:
        by_kafka = {TopicPartition(tp.topic, tp.partition): tp for tp in tps}
        consumer.assign(list(by_kafka))
        for ktp, tp in by_kafka.items():
            consumer.seek(ktp, max(reported.get(tp) or 0, 0))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(consumer.highwater(ktp) is None for ktp in by_kafka):
            if loop.time() > deadline:
                log.warning("no high watermark within %.0fs; using ListOffsets", timeout)
                break
            await consumer.getmany(timeout_ms=100, max_records=1)
        result: dict[TP, int] = {}
        for ktp, tp in by_kafka.items():
            fetched = consumer.highwater(ktp)
            listed = reported.get(tp) or 0
            if fetched is not None and fetched > listed:
                log.info(
                    "end offset of %s: ListOffsets says %d, Fetch says %d", tp, listed, fetched
                )
            result[tp] = max(listed, fetched or 0)
        return result
    finally:
        await consumer.stop()


class TunedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread with the fetch wait and the end-offset fix applied."""

    fetch_max_wait_ms: int = 1500

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this attribute when it builds its Fetcher in start(); Faust offers no
        # setting for it (see module docstring).
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        reported = await super()._highwaters(partitions)
        conf = self.app.conf
        transport: Any = self.transport
        auth = faust_aiokafka.credentials_to_aiokafka_auth(
            conf.broker_credentials, conf.ssl_context
        )
        return await fetched_highwaters(
            faust_aiokafka.server_list(transport.url, transport.default_port),
            partitions,
            reported,
            client_kwargs=auth,
        )

    def fetch_position(self, tp: TP) -> int | None:
        """The offset aiokafka fetches ``tp`` from next; ``None`` if it is not assigned or its
        position is being reset. Read without a lock: an int attribute of aiokafka's state."""
        consumer = self._consumer
        subscription = None if consumer is None else consumer._subscription.subscription
        assignment = None if subscription is None else subscription.assignment
        if assignment is None:
            return None
        state = assignment.state_value(TopicPartition(tp.topic, tp.partition))
        return None if state is None else state._position


class TunedConsumer(faust_aiokafka.Consumer):
    """Faust's consumer, plus: no record fetched before a seek is delivered after it.

    After a rebalance Faust's recovery resumes the stream partitions *before* seeking them to
    their committed offsets. Records that aiokafka had already returned from the old position,
    still being handed to the streams, then arrived after the seek: Faust recorded the jump as
    an offset "gap" (later committed as if processed) and dropped the re-fetched records as
    already read - orders, payments and cancellations lost without a trace (found by the chaos
    suite: 28 orders in one takeover run).

    aiokafka itself never returns a record from before a seek, and a returned record lies
    below its partition's fetch position until a seek moves that position back over it. So once
    a seek happened during a fetch, a record of that fetch is delivered only if it is still
    below its partition's position; the others are dropped, and aiokafka fetches them again
    from the sought offset. Redelivery is safe (processing is idempotent), skipping is not.
    """

    fetch_max_wait_ms: int = 1500
    _seeks: int = 0

    async def perform_seek(self) -> None:
        self._seeks += 1  # before the seek: a fetch in flight must not outrun it
        await super().perform_seek()

    async def seek(self, partition: TP, offset: int) -> None:
        self._seeks += 1
        await super().seek(partition, offset)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        seeks = self._seeks
        thread: Any = self._thread
        dropped = 0
        async for tp, message in super().getmany(timeout):
            if seeks != self._seeks:
                position = thread.fetch_position(tp)
                if position is None or message.offset >= position:
                    dropped += 1
                    continue
            yield tp, message
        if dropped:
            log.info("dropped %d record(s) fetched before a seek; they are fetched again", dropped)

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        thread = TunedConsumerThread(self, loop=self.loop, beacon=self.beacon)
        thread.fetch_max_wait_ms = self.fetch_max_wait_ms
        return thread


class TunedTransport(faust_aiokafka.Transport):
    Consumer = TunedConsumer


def complete_producer_flush(app: Any) -> None:
    """Make ``app.producer.flush()`` wait until every buffered record was handed to the client.

    Faust queues table (changelog) writes in a buffer drained by a background task; its
    ``flush`` stops waiting once 0.1 s pass without a record leaving the buffer, and Faust
    commits input offsets right after that flush. With the event loop busy, records could
    still be queued: offsets committed before the state changes they caused were on the
    broker, so a crash then lost those changes (seen once by the chaos suite as stock held per
    the decisions but not per the table). The buffer is drained until empty instead.
    """
    buffer = app.producer.buffer
    drain_some = buffer.flush_atmost

    async def flush() -> None:
        while buffer.size:
            await drain_some(None)

    buffer.flush = flush


def use_tuned_transport(app: Any, fetch_max_wait_ms: int) -> None:
    """Make ``app`` use :class:`TunedTransport`. Call before the app starts.

    Only applied to ``kafka://``/``aiokafka://`` brokers: other drivers are left alone.
    """
    scheme = str(app.conf.broker_consumer[0].scheme)
    if scheme not in ("kafka", "aiokafka"):
        log.warning("broker scheme %r: stockflow's transport fixes are not applied", scheme)
        return
    consumer_class = type(
        "StockflowConsumer", (TunedConsumer,), {"fetch_max_wait_ms": fetch_max_wait_ms}
    )
    transport_class = type("StockflowTransport", (TunedTransport,), {"Consumer": consumer_class})
    app.transport = transport_class(app.conf.broker_consumer, app)
