"""ChangelogWriter: table changes reach the producer in write order, once per batch."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.structs import RecordMetadata, TopicPartition

from stockflow._faust.changelog import ChangelogWriter
from stockflow._faust.membership import MembershipLease, MembershipLost


@dataclass
class FakeTopic:
    name: str

    def get_topic_name(self) -> str:
        return self.name


@dataclass
class FakeStore:
    persisted: dict[int, int] = field(default_factory=dict)

    def set_persisted_offset(self, tp: TopicPartition, offset: int) -> None:
        self.persisted[tp.partition] = offset


@dataclass(eq=False)  # hashed by identity, as Faust's tables are
class FakeTable:
    name: str
    data: FakeStore = field(default_factory=FakeStore)

    @property
    def changelog_topic(self) -> FakeTopic:
        return FakeTopic(f"{self.name}-changelog")


def batch_bytes(records: int) -> int:
    """A record batch size that holds ``records`` of this file's records (one-byte keys and
    values) and not one more."""
    builder = BatchBuilder(1 << 20, DefaultRecordBatch.CODEC_NONE)
    for _ in range(records):
        builder.append(timestamp=None, key=b"k", value=b"v")
    return builder.size() + 2  # room for a later timestamp's longer varint, not for a record


class FakeProducer:
    """aiokafka's ``send_batch``, recording every record as the client builds the batch;
    ``yield_every`` submissions give the event loop a turn, as waiting for a free slot in the
    real client does; ``fail`` makes the futures of that topic fail; ``capacity`` records fill
    a batch (the app's ``producer_max_batch_size``)."""

    def __init__(
        self,
        yield_every: int = 0,
        fail: str | None = None,
        capacity: int = 100,
        error: Exception | None = None,
    ) -> None:
        self.error = error or RuntimeError("broker said no")
        self.sent: list[tuple[str, bytes, bytes | None, int]] = []
        self.headers: list[tuple[str, int, tuple[tuple[str, bytes], ...]]] = []
        self.batches: list[tuple[str, int, int]] = []
        self.offsets: dict[tuple[str, int], int] = {}
        self.yield_every = yield_every
        self.fail = fail
        self.capacity = capacity

    def _ensure_producer(self) -> FakeProducer:
        return self

    async def send_batch(
        self, builder: BatchBuilder, topic: str, *, partition: int
    ) -> asyncio.Future[Any]:
        built = list(DefaultRecordBatch(bytearray(builder._build())))
        records = [(r.key, r.value) for r in built]
        self.headers.extend((topic, partition, tuple(r.headers)) for r in built)
        self.batches.append((topic, partition, len(records)))
        if self.yield_every and len(self.batches) % self.yield_every == 0:
            await asyncio.sleep(0)
        base = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = base + len(records)
        for key, value in records:
            self.sent.append((topic, key, value, partition))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        tp = TopicPartition(topic, partition)
        if topic == self.fail:
            future.set_exception(self.error)
        else:
            future.set_result(RecordMetadata(topic, partition, tp, base, -1, 0, 0))
        return future

    def in_partition(self, topic: str, partition: int) -> list[bytes | None]:
        return [value for t, _k, value, p in self.sent if (t, p) == (topic, partition)]


@dataclass
class FakeApp:
    producer: FakeProducer
    conf: Any = None
    crashed: list[BaseException] = field(default_factory=list)
    consumer: Any = None

    def __post_init__(self) -> None:
        if self.conf is None:  # Faust's producer settings, as BatchSender reads them
            self.conf = SimpleNamespace(
                producer_max_batch_size=batch_bytes(self.producer.capacity),
                producer_compression_type=None,
            )

    async def crash(self, exc: BaseException) -> None:
        self.crashed.append(exc)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_records_are_sent_in_write_order_with_their_partition() -> None:
    app = FakeApp(FakeProducer())
    writer = ChangelogWriter(app)
    products, orders = FakeTable("products"), FakeTable("orders")
    writer.add(products, 1, b"s:a", b"1")
    writer.add(orders, 1, b"o:x", b"placed")
    writer.add(products, 1, b"s:a", b"2")
    writer.add(products, 3, b"t:old", None)
    assert writer.pending == 4
    await writer.send()
    assert writer.pending == 0
    await writer.sender.flushed()
    # Kafka orders records within a partition only: that order is the write order.
    assert sorted(app.producer.sent, key=lambda r: (r[0], r[3])) == [
        ("orders-changelog", b"o:x", b"placed", 1),
        ("products-changelog", b"s:a", b"1", 1),
        ("products-changelog", b"s:a", b"2", 1),
        ("products-changelog", b"t:old", None, 3),
    ]
    assert len(app.producer.batches) == 3  # one record batch per changelog partition
    await settle()
    # The last offset per changelog partition, as Faust's own callback would have recorded it.
    assert products.data.persisted == {1: 1, 3: 0}
    assert orders.data.persisted == {1: 0}
    await writer.send()  # nothing pending: nothing sent
    assert len(app.producer.sent) == 4


async def test_writes_made_while_a_send_is_in_progress_go_out_after_it() -> None:
    # Two agents share the writer: the second one's records must not overtake the first's.
    app = FakeApp(FakeProducer(yield_every=1))
    writer = ChangelogWriter(app)
    table = FakeTable("products")
    for i in range(5):
        writer.add(table, 0, b"k", str(i).encode())

    async def second_agent() -> None:
        await asyncio.sleep(0)  # runs while the first send is suspended
        for i in range(5, 8):
            writer.add(table, 0, b"k", str(i).encode())
        await writer.send()

    await asyncio.gather(writer.send(), second_agent())
    await writer.sender.flushed()
    assert [value for _, _, value, _ in app.producer.sent] == [str(i).encode() for i in range(8)]
    assert writer.pending == 0


async def test_a_full_batch_is_submitted_and_the_partition_continues_in_order() -> None:
    app = FakeApp(FakeProducer(capacity=2))
    writer = ChangelogWriter(app)
    table = FakeTable("products")
    for i in range(5):
        writer.add(table, 0, b"k", str(i).encode())
    writer.add(table, 1, b"j", b"x")
    await writer.send()
    await writer.sender.flushed()
    assert app.producer.in_partition("products-changelog", 0) == [b"0", b"1", b"2", b"3", b"4"]
    assert [size for _t, p, size in app.producer.batches if p == 0] == [2, 2, 1]
    assert [size for _t, p, size in app.producer.batches if p == 1] == [1]
    await settle()
    # The persisted offset is the partition's last record, in its last batch.
    assert table.data.persisted == {0: 4, 1: 0}


async def test_a_failed_changelog_write_stops_the_worker() -> None:
    app = FakeApp(FakeProducer(fail="orders-changelog"))
    writer = ChangelogWriter(app)
    products, orders = FakeTable("products"), FakeTable("orders")
    writer.add(products, 0, b"s:a", b"1")
    writer.add(orders, 0, b"o:x", b"placed")
    await writer.send()
    await settle()
    assert len(app.crashed) == 1 and "broker said no" in str(app.crashed[0])
    assert orders.data.persisted == {}  # never recorded as held
    assert products.data.persisted == {0: 0}


@dataclass
class SealedFake:
    """A TableStore whose writes wait for their changelog records (``seal``)."""

    table: FakeTable
    applied: list[tuple[int, list[dict[bytes, bytes | None]], int | None]] = field(
        default_factory=list
    )
    unsent_partitions: list[int] = field(default_factory=list)
    epochs: list[int | None] = field(default_factory=list)

    def unsent(self, partition: int) -> None:
        self.unsent_partitions.append(partition)

    def acknowledged(
        self,
        partition: int,
        writes: list[dict[bytes, bytes | None]],
        offset: int | None,
        epoch: int | None,
    ) -> None:
        self.applied.append((partition, writes, offset))
        self.epochs.append(epoch)


async def test_sealed_writes_reach_their_store_at_the_acknowledgement_of_their_records() -> None:
    app = FakeApp(FakeProducer(capacity=2))
    writer = ChangelogWriter(app)
    store = SealedFake(FakeTable("products"))
    for i in range(3):
        writer.add(store.table, 0, b"k", str(i).encode())
    writer.seal(store, 0, {b"k": b"1"})
    writer.add(store.table, 0, b"j", b"x")
    writer.add(store.table, 1, b"i", b"y")
    writer.seal(store, 0, {b"j": b"x"})
    writer.seal(store, 1, {b"i": b"y"})
    assert await writer.settled(0.01)  # nothing sent yet: nothing to wait for
    await writer.send()
    assert await writer.settled(1.0)
    # Both batches of partition 0 together, at its last record (offset 3, in its second
    # record batch); the persisted offset goes with them, not through Faust's callback.
    assert sorted(store.applied) == [(0, [{b"k": b"1"}, {b"j": b"x"}], 3), (1, [{b"i": b"y"}], 0)]
    assert store.table.data.persisted == {}


async def one_failed_sealed_write(error: Exception | None = None) -> tuple[FakeApp, SealedFake]:
    app = FakeApp(FakeProducer(fail="products-changelog", error=error))
    writer = ChangelogWriter(app)
    store = SealedFake(FakeTable("products"))
    writer.add(store.table, 0, b"k", b"v")
    writer.seal(store, 0, {b"k": b"v"})
    await writer.send()
    assert await writer.settled(1.0)
    await settle()
    return app, store


async def test_sealed_writes_of_a_failed_changelog_write_never_reach_the_store() -> None:
    app, store = await one_failed_sealed_write()
    assert store.applied == [] and len(app.crashed) == 1


async def test_writes_held_back_from_a_dropped_worker_are_dropped_without_a_crash() -> None:
    # The group dropped the worker before its records left (a freeze): they are never sent,
    # its store shows the database again, and the worker goes on to rejoin.
    app, store = await one_failed_sealed_write(MembershipLost("dropped from the group"))
    assert store.applied == [] and store.unsent_partitions == [0]
    assert app.crashed == []


async def test_settled_waits_for_acknowledgements_with_a_bound() -> None:
    app = FakeApp(FakeProducer())
    pending: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def never_acked(builder: BatchBuilder, topic: str, *, partition: int) -> Any:
        return pending

    app.producer.send_batch = never_acked  # type: ignore[method-assign]
    writer = ChangelogWriter(app)
    store = SealedFake(FakeTable("products"))
    writer.add(store.table, 2, b"k", b"v")
    writer.seal(store, 2, {b"k": b"v"})
    await writer.send()
    assert not await writer.settled(0.05)
    assert store.applied == []
    tp = TopicPartition("products-changelog", 2)
    pending.set_result(RecordMetadata("products-changelog", 2, tp, 41, -1, 0, 0))
    assert await writer.settled(1.0)
    assert store.applied == [(2, [{b"k": b"v"}], 41)]


async def test_a_shared_key_keeps_one_record_with_its_last_value_where_it_was_first_written() -> (
    None
):
    app = FakeApp(FakeProducer())
    writer = ChangelogWriter(app)
    table = FakeTable("orders")
    writer.share(table, 0, b"t:bucket", b"a")
    writer.add(table, 0, b"o:a", b"saga a")
    writer.share(table, 0, b"t:bucket", b"ab")
    writer.add(table, 0, b"o:b", b"saga b")
    writer.share(table, 1, b"t:bucket", b"c")  # another partition: its own record
    assert writer.pending == 4
    await writer.send()
    await writer.sender.flushed()
    assert app.producer.in_partition("orders-changelog", 0) == [b"ab", b"saga a", b"saga b"]
    # A plain write of the key ends the sharing: later values follow it, never precede it.
    writer.share(table, 0, b"t:bucket", b"x")
    writer.add(table, 0, b"t:bucket", None)
    writer.share(table, 0, b"t:bucket", b"y")
    await writer.send()
    await writer.sender.flushed()
    assert app.producer.in_partition("orders-changelog", 0)[3:] == [b"x", None, b"y"]


async def test_sends_queued_behind_an_unaccepted_batch_travel_in_one_batch_at_their_offsets() -> (
    None
):
    # At a worker's maximum the client accepts a partition's next record batch late (its
    # sender gets the event loop only between processed batches): the records of the sends
    # made meanwhile join one queued batch, and each send's writes still reach the store at
    # the offset of its own last record.
    app = FakeApp(FakeProducer())
    accepted = asyncio.Event()
    plain_send = app.producer.send_batch

    async def slow_client(builder: BatchBuilder, topic: str, *, partition: int) -> Any:
        if not app.producer.batches:
            # The first batch is in a produce request (built: it takes no more records), and
            # the client takes the partition's next only once the test lets it go.
            builder._build()
            await accepted.wait()
        return await plain_send(builder, topic, partition=partition)

    app.producer.send_batch = slow_client  # type: ignore[method-assign]
    writer = ChangelogWriter(app)
    store = SealedFake(FakeTable("products"))
    for send in range(4):
        for i in range(send + 1):  # 1, 2, 3 and 4 records
            writer.add(store.table, 0, b"k", f"{send}.{i}".encode())
        writer.seal(store, 0, {b"k": f"{send}".encode()})
        await writer.send()
        await settle()
    assert app.producer.batches == []  # the first one still waits for the client
    accepted.set()
    assert await writer.settled(1.0)
    # The first send's batch, then one batch with the records of the three sends behind it.
    assert app.producer.batches == [("products-changelog", 0, 1), ("products-changelog", 0, 9)]
    values = [f"{send}.{i}".encode() for send in range(4) for i in range(send + 1)]
    assert app.producer.in_partition("products-changelog", 0) == values
    assert [(writes, offset) for _p, writes, offset in store.applied] == [
        ([{b"k": b"0"}], 0),
        ([{b"k": b"1"}], 2),
        ([{b"k": b"2"}], 5),
        ([{b"k": b"3"}], 9),
    ]
    # A batch the client has built takes no more records: the next send starts another.
    writer.add(store.table, 0, b"k", b"4.0")
    writer.seal(store, 0, {b"k": b"4"})
    await writer.send()
    assert await writer.settled(1.0)
    assert app.producer.batches[2:] == [("products-changelog", 0, 1)]
    assert store.applied[4][1:] == ([{b"k": b"4"}], 10)


async def test_a_queued_batch_whose_task_is_cancelled_takes_no_more_records() -> None:
    # Cancelled while it waits for its turn (a stopping worker): its records are reported
    # lost (the worker stops), and a later send's records go into a batch of their own.
    app = FakeApp(FakeProducer())
    accepted = asyncio.Event()
    plain_send = app.producer.send_batch

    async def slow_client(builder: BatchBuilder, topic: str, *, partition: int) -> Any:
        if not app.producer.batches:
            builder._build()  # in a produce request: the next records queue behind it
            await accepted.wait()
        return await plain_send(builder, topic, partition=partition)

    app.producer.send_batch = slow_client  # type: ignore[method-assign]
    writer = ChangelogWriter(app)
    table = FakeTable("products")
    for value in (b"first", b"queued"):
        writer.add(table, 0, b"k", value)
        await writer.send()
        await settle()
    writer.sender._tails[("products-changelog", 0)].cancel()
    await settle()
    writer.add(table, 0, b"k", b"later")
    await writer.send()
    accepted.set()
    await writer.sender.flushed()
    await settle()
    # Not in the cancelled batch; the order after a lost batch does not matter: its failed
    # delivery stops the worker, which commits nothing past it.
    assert sorted(app.producer.in_partition("products-changelog", 0)) == [b"first", b"later"]
    assert len(app.crashed) == 1


@dataclass
class FakeCoordinator:
    generation: int


@dataclass
class FakeConsumer:
    membership: MembershipLease


@pytest.mark.parametrize(
    ("confirmed_ago", "generation_then", "persisted"),
    [
        (1.0, 1, True),  # confirmed within the window, in the generation that sent them
        (20.0, 1, False),  # frozen past the window: possibly dropped before the append
        (1.0, 2, False),  # confirmed, but in a generation after the one that sent them
    ],
)
async def test_the_offset_of_records_acknowledged_after_the_membership_lapsed_is_not_persisted(
    confirmed_ago: float, generation_then: int, persisted: bool
) -> None:
    # A produce request past the membership gate when the worker froze is sent when it wakes,
    # after its successor's records: its acknowledgement must not move the persisted offset
    # past records this store never applied (a soak's restore skipped them). The values are
    # applied either way (the log holds them).
    lease = MembershipLease(5.0)
    coordinator = FakeCoordinator(generation=1)
    lease._coordinator = coordinator
    lease.confirm(time.monotonic() - 1.0, 1)
    app = FakeApp(FakeProducer(), consumer=FakeConsumer(lease))
    writer = ChangelogWriter(app)
    store = SealedFake(FakeTable("products"))
    writer.add(store.table, 0, b"k", b"v")
    writer.add(store.table, 0, b"j", b"w")
    writer.seal(store, 0, {b"k": b"v", b"j": b"w"})
    # What happened between the hand-over to the producer and the acknowledgement.
    original = app.producer.send_batch

    async def send_batch(builder: BatchBuilder, topic: str, *, partition: int) -> Any:
        coordinator.generation = lease.generation = generation_then
        lease.confirmed_at = time.monotonic() - confirmed_ago
        return await original(builder, topic, partition=partition)

    app.producer.send_batch = send_batch  # type: ignore[method-assign]
    await writer.send()
    assert await writer.settled(1.0)
    assert store.applied == [(0, [{b"k": b"v", b"j": b"w"}], 1 if persisted else None)]
    assert app.crashed == []


async def test_records_carry_the_epoch_their_partition_is_written_in() -> None:
    # stockflow.fencing: above the group's generation and above what the partition's restore
    # read, so that a frozen predecessor's late records are skipped by every later reader.
    lease = MembershipLease(5.0)
    coordinator = FakeCoordinator(generation=3)
    lease._coordinator = coordinator
    lease.confirm(time.monotonic(), 3)
    app = FakeApp(FakeProducer(), consumer=FakeConsumer(lease))
    writer = ChangelogWriter(app)
    store = SealedFake(FakeTable("products"))
    store.table.data._stockflow_epochs = {0: 5}  # type: ignore[attr-defined]  # restored
    for partition in (0, 1):
        writer.add(store.table, partition, b"k", b"v")
        writer.seal(store, partition, {b"k": b"v"})
    await writer.send()
    assert await writer.settled(1.0)
    stamped = {(p, h) for _t, p, h in app.producer.headers}
    assert stamped == {(0, (("stockflow-epoch", b"6"),)), (1, (("stockflow-epoch", b"3"),))}
    assert sorted(zip([a[0] for a in store.applied], store.epochs, strict=True)) == [(0, 6), (1, 3)]

    # The next rebalance: a new epoch, never below the one written before.
    app.consumer_generation_id = 4  # type: ignore[attr-defined]
    lease.confirm(time.monotonic(), 4)
    writer.add(store.table, 0, b"k", b"w")
    await writer.send()
    await writer.sender.flushed()
    assert app.producer.headers[-1] == ("products-changelog", 0, (("stockflow-epoch", b"6"),))


async def test_an_app_without_a_consumer_group_writes_no_epoch() -> None:
    app = FakeApp(FakeProducer())
    writer = ChangelogWriter(app)
    writer.add(FakeTable("products"), 0, b"k", b"v")
    await writer.send()
    await writer.sender.flushed()
    assert app.producer.headers == [("products-changelog", 0, ())]


async def test_records_another_writer_put_between_this_writer_s_are_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FakeApp(FakeProducer())
    writer = ChangelogWriter(app)
    table = FakeTable("products")
    writer.add(table, 0, b"k", b"1")
    await writer.send()
    await writer.sender.flushed()
    app.producer.offsets[("products-changelog", 0)] += 3  # a frozen worker's request landed
    writer.add(table, 0, b"k", b"2")
    await writer.send()
    await writer.sender.flushed()
    await settle()
    assert writer.foreign_records == 3
    assert "offsets 1..3 were written by another worker" in caplog.text


@dataclass
class HoldingStore(SealedFake):
    """A sealed store that says which value it holds for a key (``TableStore.current``)."""

    values: dict[bytes, bytes] = field(default_factory=dict)

    def current(self, partition: int, key: bytes) -> bytes | None:
        return self.values.get(key)


def owning_app(generation: int, active: set[int]) -> FakeApp:
    """An app in a consumer group at ``generation`` whose worker holds the ``active``
    partitions, its tables recovered."""
    lease = MembershipLease(5.0)
    lease._coordinator = FakeCoordinator(generation=generation)
    lease.confirm(time.monotonic(), generation)
    app = FakeApp(FakeProducer(), consumer=FakeConsumer(lease))
    recovered = asyncio.Event()
    recovered.set()
    app.tables = SimpleNamespace(recovery=SimpleNamespace(completed=recovered))  # type: ignore[attr-defined]
    app.assignor = SimpleNamespace(is_active=lambda tp: tp.partition in active)  # type: ignore[attr-defined]
    return app


async def test_keys_of_records_another_writer_put_between_this_writer_s_are_written_again() -> None:
    # stockflow._faust.repairs: a compacted changelog keeps each key's last record, so the
    # owner's record of a key a late record wrote must come after it.
    app = owning_app(generation=3, active={0})
    asked: list[tuple[str, int, int, int, int]] = []

    async def read_keys(_app: Any, topic: str, partition: int, *span: int) -> set[bytes]:
        asked.append((topic, partition, *span))
        return {b"k", b"gone"}

    writer = ChangelogWriter(app, read_keys=read_keys)
    store = HoldingStore(FakeTable("products"), values={b"k": b"mine"})
    writer.register(store)
    writer.adopt({("products-changelog", 0): 0})  # its restore read nothing
    for key, value in ((b"k", b"mine"), (b"j", b"x")):
        writer.add(store.table, 0, key, value)
        writer.seal(store, 0, {key: value})
        await writer.send()
        assert await writer.settled(1.0)
        if key == b"k":
            app.producer.offsets[("products-changelog", 0)] += 2  # a frozen worker's landed
    for _ in range(3):
        await settle()
        await writer.sender.flushed()
    assert asked == [("products-changelog", 0, 1, 2, 3)]
    again = {(key, value) for _t, key, value, _p in app.producer.sent[2:]}
    assert again == {(b"k", b"mine"), (b"gone", None)}  # after every write; a delete if unheld
    assert {h for _t, _p, h in app.producer.headers} == {(("stockflow-epoch", b"3"),)}
    assert [offset for _p, _w, offset in store.applied] == [0, 3]  # they move no offset
    assert writer.repairs.written == 2 and writer.foreign_records == 2
    assert app.crashed == []


async def test_keys_a_reader_skipped_are_written_again_once_their_partition_is_active_here() -> (
    None
):
    app = owning_app(generation=3, active={0})
    writer = ChangelogWriter(app)
    store = HoldingStore(FakeTable("products"), values={b"a": b"1", b"b": b"2"})
    writer.register(store)
    writer.repairs.skipped("products-changelog", 0, b"a")  # the restore skipped them
    writer.repairs.skipped("products-changelog", 1, b"b")  # a standby replica skipped it
    writer.adopt({("products-changelog", 0): 7})
    for _ in range(2):
        await settle()
        await writer.sender.flushed()
    assert app.producer.sent == [("products-changelog", b"a", b"1", 0)]

    # The next rebalance makes partition 1 active here.
    app.consumer_generation_id = 4  # type: ignore[attr-defined]
    app.consumer.membership.confirm(time.monotonic(), 4)
    app.assignor = SimpleNamespace(is_active=lambda tp: True)  # type: ignore[attr-defined]
    writer.adopt({("products-changelog", 0): 8, ("products-changelog", 1): 0})
    for _ in range(2):
        await settle()
        await writer.sender.flushed()
    assert app.producer.sent[1:] == [("products-changelog", b"b", b"2", 1)]
    assert app.producer.headers[-1] == ("products-changelog", 1, (("stockflow-epoch", b"4"),))
    assert writer.repairs.written == 2


async def test_closing_the_repairs_cancels_reads_under_way_and_waits_for_them() -> None:
    # At shutdown no read of a changelog range may outlive the worker (its consumer stopped).
    app = owning_app(generation=3, active={0})
    started, stopped = asyncio.Event(), asyncio.Event()

    async def read_keys(*_args: Any) -> set[bytes]:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.set()  # as read_foreign_keys stops its consumer
        return {b"never"}

    writer = ChangelogWriter(app, read_keys=read_keys)
    writer.repairs.foreign("products-changelog", 0, 1, 2, 3)
    await asyncio.wait_for(started.wait(), 1.0)
    await asyncio.wait_for(writer.repairs.close(timeout=1.0), 2.0)
    assert stopped.is_set()
    assert not writer.repairs.due and app.producer.sent == []
