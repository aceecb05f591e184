"""From a processor's :class:`Step` to records on the broker."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from stockflow.processing.records import Meta, Role, Step
from stockflow.tables.store import TableStore

__all__ = ["Probe", "Publisher", "crash", "meta_of"]

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
    )


class Publisher:
    """Sends a step's outputs through the app's producer.

    A step's ``after_flush`` deletions wait for the producer to flush: what a fired timer caused
    must be on the broker before the timer may disappear (see :class:`Step`).
    """

    def __init__(self, app: Any, topics: Mapping[Role, Any]) -> None:
        self.app = app
        self.topics = topics

    async def publish(self, step: Step, store: TableStore) -> None:
        for out in step.outputs:
            await self.topics[out.role].send(key=out.key, value=out.value, partition=out.partition)
        if step.after_flush:
            await self.app.producer.flush()
            for key in step.after_flush:
                store.delete(key)


async def crash(app: Any, agent_name: str, exc: BaseException) -> None:
    """A bug (an exception from a processor) stops the worker instead of silently skipping the
    record: after a restart the record is processed again from the last committed offset."""
    log.critical("%s: unexpected error; stopping the worker", agent_name, exc_info=exc)
    await app.crash(exc)
