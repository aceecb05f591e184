"""The inventory agent: re-keys warehouse events onto the product command topic."""

from __future__ import annotations

from typing import Any

from stockflow.agents.loop import Batching, register_agent
from stockflow.agents.publish import Probe, Publisher, meta_of
from stockflow.processing.inventory import InventoryRouter
from stockflow.processing.records import Step
from stockflow.tables.store import TableStore

__all__ = ["register_inventory_agent"]


def register_inventory_agent(
    app: Any,
    *,
    name: str,
    topic: Any,
    router: InventoryRouter,
    store: TableStore,
    publisher: Publisher,
    batching: Batching,
    probe: Probe | None = None,
) -> Any:
    def handle(message: Any) -> Step:
        return router.handle(message.value, meta_of(message))

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
