"""stockflow's records processed a whole fetch at a time, outside Faust's per-record path.

Faust hands every record to a stream one by one: a ``ConsumerMessage``, a conductor dispatch,
an ``Event``, a queue item, a task switch, an acknowledgement with its set and list operations,
and a ``wait_first`` with two futures per record (measured: about half of a worker's busy time,
more than every decision it makes). :class:`BatchProcessor` takes the records of one fetch as
aiokafka returned them and runs the processors over them in a plain loop, then hands the
batch's changelog records and outputs to the producer client in one go; a fetch that takes
longer than :data:`SLICE_SECONDS` is applied and handed over in slices, with the event loop
given back between them.

The same :meth:`BatchProcessor.process` also serves the Faust agents (``STOCKFLOW_CONSUMER=
stream``, Faust's ``test_context``): the two paths cannot decide differently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Protocol

from stockflow._faust.answers import LocalAnswers
from stockflow._faust.commands_here import CommandsHere, Published
from stockflow.processing.records import Meta, Out, Step

__all__ = [
    "SLICE_SECONDS",
    "YIELD_TURNS",
    "Answers",
    "BatchProcessor",
    "Changelog",
    "Here",
    "Local",
    "Record",
    "RecordLike",
    "Route",
    "crash",
]

log = logging.getLogger(__name__)

SLICE_SECONDS = 0.25
"""Seconds of records applied before the loop is given back, at most (:meth:`BatchProcessor.
process`; :func:`stockflow.install` makes it at most half the heartbeat interval). A fetch is
whatever aiokafka has buffered: after a rebalance or an outage, tens of thousands of records.
Applied in one go it held the event loop for seconds, and the consumer's heartbeats run on that
loop: in an outage soak (6 partitions, 2,500 orders/s, broker cuts) the workers stalled up to
13.9 s on the first fetch after each rebalance, past the 6 s session timeout, and were dropped
from the group again and again (docs/reliability.md). Each slice is handed over to the producer
on its own, which costs when it splits fetches that are not a backlog: slices of 0.1 s made
the bench's multi-line throughput run 9% slower (0.126 against 0.106 CPU ms per order); 0.25 s
and 0.5 s were within 2% of no slices."""

YIELD_TURNS = 3
"""Turns of the event loop between two slices: a due heartbeat's request takes one to leave,
the fetcher's next request two (see :data:`stockflow._faust.consumer.FETCHER_TURNS`)."""


class RecordLike(Protocol):
    """What the processor reads of a record: an aiokafka ``ConsumerRecord`` or a :class:`Record`
    (``timestamp`` in milliseconds)."""

    @property
    def topic(self) -> str: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class Record:
    """A record taken from a Faust message (the stream path); timestamp in milliseconds."""

    topic: str
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


class PartitionedStore(Protocol):
    """A table store whose writes go to the partition it is told (:class:`TableStore`)."""

    partition: int | None

    def delete(self, key: str) -> None: ...


class Changelog(Protocol):
    async def send(self, *, after_state: bool = False) -> None: ...
    async def settled(self, timeout: float) -> bool: ...


Answers = list[tuple[int, bytes | None, bytes]]
"""The reply records a publish sent: ``(partition, key, value)``."""


class Outputs(Protocol):
    async def publish(
        self, outputs: Iterable[Out], *, commands: list[Published] | None = None
    ) -> Answers: ...
    async def flush(self) -> None: ...


Local = Callable[[int], bool]
"""Whether a partition of the reply topic is active in this worker right now."""

Here = Callable[[list[Published]], None]
"""Given the product command records a batch published (:mod:`stockflow._faust.
commands_here`)."""


Probe = Callable[[Any, RecordLike, Step, float], None]
"""Called after each record: ``probe(tp, record, step, started)`` (metrics, freshness, decision
logs; see :class:`stockflow.observability.StepProbe`)."""


@dataclass(frozen=True, slots=True)
class Route:
    """How the records of one topic are processed: ``handle(raw, meta) -> Step`` against
    ``store``, the table partition of the record's own partition."""

    name: str
    handle: Callable[[bytes | None, Meta], Step]
    store: PartitionedStore
    probe: Probe | None = None


class BatchProcessor:
    """Runs the processors of stockflow's topics over fetched records, batch by batch.

    A batch is applied in record order per partition. Its table changes go to the changelog
    first, then its outputs, all handed to the producer client before :meth:`process` returns:
    the offsets of a batch are committed only after that, and every commit is preceded by the
    producer's flush, so a committed record's effects are on the broker. Fired timers are
    deleted only once what they caused is acknowledged (:class:`Step.after_flush`).
    """

    def __init__(
        self,
        app: Any,
        routes: Mapping[str, Route],
        *,
        changelog: Changelog,
        outputs: Outputs,
        slice_seconds: float = SLICE_SECONDS,
        replies: str | None = None,
        commands: str | None = None,
    ) -> None:
        self.app = app
        self.slice_seconds = slice_seconds
        self.routes = dict(routes)
        self.topics = frozenset(routes)
        self.changelog = changelog
        self.outputs = outputs
        self.replies = replies if replies in self.routes else None
        """The reply topic, whose answers are applied here when their partition is
        (:mod:`stockflow._faust.answers`); ``None``: never."""
        self.answers = LocalAnswers()
        self.commands = commands if commands in self.routes else None
        """The product command topic, whose records a batch publishes are applied here once
        acknowledged when their partition is active here (:mod:`stockflow._faust.
        commands_here`, by the batch consumer); ``None``: never."""
        self.here = CommandsHere()
        """Those records, acknowledged, until the consumer applies them."""

    async def process(
        self,
        batches: Iterable[tuple[Any, Sequence[RecordLike]]],
        *,
        proceed: Callable[[], bool] | None = None,
        local: Local | None = None,
        here: Here | None = None,
    ) -> None:
        """Apply ``(tp, records)`` pairs (``tp``: a Faust ``TP``), then send what they caused.
        An exception from a processor is a bug: it stops the worker (:func:`crash`).

        A fetch that takes longer than ``slice_seconds`` to apply is applied in slices,
        each sent before the loop is given back (:data:`YIELD_TURNS`) and the next one begins,
        so that heartbeats, the fetcher and the web server keep running under a backlog.
        ``proceed()`` is asked between slices; when it says no (a rebalance began), the rest
        is left unapplied and the caller must not count the records as processed.

        ``local(partition)``: whether that reply partition is active here, asked (after
        ``proceed()``) for each answer record the batch published; those it says yes to are
        applied at once (:mod:`stockflow._faust.answers`). ``None``: none is.

        ``here(published)``: given the product command records each handover published
        (:mod:`stockflow._faust.commands_here`)."""
        try:
            pending = batches if isinstance(batches, list) else list(batches)
            at: tuple[int, int] | None = (0, 0)
            if self.replies is None:
                local = None
            elif local is not None and proceed is not None:
                local = _unless_rebalanced(proceed, local)
            while at is not None:
                outputs, fired, at = self._apply(pending, at)
                await self._send(outputs, fired, local, here)
                if at is not None:
                    for _ in range(YIELD_TURNS):
                        await asyncio.sleep(0)
                    if proceed is not None and not proceed():
                        return
        except Exception as exc:
            await crash(self.app, "stockflow", exc)
            raise

    async def _send(
        self,
        outputs: list[Out],
        fired: list[tuple[PartitionedStore, int, Sequence[str]]],
        local: Local | None = None,
        here: Here | None = None,
    ) -> None:
        await self.changelog.send()
        commands: list[Published] | None = None if here is None else []
        answers = await self._publish(outputs, commands)
        if answers and local is not None:
            decided = self._answer(answers, local, fired)
            if decided is not None:
                # The desk's writes go after the writes that decided the answers (see answers).
                await self.changelog.send(after_state=True)
                await self._publish(decided, commands)
        if commands:
            assert here is not None
            here(commands)
        if fired:
            await self.outputs.flush()
            for store, partition, keys in fired:
                store.partition = partition
                try:
                    for key in keys:
                        store.delete(key)
                finally:
                    store.partition = None
            await self.changelog.send()

    async def _publish(self, outputs: list[Out], commands: list[Published] | None) -> Answers:
        if commands is None:  # the stream path's and the tests' outputs need not take it
            return await self.outputs.publish(outputs)
        return await self.outputs.publish(outputs, commands=commands)

    def _answer(
        self,
        answers: Answers,
        local: Local,
        fired: list[tuple[PartitionedStore, int, Sequence[str]]],
    ) -> list[Out] | None:
        """Apply the answer records whose reply partition is active here; returns what they
        caused (``None``: none was applied). No await: see :meth:`_apply`."""
        topic = self.replies
        assert topic is not None  # process() passes no local without it
        route = self.routes[topic]
        handle, store = route.handle, route.store
        remember = self.answers.note
        outputs: list[Out] | None = None
        clock_ms = int(time.time() * 1000)
        for partition, key, value in answers:
            if not local(partition):
                continue
            store.partition = partition
            try:
                # No offset yet: the desk reads an answer's only for a dead letter, and its own
                # answers always parse.
                step = handle(value, Meta(topic, partition, -1, clock_ms, key, clock_ms))
            finally:
                store.partition = None
            remember(partition, value, step)
            if outputs is None:
                outputs = []
            outputs.extend(step.outputs)
            if step.after_flush:
                fired.append((store, partition, step.after_flush))
        return outputs

    def _apply(
        self, batches: Sequence[tuple[Any, Sequence[RecordLike]]], at: tuple[int, int]
    ) -> tuple[
        list[Out], list[tuple[PartitionedStore, int, Sequence[str]]], tuple[int, int] | None
    ]:
        """Apply ``batches`` from ``at`` (batch index, record index) for about
        ``slice_seconds``; returns the outputs, the fired timers and where the next slice
        begins (``None``: all applied)."""
        # No await in here: a table write is tied to its partition by ``store.partition``,
        # which no other task may see set (reads from the web server run between slices).
        outputs: list[Out] = []
        fired: list[tuple[PartitionedStore, int, Sequence[str]]] = []
        clock_ms = int(time.time() * 1000)
        deadline = perf_counter() + self.slice_seconds
        routes = self.routes
        first_batch, first_record = at
        for index in range(first_batch, len(batches)):
            tp, records = batches[index]
            topic, partition = tp
            route = routes[topic]
            handle, store, probe = route.handle, route.store, route.probe
            applied = self.answers if topic == self.replies and self.answers else None
            store.partition = partition
            try:
                for position, record in enumerate(
                    records[first_record:] if first_record else records, first_record
                ):
                    started = perf_counter()
                    done = None if applied is None else applied.take(partition, record.value)
                    if done is not None:  # applied when it was published (answers)
                        if probe is not None:
                            probe(tp, record, done, started)
                        continue
                    meta = Meta(
                        topic, partition, record.offset, record.timestamp, record.key, clock_ms
                    )
                    step = handle(record.value, meta)
                    if step.outputs:
                        outputs.extend(step.outputs)
                    if step.after_flush:
                        fired.append((store, partition, step.after_flush))
                    if probe is not None:
                        probe(tp, record, step, started)
                    if started > deadline:
                        if position + 1 < len(records):
                            return outputs, fired, (index, position + 1)
                        if index + 1 < len(batches):
                            return outputs, fired, (index + 1, 0)
            finally:
                store.partition = None
            first_record = 0
        return outputs, fired, None


def _unless_rebalanced(proceed: Callable[[], bool], local: Local) -> Local:
    def here(partition: int) -> bool:
        return proceed() and local(partition)

    return here


async def crash(app: Any, name: str, exc: BaseException) -> None:
    """A bug (an exception from a processor) stops the worker instead of silently skipping the
    record: after a restart the record is processed again from the last committed offset."""
    log.critical("%s: unexpected error; stopping the worker", name, exc_info=exc)
    await app.crash(exc)
