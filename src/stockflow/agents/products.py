"""The product agent: the single writer of each partition of product state."""

from __future__ import annotations

from typing import Any

from stockflow.agents.loop import Batching, register_agent
from stockflow.agents.publish import Probe, Publisher, meta_of
from stockflow.processing.products import ProductWriter
from stockflow.processing.records import Step
from stockflow.tables.store import TableStore

__all__ = ["register_products_agent"]


def register_products_agent(
    app: Any,
    *,
    name: str,
    topic: Any,
    writer: ProductWriter,
    store: TableStore,
    publisher: Publisher,
    batching: Batching,
    probe: Probe | None = None,
) -> Any:
    def handle(message: Any) -> Step:
        return writer.handle(message.value, meta_of(message))

    return register_agent(
        app,
        name=name,
        topic=topic,
        handle=handle,
        publisher=publisher,
        store=store,
        batching=batching,
        probe=probe,
    )
