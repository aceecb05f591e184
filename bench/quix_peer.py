"""The peer: the same reservation shape in Quix Streams 3.28.1 (``pip install -e .[bench]``).

Read ``orders`` (the same JSON records stockflow reads), split each order into its lines,
re-key by product (``group_by``: a repartition topic, as stockflow's product command topic),
read-check-write a per-product stock counter in Quix's RocksDB state (changelogged), and emit
one result per line to ``reservations`` keyed by order id (for a single-line order: one result
per order). ``StockSet`` records on the same input set the counter and are acknowledged, keyed by
product id, so the harness knows when the peer is warm.

On tansu Quix needs its input topics created with an explicit ``retention.ms`` (it reads it to
build changelogs; tansu returns only the configs given at creation) and short group timeouts
(tansu holds a JoinGroup for half the session timeout), see BROKER.md.

Run as ``python -m bench.quix_peer --bootstrap HOST:PORT --state-dir DIR``; stopped by SIGTERM.
``BENCH_QUIX_COMPRESSION`` (e.g. ``zstd``; default none, librdkafka's default) compresses
everything the peer produces, to compare with stockflow's compressed internal records.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

__all__ = ["RETENTION", "build_app", "decide", "main", "matcher", "split"]

RETENTION = {"retention.ms": str(7 * 24 * 3600 * 1000)}
"""Topic config the peer's input and output topics are created with."""


def matcher(key: bytes, value: bytes) -> str | None:
    """``reserved`` or the reason the line was not (``insufficient_stock``, ...)."""
    if b'"reserved"' in value:
        return "reserved"
    return f"rejected: {json.loads(value).get('status')}"


def split(event: dict[str, Any]) -> list[dict[str, Any]]:
    """One item per order line (a StockSet is one item)."""
    if event.get("type") == "StockSet":
        return [{"kind": "set", "product_id": event["product_id"], "on_hand": event["on_hand"]}]
    order_id = event["order_id"]
    return [
        {
            "kind": "line",
            "order_id": order_id,
            "product_id": line["product_id"],
            "quantity": line["quantity"],
        }
        for line in event["lines"]
    ]


def decide(item: dict[str, Any], state: Any) -> dict[str, Any]:
    """Read-check-write the product's counter: reserved only if enough is available."""
    product_id = item["product_id"]
    if item["kind"] == "set":
        state.set("on_hand", item["on_hand"])
        return {"key": product_id, "product_id": product_id, "status": "stock_set"}
    available = state.get("on_hand")
    quantity = item["quantity"]
    if available is None:
        status = "unknown_product"
    elif available >= quantity:
        state.set("on_hand", available - quantity)
        status = "reserved"
    else:
        status = "insufficient_stock"
    return {
        "key": item["order_id"],
        "order_id": item["order_id"],
        "product_id": product_id,
        "status": status,
    }


def build_app(
    bootstrap: str, state_dir: str, *, source: str, sink: str, fetch_wait_ms: int, group: str
) -> tuple[Any, Any]:
    from quixstreams import Application

    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        loglevel="WARNING",
        consumer_extra_config={
            "session.timeout.ms": 2000,
            "heartbeat.interval.ms": 300,
            # The same fetch wait as stockflow's default and the baseline pipe's.
            "fetch.wait.max.ms": fetch_wait_ms,
        },
        producer_extra_config={
            "compression.type": os.environ.get("BENCH_QUIX_COMPRESSION", "none"),
        },
    )
    orders = app.topic(source, value_deserializer="json", key_deserializer="bytes")
    results = app.topic(sink, value_serializer="json", key_serializer="str")
    sdf = app.dataframe(orders)
    sdf = sdf.apply(split, expand=True)
    sdf = sdf.group_by("product_id", name="by-product")
    sdf = sdf.apply(decide, stateful=True)
    sdf.to_topic(results, key=lambda item: item["key"])
    return app, sdf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--source", default="orders")
    parser.add_argument("--sink", default="reservations")
    parser.add_argument("--group", default="bench-quix")
    parser.add_argument("--fetch-wait-ms", type=int, default=50)
    args = parser.parse_args()
    app, sdf = build_app(
        args.bootstrap,
        args.state_dir,
        source=args.source,
        sink=args.sink,
        fetch_wait_ms=args.fetch_wait_ms,
        group=args.group,
    )
    print("peer starting", flush=True)
    app.run(sdf)


if __name__ == "__main__":
    main()
