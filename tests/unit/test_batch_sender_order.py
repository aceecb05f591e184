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

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(BATCH_BYTES, DefaultRecordBatch.CODEC_NONE)

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
            producer=producer, conf=SimpleNamespace(producer_max_batch_size=BATCH_BYTES)
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
