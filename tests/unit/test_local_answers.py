"""BatchProcessor applies the line answers it publishes when their reply partition is active
in this worker (stockflow._faust.answers): the desk's step runs right after the publish, its
changelog writes are sent after the state before them, and the answer record, when it comes
back from the broker, is skipped and reported to the probe with the step it made."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

from stockflow._faust.answers import MAX_REMEMBERED, LocalAnswers
from stockflow._faust.batches import BatchProcessor, Record, Route
from stockflow.processing.records import Meta, Out, Step

COMMANDS = "product-commands"
REPLIES = "order-replies"


@dataclass
class Store:
    name: str
    partition: int | None = None


@dataclass
class World:
    """A product writer that answers each command on reply partition ``int(raw)``, a desk that
    turns each answer into an outcome, a changelog and a publisher, recording in order."""

    events: list[str] = field(default_factory=list)
    products: Store = field(default_factory=lambda: Store("products"))
    orders: Store = field(default_factory=lambda: Store("orders"))
    probed: list[tuple[str, int, int, list[bytes]]] = field(default_factory=list)

    def decide(self, raw: bytes | None, meta: Meta) -> Step:
        assert self.products.partition == meta.partition
        self.events.append(f"decide {meta.offset}")
        assert raw is not None
        return Step([Out("order_replies", b"o-1", b"answer " + raw, int(raw))])

    def answer(self, raw: bytes | None, meta: Meta) -> Step:
        assert self.orders.partition == meta.partition  # the desk writes its own partition
        self.events.append(f"answer {meta.partition}:{raw!r}")
        return Step([Out("reservations", b"o-1", b"outcome of " + (raw or b""))])

    def probe(self, tp: Any, record: Any, step: Step, started: float) -> None:
        self.probed.append((tp.topic, tp.partition, record.offset, [o.value for o in step.outputs]))

    async def send(self, *, after_state: bool = False) -> None:
        self.events.append("changelog after state" if after_state else "changelog")

    async def settled(self, timeout: float) -> bool:
        return True

    async def publish(self, outputs: Iterable[Out]) -> list[tuple[int, bytes | None, bytes]]:
        sent = list(outputs)
        self.events.append("publish " + ", ".join(o.value.decode() for o in sent))
        return [(o.partition or 0, o.key, o.value) for o in sent if o.role == "order_replies"]

    async def flush(self) -> None:
        self.events.append("flush")

    def processor(self, replies: str | None = REPLIES) -> BatchProcessor:
        routes = {
            COMMANDS: Route("products", self.decide, self.products),
            REPLIES: Route("orders", self.answer, self.orders, self.probe),
        }
        return BatchProcessor(None, routes, changelog=self, outputs=self, replies=replies)


def commands(*values: bytes) -> list[tuple[TP, list[Record]]]:
    return [(TP(COMMANDS, 0), [Record(COMMANDS, n, 0, b"k", v) for n, v in enumerate(values)])]


def test_an_answer_for_an_active_partition_is_applied_after_its_publish() -> None:
    world = World()
    processor = world.processor()
    asyncio.run(processor.process(commands(b"3"), proceed=lambda: True, local=lambda p: True))

    assert world.events == [
        "decide 0",
        "changelog",
        "publish answer 3",
        "answer 3:b'answer 3'",
        "changelog after state",  # the desk's writes wait for the ledger's
        "publish outcome of answer 3",
    ]
    assert len(processor.answers) == 1 and processor.answers.applied == 1


def test_the_answer_record_is_skipped_when_it_comes_back_and_probed_with_its_step() -> None:
    world = World()
    processor = world.processor()
    asyncio.run(processor.process(commands(b"3"), proceed=lambda: True, local=lambda p: True))
    world.events.clear()
    back = [(TP(REPLIES, 3), [Record(REPLIES, 41, 0, b"o-1", b"answer 3")])]
    other = [(TP(REPLIES, 3), [Record(REPLIES, 42, 0, b"o-1", b"answer 3")])]

    asyncio.run(processor.process(back, proceed=lambda: True, local=lambda p: True))
    assert world.events == ["changelog", "publish "]  # nothing applied again
    assert world.probed == [(REPLIES, 3, 41, [b"outcome of answer 3"])]
    assert len(processor.answers) == 0 and processor.answers.skipped == 1

    # The same bytes once more (a redelivered answer): applied, as every duplicate is.
    asyncio.run(processor.process(other, proceed=lambda: True, local=lambda p: True))
    assert "answer 3:b'answer 3'" in world.events


def test_answers_for_partitions_elsewhere_or_after_a_rebalance_go_through_the_broker() -> None:
    for local, proceed in ((lambda p: p != 3, lambda: True), (lambda p: True, lambda: False)):
        world = World()
        processor = world.processor()
        asyncio.run(processor.process(commands(b"3"), proceed=proceed, local=local))
        assert world.events == ["decide 0", "changelog", "publish answer 3"]
        assert len(processor.answers) == 0


def test_without_a_reply_topic_or_locality_nothing_is_applied_here() -> None:
    world = World()
    asyncio.run(world.processor(replies=None).process(commands(b"3"), local=lambda p: True))
    asyncio.run(world.processor().process(commands(b"3")))  # the stream path: no locality
    assert [e for e in world.events if e.startswith("answer")] == []


def test_several_answers_keep_their_publish_order_and_partitions() -> None:
    world = World()
    processor = world.processor()
    asyncio.run(
        processor.process(commands(b"1", b"2", b"1"), proceed=lambda: True, local=lambda p: True)
    )
    answers = [e for e in world.events if e.startswith("answer")]
    assert answers == ["answer 1:b'answer 1'", "answer 2:b'answer 2'", "answer 1:b'answer 1'"]
    assert world.events.count("changelog after state") == 1  # once for all of them


def test_remembered_answers_are_bounded_and_forgotten_on_clear() -> None:
    answers = LocalAnswers()
    for n in range(MAX_REMEMBERED + 1):
        answers.note(0, str(n).encode(), Step())
    assert len(answers) == 1  # past the bound all were forgotten, then the last one noted
    assert answers.take(0, str(MAX_REMEMBERED).encode()) is not None
    assert answers.take(0, b"0") is None
    answers.note(1, b"x", Step())
    answers.clear()
    assert answers.take(1, b"x") is None and answers.take(1, None) is None
