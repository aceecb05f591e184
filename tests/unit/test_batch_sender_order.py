"""BatchSender hands a batch's outputs to the client only after the changelog writes queued
before them: an output on the broker implies the writes that decided it are there too (one
broker serves a client's requests in order), so a worker killed in between cannot leave an
outcome whose deciding saga write was lost.

Found by the interleavings property test (tests/unit/test_outcome_interleavings.py): with the
writes lost and the outputs kept, a redelivered multi-line order was decided again in another
order of its answers and answered twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from stockflow._faust.membership import MembershipLease, gate_sends
from stockflow._faust.open_batches import OpenBuilder, seal_on_drain
from stockflow._faust.producing import BatchSender

BATCH_BYTES = 64 * 1024
CHANGELOG = "app-orders-changelog"


class SlowChangelogProducer:
    """aiokafka's batch API, where a changelog partition's batch is accepted only once
    ``turn`` is set: its previous batch has not left for the broker yet (aiokafka takes a
    partition's next batch only then). ``handed`` lists batches in the order accepted."""

    def __init__(self) -> None:
        self.handed: list[tuple[str, list[bytes | None]]] = []
        self.turn = asyncio.Event()

    def _ensure_producer(self) -> SlowChangelogProducer:
        return self

    async def send_batch(self, builder: BatchBuilder, topic: str, *, partition: int) -> Any:
        if topic == CHANGELOG:
            await self.turn.wait()
        records = DefaultRecordBatch(bytearray(builder._build()))
        self.handed.append((topic, [record.value for record in records]))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(SimpleNamespace(offset=0))
        return done


Handed = list[tuple[str, list[bytes | None]]]


def handed(script: Callable[[SlowChangelogProducer, BatchSender], Awaitable[None]]) -> Handed:
    """What reached the client, in order, once ``script`` has sent its records and every
    changelog partition had its turn."""

    async def run() -> Handed:
        producer = SlowChangelogProducer()
        app = SimpleNamespace(
            producer=producer,
            conf=SimpleNamespace(
                producer_max_batch_size=BATCH_BYTES, producer_compression_type=None
            ),
        )
        sender = BatchSender(app)
        await script(producer, sender)
        producer.turn.set()
        await sender.flushed()
        return producer.handed

    return asyncio.run(run())


def test_a_batch_s_outputs_wait_for_its_changelog_writes() -> None:
    async def script(producer: SlowChangelogProducer, sender: BatchSender) -> None:
        await sender.send([(CHANGELOG, 2, b"o:o-1", b"rejected")])
        await sender.send([("reservations", 0, b"o-1", b"OrderRejected")], after_state=True)
        await asyncio.sleep(0.01)
        assert producer.handed == []  # the outcome waits while its saga's write waits

    assert handed(script) == [(CHANGELOG, [b"rejected"]), ("reservations", [b"OrderRejected"])]


def test_outputs_queued_behind_their_partition_wait_for_later_changelog_writes_too() -> None:
    # The next batch's outputs join the output batch still queued; that batch then waits for
    # the next batch's changelog writes as well.
    async def script(producer: SlowChangelogProducer, sender: BatchSender) -> None:
        await sender.send([(CHANGELOG, 2, b"o:o-1", b"first")])
        await sender.send([("reservations", 0, b"o-1", b"one")], after_state=True)
        await sender.send([(CHANGELOG, 3, b"o:o-2", b"second")])
        await sender.send([("reservations", 0, b"o-2", b"two")], after_state=True)

    sent = handed(script)
    assert [topic for topic, _values in sent] == [CHANGELOG, CHANGELOG, "reservations"]
    assert sent[-1] == ("reservations", [b"one", b"two"])


def test_changelog_writes_never_wait_for_outputs() -> None:
    async def script(producer: SlowChangelogProducer, sender: BatchSender) -> None:
        producer.turn.set()
        await sender.send([("reservations", 0, b"o-1", b"one")], after_state=True)
        await sender.send([(CHANGELOG, 2, b"o:o-2", b"next")])

    assert sorted(handed(script)) == [(CHANGELOG, [b"next"]), ("reservations", [b"one"])]


class Accumulator:
    """aiokafka's client as BatchSender meets it: a partition's batch is accepted at once
    unless the partition's previous one still waits to be drained, and :meth:`drain` builds
    every accepted batch into one produce request (``requests``), as the client's sender does
    once the request before is answered."""

    def __init__(self) -> None:
        self.waiting: dict[tuple[str, int], tuple[BatchBuilder, asyncio.Event]] = {}
        self.requests: list[dict[str, list[bytes | None]]] = []

    def _ensure_producer(self) -> Accumulator:
        return self

    async def send_batch(self, builder: BatchBuilder, topic: str, *, partition: int) -> Any:
        while (topic, partition) in self.waiting:
            await self.waiting[(topic, partition)][1].wait()
        self.waiting[(topic, partition)] = (builder, asyncio.Event())
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(SimpleNamespace(offset=0))
        return done

    def drain(self) -> None:
        request = {}
        for (topic, _partition), (builder, drained) in self.waiting.items():
            request[topic] = [record.value for record in DefaultRecordBatch(builder._build())]
            drained.set()
        self.waiting.clear()
        self.requests.append(request)


def requests(
    script: Callable[[Accumulator, BatchSender], Awaitable[None]], batch_bytes: int = BATCH_BYTES
) -> list[dict[str, list[bytes | None]]]:
    """The produce requests ``script`` made."""

    async def run() -> list[dict[str, list[bytes | None]]]:
        client = Accumulator()
        conf = SimpleNamespace(producer_max_batch_size=batch_bytes, producer_compression_type=None)
        await script(client, BatchSender(SimpleNamespace(producer=client, conf=conf)))
        return client.requests

    return asyncio.run(run())


async def turn() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_partition_s_later_records_join_its_batch_until_the_client_builds_it() -> None:
    # Waiting in the client for the request before it to be answered, the batch takes the
    # next sends' records: they go in the next request, not in one a round trip later.
    async def script(client: Accumulator, sender: BatchSender) -> None:
        first = await sender.send([(CHANGELOG, 0, b"s:a", b"1")])
        await turn()
        second = await sender.send([(CHANGELOG, 0, b"s:a", b"2"), (CHANGELOG, 0, b"s:b", b"3")])
        assert [(d, n) for _t, _p, d, n in second] == [(first[0][2], 3)]  # offsets 1 and 2
        client.drain()
        third = await sender.send([(CHANGELOG, 0, b"s:a", b"4")])
        assert third[0][2] is not first[0][2]  # built: a batch of its own
        await turn()
        client.drain()

    assert requests(script) == [{CHANGELOG: [b"1", b"2", b"3"]}, {CHANGELOG: [b"4"]}]


def test_outputs_join_a_handed_batch_only_while_no_changelog_batch_waits() -> None:
    # A changelog partition's batch is full (two of its records; three outputs fit in one),
    # so its next record waits for the full one to be drained; the outputs decided with it
    # must not join the output batch already in the client, which that drain takes to the
    # broker.
    two_records = BatchBuilder(BATCH_BYTES, DefaultRecordBatch.CODEC_NONE)
    for value in (b"x" * 8, b"y" * 8):
        two_records.append(timestamp=None, key=b"k", value=value)

    async def script(client: Accumulator, sender: BatchSender) -> None:
        await sender.send([(CHANGELOG, 0, b"k", b"x" * 8)])
        await sender.send([("reservations", 0, b"o", b"1")], after_state=True)
        await turn()
        await sender.send([(CHANGELOG, 0, b"k", b"y" * 8)])  # joins x: nothing waits
        await sender.send([("reservations", 0, b"o", b"2")], after_state=True)
        await sender.send([(CHANGELOG, 0, b"k", b"z" * 8)])  # full: waits for the drain
        await sender.send([("reservations", 0, b"o", b"3")], after_state=True)
        await turn()
        client.drain()
        await turn()
        client.drain()

    assert requests(script, batch_bytes=two_records.size() + 2) == [
        {CHANGELOG: [b"x" * 8, b"y" * 8], "reservations": [b"1", b"2"]},
        {CHANGELOG: [b"z" * 8], "reservations": [b"3"]},
    ]


def test_a_batch_drained_into_a_request_is_sealed_before_the_request_runs() -> None:
    # aiokafka's sender routine drains the accumulator and calls _send_produce_req for the
    # drained batches at once; the request is built only when its task runs (later still
    # while the membership gate holds it). A record joining a drained batch in between would
    # travel ahead of changelog records still waiting in the accumulator.
    lease = MembershipLease(5.0)  # never confirmed: the gate holds every request
    started: list[int] = []

    class Sender:
        async def _send_produce_req(self, node_id: int, batches: dict[Any, Any]) -> None:
            started.append(node_id)

    sender = Sender()
    gate_sends(sender, lease)
    seal_on_drain(sender)
    seal_on_drain(sender)  # once only
    builder = OpenBuilder(BATCH_BYTES, DefaultRecordBatch.CODEC_NONE)
    assert builder.add(timestamp=None, key=b"o", value=b"1") is not None
    request = sender._send_produce_req(1, {("reservations", 0): SimpleNamespace(_builder=builder)})
    assert (
        builder.add(timestamp=None, key=b"o", value=b"2") is None
    )  # sealed by the call itself, before any task runs
    assert started == []
    request.close()  # type: ignore[attr-defined]
    # To aiokafka it is closed from the start: no linger, and producer.send never joins it.
    fresh = OpenBuilder(BATCH_BYTES, DefaultRecordBatch.CODEC_NONE)
    assert fresh.closed() and fresh.append(timestamp=None, key=b"k", value=b"v") is None
    assert fresh.add(timestamp=None, key=b"k", value=b"v") is not None
