"""stockflow's records processed a whole fetch at a time, outside Faust's per-record path.

Faust hands every record to a stream one by one: a ``ConsumerMessage``, a conductor dispatch,
an ``Event``, a queue item, a task switch, an acknowledgement with its set and list operations,
and a ``wait_first`` with two futures per record (measured: about half of a worker's busy time,
more than every decision it makes). :class:`BatchProcessor` takes the records of one fetch as
aiokafka returned them and runs the processors over them in a plain loop, then hands the
batch's changelog records and outputs to the producer client in one go.

The same :meth:`BatchProcessor.process` also serves the Faust agents (``STOCKFLOW_CONSUMER=
stream``, Faust's ``test_context``): the two paths cannot decide differently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Protocol

from stockflow.processing.records import Meta, Out, Step

__all__ = ["BatchProcessor", "Changelog", "Record", "RecordLike", "Route", "crash"]

log = logging.getLogger(__name__)


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
    async def send(self) -> None: ...
    async def settled(self, timeout: float) -> bool: ...


class Outputs(Protocol):
    async def publish(self, outputs: Iterable[Out]) -> None: ...
    async def flush(self) -> None: ...


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
    ) -> None:
        self.app = app
        self.routes = dict(routes)
        self.topics = frozenset(routes)
        self.changelog = changelog
        self.outputs = outputs

    async def process(self, batches: Iterable[tuple[Any, Sequence[RecordLike]]]) -> None:
        """Apply ``(tp, records)`` pairs (``tp``: a Faust ``TP``), then send what they caused.
        An exception from a processor is a bug: it stops the worker (:func:`crash`)."""
        try:
            outputs, fired = self._apply(batches)
            await self.changelog.send()
            await self.outputs.publish(outputs)
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
        except Exception as exc:
            await crash(self.app, "stockflow", exc)
            raise

    def _apply(
        self, batches: Iterable[tuple[Any, Sequence[RecordLike]]]
    ) -> tuple[list[Out], list[tuple[PartitionedStore, int, Sequence[str]]]]:
        # No await in here: a table write is tied to its partition by ``store.partition``,
        # which no other task may see set (reads from the web server run between batches).
        outputs: list[Out] = []
        fired: list[tuple[PartitionedStore, int, Sequence[str]]] = []
        clock_ms = int(time.time() * 1000)
        routes = self.routes
        for tp, records in batches:
            topic, partition = tp
            route = routes[topic]
            handle, store, probe = route.handle, route.store, route.probe
            store.partition = partition
            try:
                for record in records:
                    started = perf_counter()
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
            finally:
                store.partition = None
        return outputs, fired


async def crash(app: Any, name: str, exc: BaseException) -> None:
    """A bug (an exception from a processor) stops the worker instead of silently skipping the
    record: after a restart the record is processed again from the last committed offset."""
    log.critical("%s: unexpected error; stopping the worker", name, exc_info=exc)
    await app.crash(exc)
