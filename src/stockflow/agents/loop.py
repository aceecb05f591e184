"""The one loop every stockflow agent runs: records in batches, a processor per record, the
outputs of the whole batch published together."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from stockflow.agents.publish import Probe, Publisher, crash, set_current_event
from stockflow.processing.records import Out, Step
from stockflow.tables.store import TableStore

__all__ = ["Batching", "register_agent", "run_batches"]


@dataclass(frozen=True, slots=True)
class Batching:
    """``max_records`` per batch at most; a batch closes after ``within`` seconds even when
    short (the latency a hop may add under light load)."""

    max_records: int = 1000
    within: float = 0.005


async def run_batches(
    app: Any,
    *,
    name: str,
    stream: Any,
    handle: Callable[[Any], Step],
    publisher: Publisher,
    store: TableStore,
    batching: Batching,
    probe: Probe | None = None,
) -> None:
    """Process ``stream`` batch by batch with ``handle(message) -> Step``.

    Faust acknowledges a batch's records only after this loop body returns for it, so a crash
    mid-batch redelivers the whole batch (processing is idempotent). Before each record the
    stream's current event is set to it: a table change goes to the changelog partition of the
    current event, which must be the record's own. The batch's changes reach the producer
    client before the batch's records are acknowledged.
    """
    # Only the context variable is set (this task's view), never Stream.current_event: that
    # attribute is what take_events' buffer reads for the *next* record, and overwriting it
    # dropped records (found by the chaos suite).
    async for events in stream.take_events(batching.max_records, within=batching.within):
        try:
            outputs: list[Out] = []
            fired: list[tuple[Any, list[str]]] = []
            for event in events:
                set_current_event(event)
                message = event.message
                started = perf_counter()
                step = handle(message)
                outputs.extend(step.outputs)
                if step.after_flush:
                    fired.append((event, step.after_flush))
                if probe is not None:
                    probe(message, step, started)
            # The batch's table changes first: the flush before a fired timer's deletion (and
            # before every commit) must find them in the producer client.
            await store.changelog.send()
            await publisher.publish(outputs)
            await publisher.flush_then_delete(store, fired)
            await store.changelog.send()  # the deletions of fired timers
        except Exception as exc:
            await crash(app, name, exc)
            raise


def register_agent(
    app: Any,
    *,
    name: str,
    topic: Any,
    handle: Callable[[Any], Step],
    publisher: Publisher,
    store: TableStore,
    batching: Batching,
    probe: Probe | None = None,
) -> Any:
    """A Faust agent on ``topic`` that runs :func:`run_batches` with ``handle``."""

    async def agent(stream: Any) -> None:
        await run_batches(
            app,
            name=name,
            stream=stream,
            handle=handle,
            publisher=publisher,
            store=store,
            batching=batching,
            probe=probe,
        )

    return app.agent(topic, name=name)(agent)
