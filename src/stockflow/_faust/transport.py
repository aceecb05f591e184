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
   fix costs one extra fetch per recovery and changes nothing else. Without a Fetch answer it
   raises rather than fall back to ListOffsets: a restore that ends early oversells.
3. **Records of paused partitions** that aiokafka returned anyway are fetched again instead of
   skipped (:class:`TunedConsumer`); every offset gap Faust records is logged.
4. **Flush before commit** waits for every change buffered before it
   (:func:`complete_producer_flush`).
5. **Restart after a crash.** The worker's previous group member, noted in its directory, is
   removed before it joins (:mod:`stockflow._faust.rejoin`): 5 s instead of 13 s to a ready
   worker after a SIGKILL at the default session timeout.
6. **Fetch lanes.** Each stockflow agent's topics are fetched on a connection of their own
   (:mod:`stockflow._faust.lanes`, :attr:`Settings.fetch_lanes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import aiokafka
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from stockflow._faust.lanes import lanes_of, split_fetches
from stockflow._faust.rejoin import PreviousMember, leave_previous_member
from stockflow.errors import BrokerError
from stockflow.kafka import groupless_consumer

__all__ = [
    "TunedTransport",
    "client_settings",
    "complete_producer_flush",
    "fetched_highwaters",
]

log = logging.getLogger(__name__)

LEAVE_TIMEOUT = 5.0
"""At most this many seconds (and at most the session timeout) for the removal of a worker's
previous group member at start (:mod:`stockflow._faust.rejoin`): past them it joins anyway."""

HIGHWATER_TIMEOUT = 60.0
"""Seconds to wait for Fetch responses that carry the high watermarks. Past them the recovery
fails (the worker stops) instead of restoring to a wrong end: a broker cut off this long
during a recovery cannot be restored from anyway."""


async def fetched_highwaters(
    bootstrap_servers: list[str],
    partitions: Iterable[TP],
    reported: Mapping[TP, int | None],
    *,
    client_kwargs: Mapping[str, Any] | None = None,
    timeout: float = HIGHWATER_TIMEOUT,
) -> dict[TP, int]:
    """The high watermark of each partition as a Fetch response reports it.

    A throwaway consumer without a group is positioned at each reported end and fetches until
    every partition has had a Fetch response: each carries the partition's true high
    watermark, records or not. Raises :class:`~stockflow.errors.BrokerError` if one has not
    answered within ``timeout`` seconds (the broker cut off): ``reported`` (ListOffsets) is
    never taken on its own, since on tansu it lies before the end, and a changelog restored to
    there leaves the worker deciding on stale stock.
    """
    tps = list(partitions)
    if not tps:
        return {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        consumer = groupless_consumer(
            bootstrap_servers,
            client_kwargs=client_kwargs,
            fetch_max_wait_ms=10,
            max_partition_fetch_bytes=1024,
        )
        try:
            await consumer.start()
        except KafkaConnectionError as exc:  # the broker unreachable for now: try again
            await consumer.stop()
            if loop.time() > deadline:
                raise BrokerError(f"no high watermark for {tps}: {exc}") from exc
            await asyncio.sleep(0.5)
            continue
        try:
            return await _fetch_highwaters(consumer, tps, reported, deadline)
        finally:
            await consumer.stop()


async def _fetch_highwaters(
    consumer: Any, tps: list[TP], reported: Mapping[TP, int | None], deadline: float
) -> dict[TP, int]:
    loop = asyncio.get_running_loop()
    by_kafka = {TopicPartition(tp.topic, tp.partition): tp for tp in tps}
    consumer.assign(list(by_kafka))
    for ktp, tp in by_kafka.items():
        consumer.seek(ktp, max(reported.get(tp) or 0, 0))
    while True:
        missing = [tp for ktp, tp in by_kafka.items() if consumer.highwater(ktp) is None]
        if not missing:
            break
        if loop.time() > deadline:
            raise BrokerError(
                f"no Fetch response with the high watermark of {missing} in time; "
                "ListOffsets alone is not trusted (tansu reports the last batch's start)"
            )
        try:
            await consumer.getmany(timeout_ms=100, max_records=1)
        except KafkaError:  # a cut connection: aiokafka reconnects
            await asyncio.sleep(0.1)
    result: dict[TP, int] = {}
    for ktp, tp in by_kafka.items():
        fetched = consumer.highwater(ktp)
        listed = reported.get(tp) or 0
        if fetched > listed:
            log.info("end offset of %s: ListOffsets says %d, Fetch says %d", tp, listed, fetched)
        result[tp] = max(listed, fetched)
    return result


def client_settings(app: Any, transport: Any) -> tuple[list[str], dict[str, Any]]:
    """Bootstrap servers and the security arguments (SASL/TLS) of ``app``'s broker, for the
    extra aiokafka clients stockflow opens beside Faust's (high watermarks, batch restore)."""
    conf = app.conf
    auth = faust_aiokafka.credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context)
    return faust_aiokafka.server_list(transport.url, transport.default_port), dict(auth)


class TunedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread with the fetch wait, the fetch lanes and the end-offset fix
    applied."""

    fetch_max_wait_ms: int = 1500
    fetch_lanes: bool = False
    """Fetch each stockflow agent's topics on a connection of their own
    (:mod:`stockflow._faust.lanes`)."""

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this attribute when it builds its Fetcher in start(); Faust offers no
        # setting for it (see module docstring).
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        lease = getattr(self.consumer, "membership", None)
        start = consumer.start

        async def start_and_watch() -> None:
            await self._leave_previous_member(transport)  # before this run's first join
            await start()
            processor = getattr(self.consumer, "processor", None)
            if self.fetch_lanes and processor is not None:
                split_fetches(consumer, lanes_of(processor.routes))  # the fetcher is new
            if lease is not None:
                lease.watch(consumer._coordinator)  # created by start()

        consumer.start = start_and_watch
        return consumer

    @property
    def previous_member(self) -> PreviousMember:
        member = getattr(self, "_previous_member", None)
        if member is None:
            member = self._previous_member = PreviousMember(self.app.conf.appdir)
        return member

    async def _leave_previous_member(self, transport: Any) -> None:
        """See :mod:`stockflow._faust.rejoin`."""
        group_id = str(self.app.conf.id)
        member_id = self.previous_member.read(group_id)
        if member_id is None:
            return
        servers, auth = client_settings(self.app, transport)
        timeout = min(float(self.app.conf.broker_session_timeout), LEAVE_TIMEOUT)
        await leave_previous_member(
            servers, group_id, member_id, client_kwargs=auth, timeout=timeout
        )

    async def on_partitions_assigned(self, assigned: Any, generation_id: int = 0) -> None:
        coordinator = getattr(self._ensure_consumer(), "_coordinator", None)
        member_id = getattr(coordinator, "member_id", None)
        if isinstance(member_id, str):
            self.previous_member.note(str(self.app.conf.id), member_id)
        await super().on_partitions_assigned(assigned, generation_id)

    async def fetch_again(self, first_offsets: Mapping[TP, int]) -> dict[TP, int]:
        """Move each partition's fetch position back to the given offset if it lies past it;
        in this thread, so that no seek of Faust's interleaves. Returns the partitions moved."""
        consumer = self._ensure_consumer()
        subscription = consumer._subscription.subscription
        assignment = None if subscription is None else subscription.assignment
        moved: dict[TP, int] = {}
        for tp, offset in first_offsets.items():
            ktp = TopicPartition(tp.topic, tp.partition)
            state = None if assignment is None else assignment.state_value(ktp)
            position = None if state is None else state._position
            if position is not None and position > offset:
                consumer.seek(ktp, offset)
                moved[tp] = offset
        return moved

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        reported = await super()._highwaters(partitions)
        servers, auth = client_settings(self.app, self.transport)
        return await fetched_highwaters(servers, partitions, reported, client_kwargs=auth)


class TunedConsumer(faust_aiokafka.Consumer):
    """Faust's consumer with :class:`TunedConsumerThread`, and a warning for every offset gap.

    Faust counts offsets it never delivered as processed when a fetched record is more than one
    offset past the last one delivered (a "gap", meant for compacted and transactional topics).
    On any other topic a gap means records were skipped - the defect stockflow's recovery fixes
    (:mod:`stockflow._faust.recovery`) showed up exactly so - so each one is logged.
    """

    fetch_max_wait_ms: int = 1500
    fetch_lanes: bool = False

    async def _wait_next_records(self, timeout: float) -> Any:
        records, active = await super()._wait_next_records(timeout)
        if not records or active is None:
            return records, active
        # Faust skips the records of partitions that are not active (paused for a rebalance or
        # a recovery, or when its set of active partitions went empty during the fetch, which
        # makes aiokafka return every partition's records), while aiokafka's positions have
        # moved past them: they were never fetched again (found by the chaos suite in
        # takeovers). Here they are set aside and fetched again, and the records of the
        # partitions active now are all delivered even if one is paused while they are.
        deliver = set(active) | self._buffered_partitions
        kept: dict[TP, Any] = {}
        skipped: dict[TP, int] = {}
        for tp, batch in records.items():
            if tp in deliver:
                kept[tp] = batch
            elif batch:
                skipped[tp] = batch[0].offset
        if skipped:
            await self._fetch_again(skipped, "records of paused partitions")
        return kept, deliver

    async def _fetch_again(self, first_offsets: Mapping[TP, int], why: str) -> dict[TP, int]:
        """Fetch each partition again from the given offset (where its fetch position lies
        past it), and make it the next offset to deliver. Returns the partitions moved."""
        thread: Any = self._thread
        moved: dict[TP, int] = await thread.call_thread(thread.fetch_again, first_offsets)
        for tp, offset in moved.items():
            self._read_offset[tp] = offset
        if moved:
            log.info("%s: fetching %d partition(s) again from %s", why, len(moved), moved)
        return moved

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        log.warning(
            "offsets %d..%d of %s are counted as processed without having been delivered "
            "(expected only on compacted or transactional topics)",
            offset_from,
            offset_to,
            tp,
        )
        await super()._add_gap(tp, offset_from, offset_to)

    thread_class: type[TunedConsumerThread] = TunedConsumerThread
    """What runs the aiokafka consumer: a thread of its own, or the main loop
    (:class:`~stockflow._faust.inline.InlineConsumerThread`, chosen by
    :func:`~stockflow._faust.wiring.use_tuned_transport`, which builds on this module)."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        thread = self.thread_class(self, loop=self.loop, beacon=self.beacon)
        thread.fetch_max_wait_ms = self.fetch_max_wait_ms
        thread.fetch_lanes = self.fetch_lanes
        return thread


class TunedTransport(faust_aiokafka.Transport):
    Consumer = TunedConsumer
    batch_processor: Any = None
    """stockflow's :class:`~stockflow._faust.batches.BatchProcessor`, set by
    :func:`stockflow.install`: its topics bypass Faust's per-record path."""
    changelog: Any = None
    """stockflow's :class:`~stockflow._faust.changelog.ChangelogWriter`, set by
    :func:`stockflow.install` on either path: a revocation waits for its acknowledgements."""


def complete_producer_flush(app: Any, before: Callable[[], Awaitable[None]] | None = None) -> None:
    """Make ``app.producer.flush()`` wait until every record buffered *before the call* has been
    handed to the client (whose own flush then waits for the broker's acknowledgements), and
    first for ``before()`` (stockflow's own record batches still being submitted,
    :meth:`stockflow._faust.producing.BatchSender.flushed`).

    Faust queues table (changelog) writes in a buffer that one background task drains, and
    commits input offsets right after ``producer.flush()``. Faust's buffer flush gives up once
    0.1 s pass without a record leaving the buffer, and misses the record the task has taken
    off the queue but not yet handed over: a commit could overtake the state changes it depends
    on, which a crash then lost (seen by the chaos suite). Waiting for an *empty* buffer instead
    starved every commit under load (the agents refill it as fast as it drains): orders were
    never committed, and a worker restarted after a crash replayed everything. Waiting for
    what was buffered before the flush began is exactly what a commit needs.

    Only for Faust's default producer (``producer_threaded`` off); otherwise left as it is.
    """
    if app.conf.producer_threaded:
        log.warning("producer_threaded: Faust's producer flush is used unchanged")
        return
    buffer = app.producer.buffer
    put = buffer.put
    send_pending = buffer._send_pending
    progress = asyncio.Event()
    counts = {"put": 0, "sent": 0}

    def counted_put(fut: Any) -> None:
        counts["put"] += 1
        put(fut)

    async def counted_send_pending(fut: Any) -> None:
        # One task sends the buffered records in the order they were put.
        try:
            await send_pending(fut)
        finally:
            counts["sent"] += 1
            progress.set()

    async def flush() -> None:
        if before is not None:
            await before()
        target = counts["put"]
        while counts["sent"] < target and not buffer.should_stop:
            progress.clear()
            # Bounded so that a buffer being stopped is noticed (its task sends no more).
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(progress.wait(), timeout=1.0)

    buffer.put = counted_put
    buffer._send_pending = counted_send_pending
    buffer.flush = flush
