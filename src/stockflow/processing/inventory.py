"""Routes warehouse events from ``inventory`` to the product-keyed command topic.

The ``inventory`` topic may be written by any producer with any partitioner; re-keying it
through stockflow's own producer puts every stock command for a product in the same partition
as its reservations, so that one writer sees them all in order.
"""

from __future__ import annotations

from stockflow.commands import AdjustStock, SetStock
from stockflow.models import INVENTORY_EVENT_ADAPTER, StockSet
from stockflow.processing.codec import dead_letter, encode, parse
from stockflow.processing.records import Meta, Out, Step

__all__ = ["InventoryRouter"]


class InventoryRouter:
    """Stateless: validate, dead-letter what is invalid, forward the rest."""

    def handle(self, raw: bytes | None, meta: Meta) -> Step:
        event = parse(INVENTORY_EVENT_ADAPTER, raw)
        if isinstance(event, str):
            return Step(outputs=[dead_letter(meta, raw, event)])
        command: SetStock | AdjustStock
        if isinstance(event, StockSet):
            # The source record identifies a recount: a redelivery of the same record is applied
            # once, a new recount with the same number is applied again.
            source = f"{meta.topic}/{meta.partition}/{meta.offset}"
            command = SetStock(product_id=event.product_id, on_hand=event.on_hand, source=source)
        else:
            command = AdjustStock(
                product_id=event.product_id, delta=event.delta, adjustment_id=event.adjustment_id
            )
        key = event.product_id.encode()
        return Step(outputs=[Out(role="product_commands", key=key, value=encode(command))])
