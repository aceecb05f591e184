"""stockflow._faust.consumer.BatchConsumer without a broker: which fetched records of stockflow's
partitions reach the processor, and which are fetched again.

- A fetch that starts at the next offset to deliver is processed, and moves that offset.
- The fetcher's next request leaves before a batch is applied, not after it.
- Records delivered already (a seek back) are dropped, the rest of their batch processed.
- A fetch that starts past the next offset is dropped and fetched again from that offset; the
  same gap found by that fetch is the log's own and is processed (once, not in a loop).
- Records fetched while the flow was stopped are fetched again, not only sought to a committed
  offset that aiokafka does not seek to when there is none.
- A revocation waits for the changelog's acknowledgements on the batch and the stream path,
  and stops the worker when they do not come in time.
- Records fetched while the group membership is not confirmed (a worker frozen or cut off past
  its session timeout) are fetched again, not processed, until a heartbeat confirms it.
- A batch that ends while its partitions are being revoked (the revocation waits for it)
  leaves no offset behind for the next commit, even when the generation has not changed yet;
  and a commit whose offsets were taken before a revocation commits none of stockflow's.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from consumer_fakes import FakeRecord, FakeThread
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP

from stockflow._faust.answers import LocalAnswers
from stockflow._faust.applied_here import AppliedHere
from stockflow._faust.commands_here import CommandsHere, Published
from stockflow._faust.consumer import BatchConsumer
from stockflow._faust.membership import MembershipLease
from stockflow.processing.records import Step

COMMANDS = TP("product-commands", 0)
OTHER = TP("someone-elses", 0)


@dataclass
class FakeProcessor:
    topics: frozenset[str] = frozenset({COMMANDS.topic})
    processed: list[tuple[TP, list[int]]] = field(default_factory=list)
    replies: str | None = None
    answers: LocalAnswers = field(default_factory=LocalAnswers)
    commands: str | None = None
    here: CommandsHere = field(default_factory=CommandsHere)
    local: Any = None

    async def process(
        self,
        batches: list[tuple[TP, list[FakeRecord]]],
        *,
        proceed: Any = None,
        local: Any = None,
        here: Any = None,
    ) -> None:
        self.local = local
        self.processed.extend((tp, [r.offset for r in batch]) for tp, batch in batches)


class NoStandbys:
    def take(self, records: dict[TP, Any]) -> tuple[dict[TP, int], dict[TP, int]]:
        return {}, {}


def make_consumer(fetches: list[dict[TP, list[FakeRecord]]], read_offset: dict[TP, int]) -> Any:
    consumer: Any = BatchConsumer.__new__(BatchConsumer)  # no Faust service machinery needed
    processor = FakeProcessor()
    consumer.transport = SimpleNamespace(batch_processor=processor)
    consumer.app = SimpleNamespace(
        consumer_generation_id=1, monitor=SimpleNamespace(track_tp_end_offset=lambda tp, hw: None)
    )
    consumer._thread = FakeThread()
    consumer._read_offset = dict(read_offset)
    consumer._buffered_partitions = set()
    consumer._standbys = NoStandbys()
    consumer._gap_fetched_from = {}
    consumer._processed = {}
    consumer._acked = {}
    consumer._in_flight = None
    consumer._here = AppliedHere(consumer)
    consumer.membership = MembershipLease(3.0)  # no coordinator watched: always held
    consumer._holding = False
    consumer._revocations = 0
    consumer._stopped = asyncio.Event()
    consumer._crashed = asyncio.Event()
    consumer.flow_active = True
    consumer.highwater = lambda tp: 1000
    consumer.seeks = 0

    async def perform_seek() -> None:
        consumer.seeks += 1

    consumer.perform_seek = perform_seek
    pending = list(fetches)

    async def wait_next_records(timeout: float) -> Any:
        records = pending.pop(0)
        return records, set(records)

    consumer._wait_next_records = wait_next_records
    return consumer


def drain(consumer: Any, times: int) -> list[tuple[TP, Any]]:
    async def run() -> list[tuple[TP, Any]]:
        yielded: list[tuple[TP, Any]] = []
        for _ in range(times):
            yielded.extend([item async for item in consumer.getmany(1.0)])
        return yielded

    return asyncio.run(run())


def batch(*offsets: int) -> list[FakeRecord]:
    return [FakeRecord(offset) for offset in offsets]


def test_a_fetch_from_the_next_offset_is_processed_and_moves_it() -> None:
    consumer = make_consumer([{COMMANDS: batch(5, 6)}], {COMMANDS: 5})

    drain(consumer, 1)

    assert consumer.processor.processed == [(COMMANDS, [5, 6])]
    assert consumer._read_offset[COMMANDS] == 7 and consumer._processed[COMMANDS] == 7
    assert consumer._thread.calls == []


def test_records_delivered_already_are_dropped_and_the_rest_processed() -> None:
    consumer = make_consumer([{COMMANDS: batch(3, 4, 5, 6)}], {COMMANDS: 5})

    drain(consumer, 1)

    assert consumer.processor.processed == [(COMMANDS, [5, 6])]


def test_the_next_fetch_request_leaves_before_the_batch_is_applied() -> None:
    # aiokafka's fetcher as it reacts to records being taken (Fetcher._fetch_requests_routine):
    # taking them resolves the future its routine waits on in asyncio.wait; the routine then
    # starts a task, which writes the next fetch request to the broker.
    consumer = make_consumer([{COMMANDS: batch(5, 6)}], {COMMANDS: 5})
    events: list[str] = []
    taken = consumer._wait_next_records

    async def run() -> None:
        consumed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        requests: list[asyncio.Future[None]] = []

        async def send_fetch_request() -> None:
            events.append("fetch request sent")

        async def routine() -> None:
            await asyncio.wait({consumed}, return_when=asyncio.FIRST_COMPLETED)
            requests.append(asyncio.ensure_future(send_fetch_request()))

        async def wait_next_records(timeout: float) -> Any:
            consumed.set_result(None)
            return await taken(timeout)

        async def process(batches: list[tuple[TP, list[FakeRecord]]], **_: Any) -> None:
            events.append("batch applied")

        consumer._wait_next_records = wait_next_records
        consumer.processor.process = process
        fetcher = asyncio.ensure_future(routine())
        await asyncio.sleep(0)  # the routine waits for records to be taken
        assert [item async for item in consumer.getmany(1.0)] == []
        await fetcher
        await asyncio.gather(*requests)

    asyncio.run(run())

    # Before: the batch held the loop while the request waited (a round trip more per hop).
    assert events == ["fetch request sent", "batch applied"]


def test_a_fetch_past_the_next_offset_is_fetched_again_from_it() -> None:
    # The records at 83 were fetched past (the chaos suite lost an order this way once).
    consumer = make_consumer(
        [{COMMANDS: batch(84, 85)}, {COMMANDS: batch(83, 84, 85)}], {COMMANDS: 83}
    )

    drain(consumer, 1)

    assert consumer.processor.processed == []
    assert consumer._thread.calls == [{COMMANDS: 83}]
    assert consumer._read_offset[COMMANDS] == 83
    assert consumer._processed == {}  # nothing past 83 may be committed

    drain(consumer, 1)

    assert consumer.processor.processed == [(COMMANDS, [83, 84, 85])]
    assert consumer._gap_fetched_from == {}


def test_a_gap_the_log_really_has_is_accepted_after_one_fetch_again() -> None:
    # Records 83..89 deleted by retention: the fetch from 83 starts at 90 again.
    consumer = make_consumer([{COMMANDS: batch(90)}, {COMMANDS: batch(90, 91)}], {COMMANDS: 83})

    drain(consumer, 2)

    assert consumer._thread.calls == [{COMMANDS: 83}]
    assert consumer.processor.processed == [(COMMANDS, [90, 91])]
    assert consumer._read_offset[COMMANDS] == 92 and consumer._gap_fetched_from == {}


def test_a_hole_inside_a_fetch_is_processed_up_to_and_fetched_again_from() -> None:
    # tansu returned 86 before 84..85, written by another worker's producer at the same time
    # (stockflow.holes): the records before the hole are processed, the rest fetched again.
    consumer = make_consumer(
        [{COMMANDS: batch(82, 83, 86, 87)}, {COMMANDS: batch(84, 85, 86, 87)}], {COMMANDS: 82}
    )

    drain(consumer, 1)

    assert consumer.processor.processed == [(COMMANDS, [82, 83])]
    assert consumer._thread.calls == [{COMMANDS: 84}]
    assert consumer._read_offset[COMMANDS] == 84
    assert consumer._processed == {COMMANDS: 84}  # a commit covers no offset past the hole

    drain(consumer, 1)

    assert consumer.processor.processed == [(COMMANDS, [82, 83]), (COMMANDS, [84, 85, 86, 87])]
    assert consumer._processed == {COMMANDS: 88} and consumer._gap_fetched_from == {}


def test_a_hole_inside_the_first_fetch_of_an_assignment_is_fetched_again_too() -> None:
    consumer = make_consumer([{COMMANDS: batch(5, 7)}, {COMMANDS: batch(6, 7)}], {})

    drain(consumer, 2)

    assert consumer._thread.calls == [{COMMANDS: 6}]
    assert consumer.processor.processed == [(COMMANDS, [5]), (COMMANDS, [6, 7])]


def test_a_hole_the_log_really_has_inside_a_fetch_is_passed_after_one_fetch_again() -> None:
    # A transaction marker at 12 (Apache Kafka): the fetch from 12 shows the same hole.
    consumer = make_consumer(
        [{COMMANDS: batch(10, 11, 13)}, {COMMANDS: batch(13, 14)}], {COMMANDS: 10}
    )

    drain(consumer, 2)

    assert consumer._thread.calls == [{COMMANDS: 12}]
    assert consumer.processor.processed == [(COMMANDS, [10, 11]), (COMMANDS, [13, 14])]
    assert consumer._read_offset[COMMANDS] == 15 and consumer._gap_fetched_from == {}


def test_other_apps_records_go_to_faust_unchecked() -> None:
    consumer = make_consumer([{OTHER: batch(40)}], {OTHER: 7})
    consumer._to_message = lambda tp, record: ("message", record.offset)
    consumer.scheduler = SimpleNamespace(
        iterate=lambda records: [(tp, r) for tp, rs in records.items() for r in rs]
    )

    yielded = drain(consumer, 1)

    assert yielded == [(OTHER, ("message", 40))]
    assert consumer._thread.calls == []


def test_records_fetched_while_the_flow_was_stopped_are_fetched_again() -> None:
    consumer = make_consumer([{COMMANDS: batch(10, 11), OTHER: batch(3)}], {COMMANDS: 10})
    consumer.flow_active = False

    drain(consumer, 1)

    assert consumer.processor.processed == []
    assert consumer._thread.calls == [{COMMANDS: 10, OTHER: 3}]
    assert consumer.seeks == 1


@pytest.mark.parametrize("read_offset", [{}, {COMMANDS: 0}])
def test_without_a_next_offset_any_fetch_is_processed(read_offset: dict[TP, int]) -> None:
    consumer = make_consumer([{COMMANDS: batch(0, 1)}], read_offset)

    drain(consumer, 1)

    assert consumer.processor.processed == [(COMMANDS, [0, 1])]


class FakeChangelog:
    def __init__(self, events: list[str], settles: bool = True) -> None:
        self.events = events
        self.settles = settles

    async def settled(self, timeout: float) -> bool:
        self.events.append("settled")
        return self.settles


def waiting_consumer(
    monkeypatch: pytest.MonkeyPatch, events: list[str], *, stream: bool, settles: bool = True
) -> Any:
    async def faust_wait_empty(self: Any) -> None:
        events.append("streams done")

    monkeypatch.setattr(FaustConsumer, "wait_empty", faust_wait_empty)
    consumer = make_consumer([], {})
    changelog = FakeChangelog(events, settles)
    consumer.transport = SimpleNamespace(
        batch_processor=None if stream else SimpleNamespace(changelog=changelog),
        changelog=changelog,
    )

    async def crash(exc: BaseException) -> None:
        events.append(f"crash: {exc}")

    consumer.app.conf = SimpleNamespace(broker_session_timeout=5.0)
    consumer.app.crash = crash
    return consumer


@pytest.mark.parametrize(
    ("stream", "order"),
    [(False, ["settled", "streams done"]), (True, ["streams done", "settled"])],
)
def test_a_revocation_waits_for_the_changelog_on_either_path(
    monkeypatch: pytest.MonkeyPatch, stream: bool, order: list[str]
) -> None:
    # Batch path: its batch is done, then the changelog. Stream path: the streams finish their
    # events first (their writes go to the same changelog), then the changelog.
    events: list[str] = []
    consumer = waiting_consumer(monkeypatch, events, stream=stream)

    asyncio.run(consumer.wait_empty())

    assert events == order


def test_a_changelog_not_acknowledged_in_time_stops_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[str] = []
    consumer = waiting_consumer(monkeypatch, events, stream=True, settles=False)

    asyncio.run(consumer.wait_empty())

    assert events[:2] == ["streams done", "settled"]
    assert events[2].startswith("crash: changelog writes not acknowledged")


def test_records_are_held_while_the_membership_is_not_confirmed() -> None:
    """A worker that woke up from a freeze past its session timeout may have lost its
    partitions: what it fetched is fetched again, and processed once a heartbeat confirms it."""
    consumer = make_consumer([{COMMANDS: batch(5, 6)}, {COMMANDS: batch(5, 6)}], {COMMANDS: 5})
    coordinator = SimpleNamespace(generation=4)
    lease = consumer.membership
    lease._coordinator = coordinator
    lease.confirm(time.monotonic() - 3.5, 4)  # the last heartbeat answered 3.5 s ago

    drain(consumer, 1)

    assert consumer.processor.processed == []
    assert consumer._thread.calls == [{COMMANDS: 5}]
    assert consumer._read_offset[COMMANDS] == 5 and COMMANDS not in consumer._processed

    lease.confirm(time.monotonic(), 4)  # a heartbeat answered

    drain(consumer, 1)

    assert consumer.processor.processed == [(COMMANDS, [5, 6])]
    assert consumer._processed[COMMANDS] == 7


def test_a_batch_that_ends_during_a_revocation_leaves_no_offset_to_commit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker dropped from the group (cut off past its session timeout) keeps its generation
    until it joins again. Its revocation forgets the partitions' offsets, then waits for the
    batch in flight, whose sends fail: the offsets it recorded on finishing were committed by
    the worker's first commit in the next generation, past records never sent (a soak at
    2,000/s on 16 partitions: a Reserve and three Confirms lost)."""
    consumer = make_consumer([{COMMANDS: batch(5, 6)}], {COMMANDS: 5})
    consumer._acked = {COMMANDS: []}
    release = asyncio.Event()
    processed = consumer.processor.process

    async def slow_process(batches: Any, **_: Any) -> None:
        await release.wait()
        await processed(batches)

    consumer.processor.process = slow_process

    async def faust_revoked(self: Any, revoked: set[TP]) -> None:
        for tp in revoked:  # what Faust's Consumer.on_partitions_revoked forgets
            self._acked.pop(tp, None)
            self._read_offset.pop(tp, None)
        release.set()  # then _on_partitions_revoked waits for the batch (wait_empty)
        await asyncio.wait_for(self._in_flight, 1.0)

    monkeypatch.setattr(FaustConsumer, "on_partitions_revoked", faust_revoked)

    async def run() -> None:
        fetching = asyncio.ensure_future(drain_once(consumer))
        while consumer._in_flight is None:
            await asyncio.sleep(0)
        consumer.processor.answers.note(0, b"an answer applied here", Step())
        await consumer.on_partitions_revoked({COMMANDS})
        await fetching

    asyncio.run(run())

    assert consumer.processor.processed == [(COMMANDS, [5, 6])]
    assert consumer.app.consumer_generation_id == 1  # unchanged: the check that missed it
    assert len(consumer.processor.answers) == 0  # forgotten at the revocation
    assert COMMANDS not in consumer._processed
    assert COMMANDS not in consumer._read_offset and COMMANDS not in consumer._acked


async def drain_once(consumer: Any) -> None:
    async for _item in consumer.getmany(1.0):
        pass


def test_offsets_taken_before_a_revocation_are_not_committed_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A commit takes its offsets, then waits for the producer's flush; a dropped worker's
    flush ends when its sends fail, which can be after it joined the group again, when the
    coordinator accepts the commit. stockflow's offsets taken before the revocation are left
    out; another app's are committed."""
    consumer = make_consumer([], {})
    sent: list[dict[TP, int]] = []

    def faust_filter(self: Any, tps: Any) -> dict[TP, int]:
        return {COMMANDS: 7, OTHER: 3}

    async def faust_commit(self: Any, offsets: Any) -> bool:
        sent.append(dict(offsets))
        return True

    async def faust_revoked(self: Any, revoked: set[TP]) -> None:
        pass

    monkeypatch.setattr(FaustConsumer, "_filter_committable_offsets", faust_filter)
    monkeypatch.setattr(FaustConsumer, "on_partitions_revoked", faust_revoked)
    monkeypatch.setattr(AIOKafkaConsumer, "_commit", faust_commit)

    async def run() -> list[bool]:
        offsets = consumer._filter_committable_offsets([COMMANDS, OTHER])
        first = await consumer._commit(offsets)  # no revocation in between
        offsets = consumer._filter_committable_offsets([COMMANDS, OTHER])
        await consumer.on_partitions_revoked({COMMANDS})
        second = await consumer._commit(offsets)
        return [first, second]

    assert asyncio.run(run()) == [True, True]
    assert sent == [{COMMANDS: 7, OTHER: 3}, {OTHER: 3}]


def test_a_revocation_stops_a_fetch_applied_in_slices_and_leaves_no_offset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A long fetch is applied in slices (BatchProcessor.process asks ``proceed`` between
    them): a revocation that begins mid-fetch stops it at the next slice instead of waiting
    for all of it, and none of its offsets is recorded: its records are fetched again."""
    consumer = make_consumer([{COMMANDS: batch(5, 6, 7, 8)}], {COMMANDS: 5})
    consumer._acked = {COMMANDS: []}
    applied: list[int] = []
    second_slice = asyncio.Event()
    revoking = asyncio.Event()

    async def sliced(batches: Any, *, proceed: Any = None, local: Any = None, **_: Any) -> None:
        for _tp, records in batches:
            for record in records:  # one record per slice
                applied.append(record.offset)
                if record.offset == 6:
                    second_slice.set()
                    await asyncio.wait_for(revoking.wait(), 1.0)
                await asyncio.sleep(0)
                if proceed is not None and not proceed():
                    return

    consumer.processor.process = sliced

    async def faust_revoked(self: Any, revoked_tps: set[TP]) -> None:
        for tp in revoked_tps:
            self._acked.pop(tp, None)
            self._read_offset.pop(tp, None)
        revoking.set()
        await asyncio.wait_for(self._in_flight, 1.0)

    monkeypatch.setattr(FaustConsumer, "on_partitions_revoked", faust_revoked)

    async def run() -> None:
        fetching = asyncio.ensure_future(drain_once(consumer))
        await asyncio.wait_for(second_slice.wait(), 1.0)
        await consumer.on_partitions_revoked({COMMANDS})
        await fetching

    asyncio.run(run())

    assert applied == [5, 6]
    assert COMMANDS not in consumer._processed and COMMANDS not in consumer._read_offset


def test_a_fetch_waits_for_the_batch_still_in_flight() -> None:
    """A fetcher cancelled mid-batch leaves its batch running (shielded); the next fetch's
    batch must not run beside it, or a partition's records could be applied out of order."""
    consumer = make_consumer([{COMMANDS: batch(5)}, {COMMANDS: batch(6)}], {COMMANDS: 5})
    events: list[str] = []
    release = asyncio.Event()

    async def process(batches: Any, **_: Any) -> None:
        offsets = [record.offset for _tp, records in batches for record in records]
        events.append(f"begin {offsets}")
        if offsets == [5]:
            await release.wait()
        events.append(f"end {offsets}")

    consumer.processor.process = process

    async def run() -> None:
        first = asyncio.ensure_future(drain_once(consumer))
        while consumer._in_flight is None:
            await asyncio.sleep(0)
        first.cancel()  # the fetcher stopped mid-batch: the batch goes on
        await asyncio.gather(first, return_exceptions=True)
        second = asyncio.ensure_future(drain_once(consumer))
        for _ in range(10):
            await asyncio.sleep(0)
        assert events == ["begin [5]"]
        release.set()
        await asyncio.wait_for(second, 1.0)

    asyncio.run(run())

    assert events == ["begin [5]", "end [5]", "begin [6]", "end [6]"]


# --- product commands applied where they were published (stockflow._faust.commands_here) ---


def acknowledge(consumer: Any, *, round_: tuple[int, int] = (1, 0)) -> Any:
    """The processor published one command record to COMMANDS in ``round_``; returns its
    delivery, which :func:`acked` resolves."""
    processor = consumer.processor
    processor.commands = COMMANDS.topic
    consumer._active_partitions = {COMMANDS}
    published = consumer._here.published(processor, round_)
    delivery = asyncio.get_running_loop().create_future()
    published([Published(COMMANDS.topic, 0, None, b"cmd", 1_700_000_000_000, delivery, 1)])
    return delivery


async def acked(consumer: Any, delivery: Any, offset: int) -> None:
    delivery.set_result(SimpleNamespace(offset=offset, timestamp_type=0))
    for _ in range(3):  # the callback, then the chained batch
        await asyncio.sleep(0)
    if consumer._in_flight is not None:
        await consumer._in_flight


def test_a_command_acknowledged_as_its_partitions_next_record_is_applied_at_once() -> None:
    consumer = make_consumer([{COMMANDS: batch(10, 11, 12)}], {COMMANDS: 10})

    async def run() -> None:
        await acked(consumer, acknowledge(consumer), 10)
        # Applied without a fetch, and counted for the next commit as a fetch's record is.
        assert consumer.processor.processed == [(COMMANDS, [10])]
        assert consumer._processed == {COMMANDS: 11} and consumer._read_offset[COMMANDS] == 11
        await drain_once(consumer)

    asyncio.run(run())

    # Its fetched copy was delivered already: dropped.
    assert consumer.processor.processed == [(COMMANDS, [10]), (COMMANDS, [11, 12])]
    assert consumer.processor.here.applied == 1
    assert consumer._processed == {COMMANDS: 13}


def test_a_command_not_next_in_its_partition_or_of_an_earlier_round_waits_for_the_fetch() -> None:
    consumer = make_consumer([{COMMANDS: batch(10, 11, 12)}], {COMMANDS: 10})

    async def run() -> None:
        await acked(consumer, acknowledge(consumer), 11)  # 10 is not processed yet
        assert consumer.processor.processed == []
        consumer._revocations = 1  # a revocation began after 10 was published
        await acked(consumer, acknowledge(consumer), 10)
        assert consumer.processor.processed == []
        await drain_once(consumer)

    asyncio.run(run())

    assert consumer.processor.processed == [(COMMANDS, [10, 11, 12])]
    assert consumer.processor.here.dropped == 2


def test_a_command_applied_while_a_fetched_batch_waits_is_dropped_from_that_batch() -> None:
    # The fetch was taken (10..12) while the batch before it was still in flight, and the
    # command at 10 was acknowledged then: it is applied first, and the fetch's batch skips it.
    consumer = make_consumer([{COMMANDS: batch(10, 11, 12)}], {COMMANDS: 10})
    release = asyncio.Event()

    async def run() -> None:
        async def before() -> None:
            await release.wait()

        consumer._chained(before)  # the batch in flight
        delivery = acknowledge(consumer)
        fetch = asyncio.ensure_future(drain_once(consumer))
        for _ in range(5):
            await asyncio.sleep(0)
        delivery.set_result(SimpleNamespace(offset=10, timestamp_type=0))
        for _ in range(5):
            await asyncio.sleep(0)
        release.set()
        await asyncio.wait_for(fetch, 1.0)

    asyncio.run(run())

    assert consumer.processor.processed == [(COMMANDS, [10]), (COMMANDS, [11, 12])]
    assert consumer._processed == {COMMANDS: 13}
