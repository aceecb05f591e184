"""stockflow._faust.transport without a broker: the parts of Faust's consumer and producer it
changes, driven through fakes so that the moment of a pause, a seek or a send can be placed exactly.

- Records aiokafka returned for a paused partition are fetched again, never skipped.
- ``fetch_again`` moves a fetch position back only when it lies past the first skipped record.
- The producer flush behind every commit waits for what was buffered before it, including a
  record whose send is in flight, and not for what is buffered after it.
- A changelog's end comes from a Fetch response; without one in time the recovery fails
  instead of restoring to ListOffsets' (on tansu, early) end.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError
from consumer_fakes import FakeRecord, FakeThread
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP

from stockflow._faust import transport
from stockflow._faust.transport import TunedConsumer, TunedConsumerThread, complete_producer_flush
from stockflow.errors import BrokerError

ORDERS = TP("orders", 0)
REPLIES = TP("replies", 0)
CHANGELOG = TP("changelog", 0)


def consumer_returning(
    monkeypatch: pytest.MonkeyPatch, records: dict[TP, list[FakeRecord]], active: set[TP]
) -> Any:
    async def wait_next_records(self: Any, timeout: float) -> Any:
        return records, active

    monkeypatch.setattr(FaustConsumer, "_wait_next_records", wait_next_records)
    consumer: Any = TunedConsumer.__new__(TunedConsumer)  # no Faust service machinery needed
    consumer._thread = FakeThread()
    consumer._buffered_partitions = set()
    consumer._read_offset = {}
    return consumer


def test_records_of_a_paused_partition_are_fetched_again(monkeypatch: pytest.MonkeyPatch) -> None:
    records = {
        ORDERS: [FakeRecord(10), FakeRecord(11)],
        REPLIES: [FakeRecord(3)],
        CHANGELOG: [FakeRecord(40), FakeRecord(41)],
    }
    consumer = consumer_returning(monkeypatch, records, active={REPLIES})

    kept, deliver = asyncio.run(consumer._wait_next_records(1.0))

    assert kept == {REPLIES: records[REPLIES]}
    assert consumer._thread.calls == [{ORDERS: 10, CHANGELOG: 40}]
    # The next record Faust delivers for them is the first one set aside: no offset gap.
    assert consumer._read_offset == {ORDERS: 10, CHANGELOG: 40}
    assert deliver == {REPLIES}


def test_a_partition_paused_while_its_records_are_delivered_keeps_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    active = {ORDERS, REPLIES}
    consumer = consumer_returning(monkeypatch, {ORDERS: [FakeRecord(5)]}, active=active)

    kept, deliver = asyncio.run(consumer._wait_next_records(1.0))
    active.discard(ORDERS)  # Faust pauses it while the batch is handed out

    assert ORDERS in kept and ORDERS in deliver
    assert consumer._thread.calls == []


def test_buffered_partitions_are_delivered_although_not_active(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = consumer_returning(monkeypatch, {ORDERS: [FakeRecord(5)]}, active={REPLIES})
    consumer._buffered_partitions = {ORDERS}  # its stream's buffer was full

    kept, _ = asyncio.run(consumer._wait_next_records(1.0))

    assert kept == {ORDERS: [FakeRecord(5)]}
    assert consumer._thread.calls == []


class FakeAiokafkaConsumer:
    """aiokafka's consumer as ``fetch_again`` sees it: an assignment with fetch positions."""

    def __init__(self, positions: dict[TopicPartition, int | None]) -> None:
        states = {tp: SimpleNamespace(_position=position) for tp, position in positions.items()}
        assignment = SimpleNamespace(state_value=states.get)
        self._subscription = SimpleNamespace(subscription=SimpleNamespace(assignment=assignment))
        self.seeks: list[tuple[TopicPartition, int]] = []

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


def test_fetch_again_moves_back_only_positions_past_the_first_skipped_record() -> None:
    fake = FakeAiokafkaConsumer(
        {
            TopicPartition("orders", 0): 12,  # read past 10: must go back
            TopicPartition("replies", 0): 3,  # a seek already put it back at 3
            TopicPartition("changelog", 0): None,  # being reset: fetched from where it lands
        }
    )
    thread: Any = TunedConsumerThread.__new__(TunedConsumerThread)
    thread._ensure_consumer = lambda: fake

    moved = asyncio.run(
        thread.fetch_again({ORDERS: 10, REPLIES: 3, CHANGELOG: 40, TP("gone", 0): 1})
    )

    assert moved == {ORDERS: 10}
    assert fake.seeks == [(TopicPartition("orders", 0), 10)]


class FakeBuffer:
    """Faust's ProducerBuffer: ``put`` queues, one task sends in order; sends wait for a gate."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.should_stop = False
        self.handed_over: list[Any] = []
        self.gate = asyncio.Event()

    def put(self, fut: Any) -> None:
        self.queue.put_nowait(fut)

    async def _send_pending(self, fut: Any) -> None:
        await self.gate.wait()
        self.handed_over.append(fut)

    async def run(self) -> None:
        while True:
            fut = await self.queue.get()
            await self._send_pending(fut)  # looked up at each call, as Faust's task does


def make_app(buffer: FakeBuffer) -> Any:
    return SimpleNamespace(
        conf=SimpleNamespace(producer_threaded=False), producer=SimpleNamespace(buffer=buffer)
    )


async def _flush_scenario() -> tuple[list[Any], list[Any]]:
    buffer = FakeBuffer()
    complete_producer_flush(make_app(buffer))
    sender = asyncio.create_task(buffer.run())
    buffer.put("a")
    buffer.put("b")
    await asyncio.sleep(0)  # the sender takes "a" off the queue: in flight, not handed over
    flush = asyncio.create_task(buffer.flush())
    await asyncio.sleep(0.01)
    assert not flush.done(), "flush returned with 'a' in flight and 'b' queued"
    buffer.put("c")  # after the flush began: not waited for
    buffer.gate.set()
    await asyncio.wait_for(flush, timeout=2)
    at_flush_end = list(buffer.handed_over)
    await asyncio.sleep(0.01)
    sender.cancel()
    return at_flush_end, buffer.handed_over


def test_flush_waits_for_what_was_buffered_before_it_and_only_that() -> None:
    at_flush_end, handed_over = asyncio.run(_flush_scenario())
    assert at_flush_end[:2] == ["a", "b"]
    assert handed_over == ["a", "b", "c"]


def test_flush_of_a_threaded_producer_is_left_alone() -> None:
    buffer = FakeBuffer()
    original = getattr(buffer, "flush", None)
    app = make_app(buffer)
    app.conf.producer_threaded = True
    complete_producer_flush(app)
    assert getattr(buffer, "flush", None) is original


class _SilentConsumer:
    """A throwaway consumer whose fetches answer for some partitions only (the rest cut off)."""

    def __init__(self, answers: dict[TopicPartition, int], *, fail_starts: int = 0) -> None:
        self.answers = answers
        self.fail_starts = fail_starts
        self.seen: dict[TopicPartition, int] = {}
        self.stopped = 0

    async def start(self) -> None:
        if self.fail_starts:
            self.fail_starts -= 1
            raise KafkaConnectionError("refused")

    async def stop(self) -> None:
        self.stopped += 1

    def assign(self, tps: list[TopicPartition]) -> None:
        pass

    def seek(self, tp: TopicPartition, offset: int) -> None:
        pass

    async def getmany(self, **_: Any) -> dict[TopicPartition, list[Any]]:
        await asyncio.sleep(0.01)
        self.seen.update(self.answers)
        return {}

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.seen.get(tp)


def _ends(monkeypatch: pytest.MonkeyPatch, consumer: _SilentConsumer, timeout: float) -> Any:
    monkeypatch.setattr(transport, "groupless_consumer", lambda *a, **k: consumer)
    reported = {ORDERS: 2, CHANGELOG: 7}  # ListOffsets: on tansu the last batch's start
    return asyncio.run(
        transport.fetched_highwaters(["b:1"], [ORDERS, CHANGELOG], reported, timeout=timeout)
    )


def test_end_offsets_are_the_fetched_high_watermarks(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {TopicPartition("orders", 0): 10, TopicPartition("changelog", 0): 7}
    consumer = _SilentConsumer(answers, fail_starts=2)  # the broker refused twice, then back

    assert _ends(monkeypatch, consumer, timeout=5.0) == {ORDERS: 10, CHANGELOG: 7}


def test_an_end_offset_without_a_fetch_answer_fails_rather_than_trust_list_offsets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A restore that stops at ListOffsets' end decides on stale stock: no answer is an error
    (the recovery fails and the worker stops), never the reported offset."""
    consumer = _SilentConsumer({TopicPartition("orders", 0): 10})  # the changelog never answers

    with pytest.raises(BrokerError, match="changelog"):
        _ends(monkeypatch, consumer, timeout=0.3)
    assert consumer.stopped == 1
