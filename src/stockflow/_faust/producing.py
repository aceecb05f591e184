"""A batch's records handed to aiokafka's producer one record batch per topic partition.

``AIOKafkaProducer.send`` costs a coroutine, a future, a partitioner call and an accumulator
look-up per record, and resolving each future again when the broker acknowledges; a
single-line order leaves about ten records behind (changelog writes, commands, replies,
events), so that was the largest cost of a decision left after the consumer's. Here the
records of one processed batch are appended to one :class:`aiokafka.producer.BatchBuilder`
per topic partition (aiokafka's C record builder) and each builder is submitted with
``send_batch``: one future per topic partition and batch.

aiokafka accepts a partition's next record batch only once the previous one has left for the
broker, and it keeps one request in flight per broker: submitting inline made the processor
wait for a broker round trip per batch (a worker at 40% CPU). So builders are submitted by
tasks, in order per topic partition, while the processor goes on with the next batch; a
partition's builder takes the partition's next records until aiokafka builds it into a
produce request (:class:`~stockflow._faust.open_batches.OpenBuilder`), so a client that falls
behind gets fewer, fuller record batches rather than more of them.
:meth:`BatchSender.flushed` waits for every submission made before it; the producer's flush,
which precedes every offset commit, calls it first (:func:`stockflow._faust.transport.
complete_producer_flush`), so a commit never covers a record that is not on the broker. Its
record batches pass the membership gate (:func:`stockflow._faust.membership.gate_sends`): none
is sent by a worker the group has dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from functools import partial
from typing import Any

from aiokafka import codec
from aiokafka.record.default_records import DefaultRecordBatch

from stockflow._faust.membership import MembershipLease, MembershipLost, gate_sends, mark_gated
from stockflow._faust.open_batches import OpenBuilder, seal_on_drain
from stockflow.errors import DependencyError

__all__ = ["CODECS", "OUTPUT_ORDERS", "BatchSender", "Sent"]

log = logging.getLogger(__name__)

Sent = list[tuple[str, int, "asyncio.Future[Any]", int]]
"""Every record batch a send put records in, in order: ``(topic, partition, delivery,
records)``. ``delivery`` resolves to the batch's metadata (its ``offset`` is the batch's base
offset) or to the error that lost it; ``records`` counts the batch's records up to this send's
last one (earlier sends may have started the batch), so that record's offset is ``offset +
records - 1``."""

MAX_OUTSTANDING = 256
"""Record batches submitted but not yet accepted by the client, at most; past that the
processor waits (back-pressure instead of unbounded memory when the broker is slow)."""


CODECS = {
    "gzip": (codec.has_gzip, DefaultRecordBatch.CODEC_GZIP),
    "snappy": (codec.has_snappy, DefaultRecordBatch.CODEC_SNAPPY),
    "lz4": (codec.has_lz4, DefaultRecordBatch.CODEC_LZ4),
    "zstd": (codec.has_zstd, DefaultRecordBatch.CODEC_ZSTD),
}
"""Compression name -> (whether its library is installed, the record batch attribute)."""

OUTPUT_ORDERS = ("auto", "client", "acks")
"""When a batch's outputs may go (:class:`BatchSender`'s ``output_order``)."""


class _Queued:
    """A record batch being filled, waiting for its turn, or ``handed`` to the client and not
    built yet; ``count`` records so far."""

    __slots__ = ("acks", "after", "builder", "count", "delivery", "fixed", "handed", "output")

    def __init__(self, builder: OpenBuilder) -> None:
        self.builder = builder
        self.count = 0
        self.handed = False
        self.delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.after: list[asyncio.Task[None]] = []
        """Record batches of other partitions that must reach the client first (see
        :meth:`BatchSender.send`'s ``after_state``); grows while this one is still queued."""
        self.acks: list[asyncio.Future[Any]] = []
        """With the output order ``acks``: the deliveries of the changelog batches that must be
        acknowledged before this one goes."""
        self.fixed = False
        """Waiting for ``acks``: records that must wait start another batch (joining, they
        would add acks to wait for: a busy worker's outputs could wait for ever)."""
        self.output = False
        """Sent with ``after_state`` (outputs, or waiting changelog writes): never sent after
        a lost changelog write."""


class BatchSender:
    """Submits records through ``app``'s producer (Faust's, aiokafka underneath).

    Record batches of every topic but ``public`` ones are compressed with ``compression``
    (``"none"``: not at all); those of ``public`` topics as the producer is configured.

    ``output_order`` says when a batch's outputs (sends with ``after_state``) may go:
    ``client``, once the changelog writes queued before them are in the client: one broker
    serves a client's requests in order, so an output on it implies those writes; ``acks``,
    once those writes are acknowledged: with several brokers a changelog request can fail
    after its retries while an output request to another broker succeeded, and a worker that
    then crashed would leave an outcome whose deciding write is lost (a produce round trip
    more per hop); ``auto``, ``acks`` while the producer's metadata lists more than one broker,
    else ``client``. In every order, no output goes after a changelog batch has been lost."""

    def __init__(
        self,
        app: Any,
        *,
        compression: str = "none",
        public: Collection[str] = (),
        output_order: str = "auto",
    ) -> None:
        if output_order not in OUTPUT_ORDERS:
            raise ValueError(f"output_order must be one of {OUTPUT_ORDERS}, not {output_order!r}")
        self.app = app
        self.output_order = output_order
        self._acks_logged = False
        self._codec: int | None = None
        if compression != "none":
            available, self._codec = CODECS[compression]
            if not available():
                raise DependencyError(
                    f"{compression} compression needs cramjam (pip install 'aiokafka[zstd]')"
                )
        self._public = frozenset(public)
        self._partitions: dict[str, int] = {}
        self._tails: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._queued: dict[tuple[str, int], _Queued] = {}
        """Per topic partition, its last record batch, which takes the partition's next
        records while it waits for the previous one to reach the client and, handed, until
        the client builds it: at a worker's maximum the client's sender gets the event loop
        only between processed batches, so a partition's records of several of them travel
        in one record batch instead of one batch (and one produce request) each."""
        self._outstanding: dict[asyncio.Task[None], None] = {}  # in submission order
        self._state: dict[tuple[str, int], asyncio.Task[None]] = {}
        """Per topic partition written by sends without ``after_state`` (the changelogs), its
        last outstanding record batch: the partition's earlier ones are handed before it."""
        self._unacked: dict[asyncio.Future[Any], None] = {}
        """The deliveries of every changelog record batch not yet acknowledged, in order."""
        self._state_lost: BaseException | None = None
        """Why a changelog record batch was lost (not for :class:`MembershipLost`): the worker
        is stopping, and no output may go after it."""
        self._wrapped: Any = None

    def _client(self) -> Any:
        producer = self.app.producer._ensure_producer()
        if producer is not self._wrapped:  # once per client (Faust may start another)
            lease = getattr(getattr(self.app, "consumer", None), "membership", None)
            sender = getattr(producer, "_sender", None)  # none in a test client
            if sender is not None:
                if isinstance(lease, MembershipLease):
                    gate_sends(sender, lease)
                seal_on_drain(sender)  # after the gate: it must run before the gate's wait
            self._wrapped = producer
        return producer

    async def partitions(self, topic: str) -> int:
        """The number of partitions of ``topic`` as the producer's metadata knows it."""
        count = self._partitions.get(topic)
        if count is None:
            client = self._client().client
            await client._wait_on_metadata(topic)
            count = self._partitions[topic] = len(client.cluster.partitions_for_topic(topic))
        return count

    async def send(
        self,
        records: Iterable[tuple[str, int, bytes | None, bytes | None]],
        *,
        after_state: bool = False,
        output: bool | None = None,
        headers: Callable[[str, int], Sequence[tuple[str, bytes]] | None] | None = None,
        timestamp: int | None = None,
    ) -> Sent:
        """Queue ``(topic, partition, key, value)`` records for the producer, in order per
        topic partition. Returns at once unless :data:`MAX_OUTSTANDING` batches wait.

        ``after_state``: these records (a batch's outputs) reach the client only after every
        record batch queued before by a send without it (the changelog writes that decided
        them). Otherwise an output partition's batch could leave while a busy changelog
        partition's waited for its turn, and a worker killed in between left outputs on the
        broker whose deciding writes were lost: redelivered, the order could be decided again
        in another order of its answers, and answered twice (found by the interleavings
        property test).

        ``output=False`` with ``after_state``: changelog writes that wait so (a saga's writes
        decided by an answer applied in this process: :mod:`stockflow._faust.answers`); later
        outputs wait for them in turn. Each call starts new record batches for them, which
        later waits never join: a batch that waits on state never becomes a wait of its own.

        ``headers``: asked once per topic partition of the call for its records' headers.
        ``timestamp``: the records' timestamp in milliseconds (``None``: the client's clock
        when each is added)."""
        producer = self._client()
        touched: dict[tuple[str, int], _Queued] = {}
        sent: Sent = []
        state: list[asyncio.Task[None]] | None = None
        acks: list[asyncio.Future[Any]] = []
        if after_state:
            state = list(self._state.values())
            if self._unacked and self._acks_first(producer):
                acks = list(self._unacked)
        # Nothing to wait for (and nothing lost): plain changelog writes.
        waiting_state = output is False and bool(state or acks or self._state_lost)
        if output is False and not waiting_state:
            state = None
        stamps: dict[tuple[str, int], Sequence[tuple[str, bytes]] | None] = {}
        stamp = None
        for topic, partition, key, value in records:
            tp = (topic, partition)
            batch = touched.get(tp)
            if headers is not None:
                stamp = stamps[tp] if tp in stamps else stamps.setdefault(tp, headers(*tp))
            if batch is None:
                # The partition's last batch takes these too, and from then on waits for what
                # these wait for; handed to the client, it can no longer wait.
                batch = self._queued.get(tp)
                if (
                    batch is None
                    or waiting_state
                    or ((batch.handed or batch.fixed) and (state or acks))
                ):
                    batch = self._queue(producer, tp, state, acks, waiting_state)
                elif state or acks:
                    batch.after.extend(state or ())
                    batch.acks.extend(acks)
            if batch.builder.add(timestamp=timestamp, key=key, value=value, headers=stamp) is None:
                # Full or built: the partition's next batch starts with this record.
                if tp in touched:
                    sent.append((topic, partition, batch.delivery, batch.count))
                batch = self._queue(producer, tp, state, acks, waiting_state)
                added = batch.builder.add(timestamp=timestamp, key=key, value=value, headers=stamp)
                if added is None:
                    raise ValueError(f"a record for {topic} does not fit in a producer batch")
            touched[tp] = batch
            batch.count += 1
        for (topic, partition), batch in touched.items():
            sent.append((topic, partition, batch.delivery, batch.count))
        while len(self._outstanding) > MAX_OUTSTANDING:
            await asyncio.wait([next(iter(self._outstanding))])
        return sent

    def _builder(self, topic: str) -> OpenBuilder:
        conf = self.app.conf
        codec = self._codec  # stockflow's internal records get theirs, public ones the producer's
        if codec is None or topic in self._public:
            codec = _producer_codec(conf.producer_compression_type)
        return mark_gated(OpenBuilder(conf.producer_max_batch_size, codec))  # type: ignore[no-any-return]

    def _acks_first(self, producer: Any) -> bool:
        """Whether outputs wait for the changelog's acknowledgements (see the class)."""
        if self.output_order != "auto":
            return self.output_order == "acks"
        cluster = getattr(getattr(producer, "client", None), "cluster", None)
        brokers = 0 if cluster is None else len(cluster.brokers())
        if brokers > 1 and not self._acks_logged:
            self._acks_logged = True
            log.info("%d brokers: outputs wait for their changelog writes' acks", brokers)
        return brokers > 1

    def _queue(
        self,
        producer: Any,
        tp: tuple[str, int],
        after: list[asyncio.Task[None]] | None,
        acks: Sequence[asyncio.Future[Any]] = (),
        state: bool = False,
    ) -> _Queued:
        """A new record batch for ``tp``, handed to the client after the partition's previous
        one (and the batches in ``after``, and once ``acks`` are acknowledged: see
        :meth:`send`); until then the partition's next records are appended to it. ``state``:
        changelog writes although they wait (``send``'s ``output=False``)."""
        batch = _Queued(self._builder(tp[0]))
        if after is not None:
            batch.after = list(after)  # its own: a queued batch's list grows (see send)
            batch.acks = list(acks)
            batch.output = True  # also for waiting state: none goes after a lost write
        self._queued[tp] = batch
        task = asyncio.ensure_future(self._submit(self._tails.get(tp), producer, tp, batch))
        self._tails[tp] = task
        self._outstanding[task] = None
        if after is None or state:
            self._state[tp] = task
            self._unacked[batch.delivery] = None
            batch.delivery.add_done_callback(self._state_settled)
        task.add_done_callback(partial(self._done, tp))
        return batch

    def _state_settled(self, delivery: asyncio.Future[Any]) -> None:
        del self._unacked[delivery]
        exc = asyncio.CancelledError() if delivery.cancelled() else delivery.exception()
        if exc is not None and not isinstance(exc, MembershipLost) and self._state_lost is None:
            self._state_lost = exc

    async def _submit(
        self,
        previous: asyncio.Task[None] | None,
        producer: Any,
        tp: tuple[str, int],
        batch: _Queued,
    ) -> None:
        delivery = batch.delivery
        try:
            if previous is not None:
                await asyncio.wait([previous])  # the partition's order; its failure is its own
            while batch.after:  # appended to while it waits: the later state too
                after, batch.after = batch.after, []
                for task in after:
                    if not task.done():
                        await asyncio.wait([task])
            if batch.acks:
                batch.fixed = True
                for acked in batch.acks:
                    if not acked.done():
                        await asyncio.wait([acked])
                    if acked.cancelled():
                        raise asyncio.CancelledError
                    if (exc := acked.exception()) is not None:
                        raise exc  # the output of a lost write: never sent
            if batch.output and self._state_lost is not None:
                raise self._state_lost
            # Past its waits: from here on a send that must wait starts another batch, and
            # one that need not joins this one, until the client builds it.
            batch.handed = True
            future = await producer.send_batch(batch.builder, tp[0], partition=tp[1])
        except BaseException as exc:
            if self._queued.get(tp) is batch:
                del self._queued[tp]  # lost (or cancelled): later records start another
            if not delivery.done():
                delivery.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        future.add_done_callback(lambda done: _settle(done, delivery))

    def _done(self, tp: tuple[str, int], task: asyncio.Task[None]) -> None:
        self._outstanding.pop(task, None)
        if self._state.get(tp) is task:
            del self._state[tp]
        if self._tails.get(tp) is task:
            del self._tails[tp]

    async def flushed(self) -> None:
        """Wait until every record batch queued before this call is in the client."""
        waiting = list(self._outstanding)
        if waiting:
            await asyncio.wait(waiting)


def _producer_codec(name: str | None) -> int:
    """The record batch attribute of the producer's ``compression_type`` (``None``: none)."""
    if name is None:
        return DefaultRecordBatch.CODEC_NONE  # type: ignore[no-any-return]
    return CODECS[name][1]  # type: ignore[no-any-return]


def _settle(done: asyncio.Future[Any], delivery: asyncio.Future[Any]) -> None:
    if delivery.done():
        return
    if done.cancelled():
        delivery.cancel()
    elif done.exception() is not None:
        delivery.set_exception(done.exception())  # type: ignore[arg-type]
    else:
        delivery.set_result(done.result())
