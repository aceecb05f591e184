"""An existing shop app on Faust that embeds stockflow with ``stockflow.install``.

The shop already runs its own Faust app (id ``shop``, JSON models, its own topics and tables).
One call adds stockflow's agents and tables to it, on the shop's topic names and partition
count; no second ``faust.App`` is created. The shop's own agent then reacts to stockflow's
decisions: every reserved order is sent to the warehouse once, as a Faust record in the shop's
own serializer, and remembered in the shop's own table.

Run it (the broker from ``STOCKFLOW_BROKER``, default ``kafka://127.0.0.1:9092``)::

    python examples/embedded/app.py                      # = worker -l info
    faust -A examples.embedded.app worker -l info        # the same, from the repository root

See ``README.md`` beside this file for the topics to create and what to send.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import faust

import stockflow
from stockflow.tables import SelfHealingTableManager

log = logging.getLogger("shop")

APP_ID = "shop"
PARTITIONS = 4

# stockflow's part of the configuration. Topic names and partitions are the shop's; the rest
# (business rules, timer interval) come from STOCKFLOW_* variables or the defaults. ``app_id``
# prefixes stockflow's tables and its two internal topics (shop-product-commands,
# shop-order-replies), so that they never collide with another stockflow deployment.
SETTINGS = stockflow.Settings(
    app_id=APP_ID,
    orders_topic="shop.orders",
    inventory_topic="shop.inventory",
    reservations_topic="shop.reservations",
    dead_letter_topic="shop.stock-dead-letters",
    partitions=PARTITIONS,
)

# The shop's own app. install() leaves the connection, the store, the group timings and the
# serializers to it: here they are read from the same STOCKFLOW_* variables so one environment
# configures both, but any values of the shop's own would do.
app = faust.App(
    APP_ID,
    broker=SETTINGS.broker,
    # SASL/TLS from STOCKFLOW_SECURITY_PROTOCOL, STOCKFLOW_SASL_*, STOCKFLOW_SSL_* (None when
    # plaintext); stockflow never logs them.
    broker_credentials=SETTINGS.faust_kwargs().get("broker_credentials"),
    store="rocksdb://",
    # Self-healing changelog recovery: a local store ahead of its changelog (after a crash) is
    # rebuilt from the changelog instead of crashing the worker with ConsistencyError.
    TableManager=SelfHealingTableManager,
    # Faust's 60 s session makes a worker wait 30-110 s for its partitions on some brokers;
    # stockflow's defaults (6 s) make it ready in seconds.
    broker_session_timeout=SETTINGS.session_timeout,
    broker_heartbeat_interval=SETTINGS.heartbeat_interval,
    broker_rebalance_timeout=SETTINGS.rebalance_timeout,
    broker_commit_interval=SETTINGS.commit_interval,
    topic_partitions=PARTITIONS,
    # The shop's own topics and tables keep Faust's JSON serializer; stockflow's topics are
    # declared with raw bytes by install() whatever is set here.
    value_serializer="json",
)

# Call install() before the app declares its own agents: the first agent creates the app's
# transport, and stockflow's transport (fetch wait, end-offset fix) can only replace it before.
STOCK = stockflow.install(app, SETTINGS)


class ShipmentRequested(faust.Record, serializer="json"):
    """The shop's own event: a reserved order goes to the warehouse."""

    order_id: str
    lines: list[dict[str, Any]]
    expires_at: str


shipping_topic = app.topic("shop.shipping", key_type=str, value_type=ShipmentRequested)

# Keyed by order id like stockflow's reservations topic, so co-partitioned with it.
shipments = app.Table(
    "shop-shipments", default=int, key_type=str, value_type=int, partitions=PARTITIONS
)


@app.agent(STOCK.topics["reservations"])
async def request_shipping(stream: Any) -> None:
    """One shipment request per reserved order. stockflow may re-emit an identical outcome
    (a duplicated input, a restart), so the shop's table remembers what it already sent."""
    async for raw in stream:
        decision = json.loads(raw)  # stockflow's topics carry plain JSON bytes
        if decision["type"] != "OrderReserved":
            continue
        order_id = decision["order_id"]
        if shipments[order_id]:
            continue
        shipments[order_id] += 1
        await shipping_topic.send(
            key=order_id,
            value=ShipmentRequested(
                order_id=order_id, lines=decision["lines"], expires_at=decision["expires_at"]
            ),
        )
        log.info("shipment requested for order %s", order_id)


def main() -> None:
    """Run a shop worker: ``python app.py [faust worker options]`` (default ``worker -l info``)."""
    if len(sys.argv) == 1:
        sys.argv += ["worker", "-l", "info"]
    app.main()


if __name__ == "__main__":
    main()
