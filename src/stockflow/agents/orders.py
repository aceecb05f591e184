"""The order agent: runs every order's saga. It reads the public ``orders`` topic and the
internal reply topic as one stream, so one writer sees all of an order's events in order."""

from __future__ import annotations

from time import perf_counter
from typing import Any

from stockflow.agents.publish import Probe, Publisher, crash, meta_of
from stockflow.processing.orders import OrderDesk
from stockflow.tables.store import TableStore

__all__ = ["register_orders_agent"]


def register_orders_agent(
    app: Any,
    *,
    name: str,
    topic: Any,
    orders_topic: str,
    desk: OrderDesk,
    store: TableStore,
    publisher: Publisher,
    probe: Probe | None = None,
) -> Any:
    async def orders(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            started = perf_counter()
            try:
                meta = meta_of(message)
                if message.topic == orders_topic:
                    result = desk.handle_order(message.value, meta)
                else:
                    result = desk.handle_reply(message.value, meta)
                await publisher.publish(result, store)
            except Exception as exc:
                await crash(app, name, exc)
                raise
            if probe is not None:
                probe(message, result, started)

    return app.agent(topic, name=name)(orders)
