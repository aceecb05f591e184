"""The product agent: the single writer of each partition of product state."""

from __future__ import annotations

from time import perf_counter
from typing import Any

from stockflow.agents.publish import Probe, Publisher, crash, meta_of
from stockflow.processing.products import ProductWriter
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
    probe: Probe | None = None,
) -> Any:
    async def products(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            started = perf_counter()
            try:
                result = writer.handle(message.value, meta_of(message))
                await publisher.publish(result, store)
            except Exception as exc:
                await crash(app, name, exc)
                raise
            if probe is not None:
                probe(message, result, started)

    return app.agent(topic, name=name)(products)
