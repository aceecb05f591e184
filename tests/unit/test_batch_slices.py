"""stockflow._faust.batches.BatchProcessor applies a long fetch in slices and gives the event
loop back between them.

A fetch is whatever aiokafka has buffered: after a rebalance or an outage, tens of thousands of
records. Applied in one go it held the loop, and with it the consumer's heartbeats, for seconds
(a soak's workers were dropped from the group again and again). So:

- a slice ends once it has run for ``slice_seconds`` (default ``SLICE_SECONDS``); everything
  it caused (changelog, outputs, the deletion of the timers it fired) is handed over before the
  loop is given back;
- records are applied in order per partition across slices, each exactly once;
- other tasks run between slices;
- ``proceed()`` is asked between slices: a rebalance stops the rest of the fetch;
- a short fetch is one slice, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import pytest
from faust.types import TP

from stockflow._faust import batches
from stockflow._faust.batches import BatchProcessor, Record, Route
from stockflow.processing.records import Meta, Out, Step

COMMANDS = "product-commands"


@dataclass
class Store:
    partition: int | None = None
    deleted: list[tuple[int | None, str]] = field(default_factory=list)

    def delete(self, key: str) -> None:
        self.deleted.append((self.partition, key))


@dataclass
class World:
    """The processor's surroundings, recording what happens in the order it happens."""

    events: list[str] = field(default_factory=list)
    store: Store = field(default_factory=Store)

    def handle(self, raw: bytes | None, meta: Meta) -> Step:
        assert self.store.partition == meta.partition  # writes go to the record's partition
        self.events.append(f"apply {meta.partition}:{meta.offset}")
        out = Out("reservations", raw, raw or b"")
        timers = [f"timer-{meta.offset}"] if raw == b"fires" else []
        return Step([out], timers)

    async def send(self, *, after_state: bool = False) -> None:
        self.events.append("changelog")

    async def settled(self, timeout: float) -> bool:
        return True

    async def publish(self, outputs: Iterable[Out]) -> list[tuple[int, bytes | None, bytes]]:
        self.events.append(f"publish {len(list(outputs))}")
        return []

    async def flush(self) -> None:
        self.events.append("flush")

    def processor(self, slice_seconds: float = batches.SLICE_SECONDS) -> BatchProcessor:
        route = Route("commands", self.handle, self.store)
        return BatchProcessor(
            None, {COMMANDS: route}, changelog=self, outputs=self, slice_seconds=slice_seconds
        )


def fetch(*partitions: Sequence[int], value: bytes = b"x") -> list[tuple[TP, list[Record]]]:
    return [
        (TP(COMMANDS, partition), [Record(COMMANDS, o, 0, b"k", value) for o in offsets])
        for partition, offsets in enumerate(partitions)
    ]


def applied(events: list[str]) -> list[str]:
    return [event.removeprefix("apply ") for event in events if event.startswith("apply")]


def test_a_short_fetch_is_one_slice() -> None:
    world = World()

    asyncio.run(world.processor().process(fetch([0, 1, 2], [7, 8])))

    assert world.events == [
        "apply 0:0",
        "apply 0:1",
        "apply 0:2",
        "apply 1:7",
        "apply 1:8",
        "changelog",
        "publish 5",
    ]


def test_each_slice_is_handed_over_before_the_loop_is_given_back() -> None:
    world = World()

    async def run() -> None:
        async def other_task() -> None:
            while True:
                world.events.append("other task")
                await asyncio.sleep(0)

        other = asyncio.ensure_future(other_task())
        await asyncio.sleep(0)
        world.events.clear()
        await world.processor(0.0).process(fetch([0, 1], [7, 8]))
        other.cancel()

    asyncio.run(run())

    assert applied(world.events) == ["0:0", "0:1", "1:7", "1:8"]  # in order, each once
    slices = "\n".join(world.events).split("other task")
    slices = [part.strip("\n") for part in slices if part.strip("\n")]
    assert slices == [f"apply {r}\nchangelog\npublish 1" for r in ["0:0", "0:1", "1:7", "1:8"]]
    assert world.store.partition is None  # no partition left set while others run


def test_a_slice_ends_after_its_time_not_at_a_partition_boundary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = iter(range(1000))
    monkeypatch.setattr(batches, "perf_counter", lambda: float(next(clock)))
    world = World()

    # The deadline 2.5 s after the slice's first clock read: after its third record.
    asyncio.run(world.processor(2.5).process(fetch([0, 1, 2, 3], [7, 8, 9])))

    cuts = [i for i, event in enumerate(world.events) if event == "changelog"]
    runs = [applied(world.events[start:end]) for start, end in pairwise([0, *cuts])]
    # Each slice reads the clock once to set its deadline, then once per record.
    assert runs == [["0:0", "0:1", "0:2"], ["0:3", "1:7", "1:8"], ["1:9"]]


def test_timers_fired_in_a_slice_are_deleted_after_its_outputs_are_flushed() -> None:
    world = World()

    asyncio.run(world.processor(0.0).process(fetch([4, 5], value=b"fires")))

    assert world.events == [
        "apply 0:4",
        "changelog",
        "publish 1",
        "flush",
        "changelog",
        "apply 0:5",
        "changelog",
        "publish 1",
        "flush",
        "changelog",
    ]
    assert world.store.deleted == [(0, "timer-4"), (0, "timer-5")]


def test_a_rebalance_between_slices_stops_the_rest_of_the_fetch() -> None:
    world = World()
    asked: list[list[str]] = []

    def proceed() -> bool:
        asked.append(applied(world.events))
        return len(asked) < 2

    asyncio.run(world.processor(0.0).process(fetch([0, 1, 2, 3]), proceed=proceed))

    assert asked == [["0:0"], ["0:0", "0:1"]]
    assert applied(world.events) == ["0:0", "0:1"]
    assert world.events[-2:] == ["changelog", "publish 1"]  # what was applied was handed over


def test_a_failing_processor_stops_the_worker_mid_fetch() -> None:
    world = World()
    crashed: list[BaseException] = []

    class App:
        async def crash(self, exc: BaseException) -> None:
            crashed.append(exc)

    def handle(raw: bytes | None, meta: Meta) -> Step:
        if meta.offset == 2:
            raise ValueError("a bug")
        return world.handle(raw, meta)

    processor = BatchProcessor(
        App(),
        {COMMANDS: Route("c", handle, world.store)},
        changelog=world,
        outputs=world,
        slice_seconds=0.0,
    )
    with pytest.raises(ValueError):
        asyncio.run(processor.process(fetch([0, 1, 2, 3])))

    assert applied(world.events) == ["0:0", "0:1"]
    assert [str(exc) for exc in crashed] == ["a bug"]
    assert world.store.partition is None
