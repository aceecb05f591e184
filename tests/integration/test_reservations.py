"""Issue 2 on a real broker with a real worker: the flash sale, duplicates, bad input."""

from __future__ import annotations

import asyncio
import base64
import json

from stockflow.testing import produce
from stockflow.testing.harness import Harness

from expectations import assert_one_outcome_each, order_placed, unique_product_events


def test_flash_sale_sells_exactly_the_stock(stockflow_harness: Harness) -> None:
    harness = stockflow_harness
    harness.start_worker()
    harness.stock("last-item", 100)
    orders = [order_placed(f"o-{n}", ("last-item", 1)) for n in range(1000)]
    topic = harness.settings.orders_topic

    async def four_producers() -> None:
        await asyncio.gather(
            *(
                produce(harness.bootstrap, [(topic, k, v) for _, k, v in orders[i::4]])
                for i in range(4)
            )
        )

    asyncio.run(four_producers())
    decisions = harness.wait_outcomes([o[1] for o in orders], timeout=120)

    assert_one_outcome_each(decisions, [o[1] for o in orders])
    reserved = {d["order_id"] for d in decisions if d["type"] == "OrderReserved"}
    rejected = [d for d in decisions if d["type"] == "OrderRejected"]
    assert len(reserved) == 100
    assert len(unique_product_events(decisions, "ProductReserved")) == 100
    assert {d["order_id"] for d in rejected} | reserved == {o[1] for o in orders}
    assert {d["reason"] for d in rejected} == {"insufficient_stock"}
    state = harness.stock_state()["last-item"]
    assert state == {"on_hand": 100, "reserved": 100, "pending_sum": 100}


def test_duplicated_order_reserves_once(stockflow_harness: Harness) -> None:
    harness = stockflow_harness
    harness.start_worker()
    harness.stock("sku", 10)
    harness.send([order_placed("dup-1", ("sku", 3))] * 3)
    harness.send([order_placed("after", ("sku", 1))])
    decisions = harness.wait_outcomes(["dup-1", "after"])
    # The worker may re-emit the identical outcome for a duplicate, never a different one.
    assert_one_outcome_each(decisions, ["dup-1", "after"])
    held = [d for d in decisions if d["type"] == "ProductReserved" and d["order_id"] == "dup-1"]
    assert {json.dumps(d, sort_keys=True) for d in held} and len({d["quantity"] for d in held}) == 1
    assert harness.stock_state()["sku"] == {"on_hand": 10, "reserved": 4, "pending_sum": 4}


def test_bad_input_is_dead_lettered_and_the_worker_goes_on(stockflow_harness: Harness) -> None:
    harness = stockflow_harness
    harness.start_worker()
    harness.stock("sku", 5)
    bad = [
        ("orders", "b1", b"\xff\xfe not json at all"),
        (
            "orders",
            "b2",
            {
                "type": "OrderPlaced",
                "order_id": "b2",
                "lines": [{"product_id": "sku", "quantity": "2"}],
            },
        ),
        (
            "orders",
            "b3",
            {
                "type": "OrderPlaced",
                "order_id": "b3",
                "lines": [{"product_id": "sku", "quantity": -1}],
            },
        ),
        (
            "orders",
            "b4",
            {
                "type": "OrderPlaced",
                "order_id": "b4",
                "lines": [{"product_id": "sku", "quantity": 0}],
            },
        ),
        ("orders", "b5", {"type": "OrderPlaced", "order_id": "b5"}),
        ("orders", "b6", {"type": "OrderShipped", "order_id": "b6"}),
        ("inventory", "sku", {"type": "StockSet", "product_id": "sku", "on_hand": "many"}),
    ]
    harness.send(bad)
    harness.send([order_placed("good", ("sku", 2))])
    decisions = harness.wait_outcomes(["good"])
    letters = harness.dead_letters()

    assert [d["type"] for d in decisions if d.get("order_id") == "good"].count("OrderReserved") >= 1
    assert not {"b1", "b2", "b3", "b4", "b5", "b6"} & {d.get("order_id") for d in decisions}
    assert len(letters) == len(bad)
    sent = {json.dumps(v).encode() if isinstance(v, dict) else v for _, _, v in bad}
    assert {base64.b64decode(letter["value_b64"]) for letter in letters} == sent
    assert all(letter["error"] and letter["offset"] >= 0 for letter in letters)
    assert harness.stock_state()["sku"]["reserved"] == 2
