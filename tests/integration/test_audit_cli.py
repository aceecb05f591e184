"""``stockflow audit`` against a real (embedded) broker: hand-made topics, one clean and one with
seeded violations (a doubled outcome, an oversell, a lost order), through the CLI."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from stockflow.cli import main
from stockflow.testing import EmbeddedBroker, produce, read_topics

PARTITIONS = 4


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    embedded = EmbeddedBroker().start()
    try:
        yield embedded
    finally:
        embedded.stop()


def names(prefix: str) -> dict[str, str]:
    return {
        "orders": f"{prefix}-orders",
        "inventory": f"{prefix}-inventory",
        "reservations": f"{prefix}-reservations",
        "dead_letters": f"{prefix}-dead-letters",
    }


def placed(order: str, product: str, quantity: int) -> dict[str, Any]:
    lines = [{"product_id": product, "quantity": quantity}]
    return {"type": "OrderPlaced", "order_id": order, "lines": lines}


def product_reserved(order: str, product: str, quantity: int) -> dict[str, Any]:
    return {
        "type": "ProductReserved",
        "order_id": order,
        "product_id": product,
        "quantity": quantity,
        "expires_at": "2030-01-01T00:00:00.000Z",
    }


def order_reserved(order: str, product: str, quantity: int) -> dict[str, Any]:
    return {
        "type": "OrderReserved",
        "order_id": order,
        "lines": [{"product_id": product, "quantity": quantity}],
        "expires_at": "2030-01-01T00:00:00.000Z",
        "partial": False,
        "refused": [],
    }


def rejected(order: str, product: str, quantity: int) -> dict[str, Any]:
    line = {"product_id": product, "quantity": quantity, "reason": "insufficient_stock"}
    return {
        "type": "OrderRejected",
        "order_id": order,
        "reason": "insufficient_stock",
        "lines": [line],
    }


def write(broker: EmbeddedBroker, *batches: list[tuple[str, Any, Any]]) -> None:
    """Each batch is acknowledged before the next is sent, so timestamps follow the batches."""
    for batch in batches:
        asyncio.run(produce(broker.bootstrap, batch))
        time.sleep(0.02)


def seed_clean_run(broker: EmbeddedBroker, topics: dict[str, str]) -> None:
    orders, inventory, out = topics["orders"], topics["inventory"], topics["reservations"]
    bad_stock = {"type": "StockSet", "product_id": "sku", "on_hand": "many"}
    write(
        broker,
        [(inventory, "sku", {"type": "StockSet", "product_id": "sku", "on_hand": 3})],
        [(inventory, "sku", bad_stock), (orders, "junk", b"\xff not json")],
        [
            (orders, "o-1", placed("o-1", "sku", 2)),
            (orders, "o-2", placed("o-2", "sku", 2)),
            (orders, "o-1", placed("o-1", "sku", 2)),  # a duplicated input
        ],
        [
            (out, "o-1", product_reserved("o-1", "sku", 2)),
            (out, "o-1", order_reserved("o-1", "sku", 2)),
            (out, "o-2", rejected("o-2", "sku", 2)),
            (out, "o-1", product_reserved("o-1", "sku", 2)),  # identical re-emissions
            (out, "o-1", order_reserved("o-1", "sku", 2)),
        ],
    )
    inputs = asyncio.run(read_topics(broker.bootstrap, [orders, inventory]))
    letters = [
        (topics["dead_letters"], record.key, dead_letter(record))
        for record in (*inputs[orders], *inputs[inventory])
        if record.value in (b"\xff not json", json.dumps(bad_stock).encode())
    ]
    assert len(letters) == 2
    write(broker, letters)


def dead_letter(record: Any) -> dict[str, Any]:
    return {
        "type": "DeadLetter",
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
        "key_b64": base64.b64encode(record.key).decode() if record.key is not None else None,
        "value_b64": base64.b64encode(record.value).decode(),
        "error": "invalid",
    }


def topic_options(topics: dict[str, str]) -> list[str]:
    return [
        "--orders-topic",
        topics["orders"],
        "--inventory-topic",
        topics["inventory"],
        "--reservations-topic",
        topics["reservations"],
        "--dead-letter-topic",
        topics["dead_letters"],
    ]


def run_audit(broker: EmbeddedBroker, topics: dict[str, str], *extra: str) -> tuple[int, Any]:
    """``stockflow audit --json`` with the broker from ``STOCKFLOW_BROKER``."""
    arguments = ["audit", "--json", *topic_options(topics), *extra]
    result = CliRunner().invoke(main, arguments, env={"STOCKFLOW_BROKER": broker.url})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


def test_a_clean_run_passes(broker: EmbeddedBroker) -> None:
    topics = names("clean")
    broker.create_topics(topics.values(), partitions=PARTITIONS)
    seed_clean_run(broker, topics)

    code, report = run_audit(broker, topics, "--strict")

    assert code == 0, report["violations"]
    assert report["ok"] is True and report["violations"] == [] and report["pending"] == []
    assert report["counts"]["outputs"] == {
        "OrderRejected": 1,
        "OrderReserved": 2,
        "ProductReserved": 2,
    }
    assert report["counts"]["duplicates"] == {"OrderReserved": 1, "ProductReserved": 1}
    assert report["counts"]["accounting"] == {"applied": 1, "dead_lettered": 2, "decided": 3}

    arguments = ["audit", "--broker", broker.bootstrap, *topic_options(topics)]
    text = CliRunner().invoke(main, arguments)
    assert text.exit_code == 0 and "OK: no violation" in text.output, text.output


def test_seeded_violations_are_caught_with_their_offsets(broker: EmbeddedBroker) -> None:
    topics = names("seeded")
    broker.create_topics(topics.values(), partitions=PARTITIONS)
    seed_clean_run(broker, topics)
    orders, out = topics["orders"], topics["reservations"]
    write(
        broker,
        [(orders, "o-3", placed("o-3", "sku", 1)), (orders, "lost", placed("lost", "sku", 1))],
        [
            (out, "o-2", order_reserved("o-2", "sku", 2)),  # o-2 was rejected: a second outcome
            (out, "o-3", product_reserved("o-3", "sku", 2)),  # 2 + 2 held of 3 ever stocked
            (out, "o-3", order_reserved("o-3", "sku", 2)),
        ],
    )
    seen = asyncio.run(read_topics(broker.bootstrap, [out, orders]))
    second = next(
        r
        for r in seen[out]
        if json.loads(r.value or b"{}")["type"] == "OrderReserved"
        and json.loads(r.value or b"{}")["order_id"] == "o-2"
    )
    oversold = next(
        r for r in seen[out] if r.key == b"o-3" and b"ProductReserved" in (r.value or b"")
    )
    lost = next(r for r in seen[orders] if r.key == b"lost")

    lenient_code, lenient = run_audit(broker, topics)
    code, report = run_audit(broker, topics, "--strict", "--settle", "1")

    where = {v["kind"]: v["at"] for v in report["violations"]}
    assert lenient_code == 1 and code == 1
    assert sorted(where) == ["conflicting_outcome", "lost_order", "oversell"]
    assert where["conflicting_outcome"] == {
        "topic": out,
        "partition": second.partition,
        "offset": second.offset,
    }
    assert where["oversell"] == {
        "topic": out,
        "partition": oversold.partition,
        "offset": oversold.offset,
    }
    assert where["lost_order"] == {
        "topic": orders,
        "partition": lost.partition,
        "offset": lost.offset,
    }
    assert [(p["kind"], p["order_id"]) for p in lenient["pending"]] == [
        ("awaiting_outcome", "lost")
    ]
    assert "lost_order" not in {v["kind"] for v in lenient["violations"]}
    assert report["counts"]["violations"] == {
        "conflicting_outcome": 1,
        "lost_order": 1,
        "oversell": 1,
    }
