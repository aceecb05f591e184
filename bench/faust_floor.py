"""The Faust floor: the baseline pipe's path written as plain Faust agents, with stockflow's
settings and transport, so that stockflow's own cost can be told apart from Faust's.

``orders`` -> agent ``split`` (one record per line, keyed by product) -> ``floor-by-product`` ->
agent ``answer`` (``BENCH_FLOOR_WRITES`` table writes per record, default 0) ->
``reservations`` (one result per line, keyed by order id, as the pipe writes). Every agent
iterates ``stream.events()`` and awaits each ``topic.send``, as stockflow's agents do.

Settings come from the same ``STOCKFLOW_*`` environment as a stockflow worker (broker,
partitions, store, timeouts, fetch wait, linger, commit interval). Run by the harness as
``python -m faust -A bench.faust_floor worker``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import faust

from stockflow._faust.wiring import use_tuned_transport
from stockflow.settings import Settings

__all__ = ["BY_PRODUCT", "TABLE", "WRITES", "app"]

BY_PRODUCT = "floor-by-product"
TABLE = "floor-state"
WRITES = int(os.environ.get("BENCH_FLOOR_WRITES", "0"))
"""Table writes per record in the second agent (stockflow writes ~6 changelog records per
single-line order: 2 for the product, 4 for the saga)."""

_settings = Settings()
app: Any = faust.App(**_settings.faust_kwargs(), autodiscover=False)
use_tuned_transport(app, _settings.fetch_max_wait_ms)


def _topic(name: str) -> Any:
    return app.topic(
        name,
        partitions=_settings.partitions,
        key_serializer="raw",
        value_serializer="raw",
        internal=True,
    )


orders_topic = _topic(_settings.orders_topic)
by_product = _topic(BY_PRODUCT)
reservations = _topic(_settings.reservations_topic)
table = app.Table(
    TABLE,
    default=None,
    partitions=_settings.partitions,
    key_type=bytes,
    value_type=bytes,
    schema=faust.Schema(
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    ),
)


@app.agent(orders_topic, name="floor.split")  # type: ignore[untyped-decorator]
async def split(stream: Any) -> None:
    async for event in stream.events():
        order = json.loads(event.message.value)
        if order.get("type") == "StockSet":
            pid = order["product_id"]
            value = json.dumps({"product_id": pid, "order_id": None}).encode()
            await by_product.send(key=pid.encode(), value=value)
            continue
        for line in order["lines"]:
            value = json.dumps(
                {
                    "order_id": order["order_id"],
                    "product_id": line["product_id"],
                    "quantity": line["quantity"],
                }
            ).encode()
            await by_product.send(key=line["product_id"].encode(), value=value)


@app.agent(by_product, name="floor.answer")  # type: ignore[untyped-decorator]
async def answer(stream: Any) -> None:
    async for event in stream.events():
        raw = event.message.value
        line = json.loads(raw)
        for index in range(WRITES):
            table[f"{line['product_id']}:{index}"] = raw
        key = line["order_id"] or line["product_id"]
        value = {"order_id": line["order_id"], "product_id": line["product_id"], "status": "moved"}
        await reservations.send(key=key.encode(), value=json.dumps(value).encode())
