"""From a processor's :class:`Step` to records on the broker."""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from faust.streams import _current_event

from stockflow.processing.pipeline import partition_for
from stockflow.processing.records import Meta, Out, Role, Step
from stockflow.tables.store import TableStore

__all__ = ["Probe", "Publisher", "crash", "meta_of", "set_current_event"]

log = logging.getLogger(__name__)

Probe = Callable[[Any, Step, float], None]
"""Called by an agent after each record it processed: ``probe(message, step, started)`` with
``started`` from :func:`time.perf_counter` (metrics, freshness and decision logs; see
:class:`stockflow.observability.StepProbe`)."""


def meta_of(message: Any) -> Meta:
    return Meta(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=round(message.timestamp * 1000),
        key=message.key,
        clock_ms=int(time.time() * 1000),
    )


_BATCH_PREFIX: dict[Role, bytes] = {
    "product_commands": b'{"type":"ProductBatch","commands":[',
    "order_replies": b'{"type":"ReplyBatch","answers":[',
}


class Publisher:
    """Sends outputs straight through the app's producer.

    Records for stockflow's internal topics are grouped: one record per destination partition
    per call (:class:`stockflow.models.ProductBatch`, :class:`stockflow.models.ReplyBatch`),
    in the order the commands were produced. Public outputs stay one record per event.
    Faust's ``Topic.send`` is bypassed: its per-record futures cost more than the decision.
    """

    def __init__(self, app: Any, topics: Mapping[Role, Any], *, partitions: int) -> None:
        self.app = app
        self.names: dict[Role, str] = {
            role: topic.get_topic_name() for role, topic in topics.items()
        }
        self.partitions = partitions

    async def publish(self, outputs: Iterable[Out]) -> None:
        send = self.app.producer.send
        batches: dict[tuple[Role, int], list[Out]] = {}
        for out in outputs:
            if out.role in _BATCH_PREFIX:
                partition = out.partition
                if partition is None:
                    partition = partition_for(out.key or b"", self.partitions)
                batches.setdefault((out.role, partition), []).append(out)
            else:
                await send(self.names[out.role], out.key, out.value, out.partition, None, None)
        for (role, partition), batch in batches.items():
            if len(batch) == 1:
                key, value = batch[0].key, batch[0].value
            else:
                key, value = None, _BATCH_PREFIX[role] + b",".join(o.value for o in batch) + b"]}"
            await send(self.names[role], key, value, partition, None, None)

    async def flush_then_delete(
        self, store: TableStore, pending: list[tuple[Any, list[str]]]
    ) -> None:
        """Delete fired timers once what they caused is on the broker (see :class:`Step`).
        Each deletion is written as part of the event (and so the partition) that fired it."""
        if not pending:
            return
        await self.app.producer.flush()
        for event, keys in pending:
            set_current_event(event)
            for key in keys:
                store.delete(key)


def set_current_event(event: Any) -> None:
    """Make ``event`` the current event of this task, for Faust's table writes."""
    _current_event.set(weakref.ref(event))


async def crash(app: Any, agent_name: str, exc: BaseException) -> None:
    """A bug (an exception from a processor) stops the worker instead of silently skipping the
    record: after a restart the record is processed again from the last committed offset."""
    log.critical("%s: unexpected error; stopping the worker", agent_name, exc_info=exc)
    await app.crash(exc)
