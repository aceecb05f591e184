"""The inventory agent: re-keys warehouse events onto the product command topic."""

from __future__ import annotations

from typing import Any

from stockflow.agents.publish import Publisher, crash, meta_of
from stockflow.processing.inventory import InventoryRouter
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
) -> Any:
    async def inventory(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            try:
                await publisher.publish(router.handle(message.value, meta_of(message)), store)
            except Exception as exc:
                await crash(app, name, exc)
                raise

    return app.agent(topic, name=name)(inventory)
