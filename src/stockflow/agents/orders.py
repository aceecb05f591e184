"""The order agent: runs every order's saga. It reads the public ``orders`` topic and the
internal reply topic as one stream, so one writer sees all of an order's events in order."""

from __future__ import annotations

from typing import Any

from stockflow.agents.loop import Batching, register_agent
from stockflow.agents.publish import Probe, Publisher, meta_of
from stockflow.processing.orders import OrderDesk
from stockflow.processing.records import Step
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
    batching: Batching,
    probe: Probe | None = None,
) -> Any:
    def handle(message: Any) -> Step:
        meta = meta_of(message)
        if message.topic == orders_topic:
            return desk.handle_order(message.value, meta)
        return desk.handle_reply(message.value, meta)

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
