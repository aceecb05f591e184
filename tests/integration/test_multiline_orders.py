"""Issue 4 on a real broker with two worker processes sharing the partitions: multi-line orders
reserve all-or-nothing across partitions (or partially when asked), compensate, and every
order gets exactly one outcome."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest
from test_read_model import scrape, total

from stockflow.testing.harness import Harness

from expectations import assert_one_outcome_each, order_placed

STOCK = {f"sku-{n}": 30 for n in range(6)}


def _cart(rng: random.Random, order_id: str) -> tuple[str, str, dict[str, Any]]:
    products = list(STOCK)
    size = rng.choice([1, 1, 2, 3])
    lines = [(rng.choice(products), rng.randint(1, 3)) for _ in range(size)]
    extra: dict[str, Any] = {"fulfilment": "partial"} if rng.random() < 0.2 else {}
    return order_placed(order_id, *lines, **extra)


@pytest.mark.parametrize(
    "output_order",
    # auto is client on one broker; acks, as on several brokers: outputs wait for their
    # changelog writes' acknowledgements.
    ["auto", "acks"],
)
def test_two_workers_mixed_flash_sale(stockflow_harness: Harness, output_order: str) -> None:
    harness = stockflow_harness
    first = harness.worker("w1", STOCKFLOW_OUTPUT_ORDER=output_order).start()
    first.wait_ready(60)
    second = harness.worker("w2", STOCKFLOW_OUTPUT_ORDER=output_order).start()
    second.wait_ready(60)
    first.wait_ready(60, count=2)  # the first worker rebalanced to share the partitions
    harness.stock_many(STOCK)

    rng = random.Random(42)
    orders = [_cart(rng, f"cart-{n}") for n in range(600)]
    ids = [order[1] for order in orders]
    harness.send(orders + rng.sample(orders, 60))  # and some duplicates
    decisions = harness.wait_outcomes(ids, timeout=120)
    # Pay for a third of the reserved orders; confirmations act on every line at once.
    reserved = [d for d in decisions if d["type"] == "OrderReserved"]
    paying = [d["order_id"] for d in reserved[::3]]
    harness.send([("orders", o, {"type": "OrderPaid", "order_id": o}) for o in paying])

    def all_confirmed(ds: list[dict[str, Any]]) -> bool:
        confirmed = {
            (d["order_id"], d["product_id"]) for d in ds if d["type"] == "ReservationConfirmed"
        }
        return all(
            (d["order_id"], line["product_id"]) in confirmed
            for d in reserved[::3]
            for line in d["lines"]
        )

    decisions = harness.wait_decisions(all_confirmed, timeout=60)
    # Compensations are one hop behind their outcomes, table changes behind their decisions.
    harness.wait_settled()
    decisions = harness.decisions()

    assert_one_outcome_each(decisions, ids)
    outcomes = {
        d["order_id"]: d for d in decisions if d["type"] in ("OrderReserved", "OrderRejected")
    }
    held: dict[tuple[str, str], int] = {}
    for d in decisions:
        key = (d.get("order_id"), d.get("product_id"))
        if d["type"] == "ProductReserved":
            held[key] = d["quantity"]
        elif d["type"] == "ReservationReleased":
            held.pop(key, None)
    # Every rejected order holds zero units once its compensations are applied.
    for order_id, outcome in outcomes.items():
        units = sum(q for (o, _), q in held.items() if o == order_id)
        if outcome["type"] == "OrderRejected":
            assert units == 0, f"rejected {order_id} still holds {units}"
        else:
            wanted = {line["product_id"]: line["quantity"] for line in outcome["lines"]}
            have = {p: q for (o, p), q in held.items() if o == order_id}
            assert have == wanted, f"{order_id}: holds {have}, outcome says {wanted}"
    # All-or-nothing carts are never partly reserved; partial ones say what was refused.
    for order in orders:
        outcome = outcomes[order[1]]
        if order[2].get("fulfilment") != "partial" and outcome["type"] == "OrderReserved":
            assert not outcome["partial"] and not outcome["refused"]
    # Per product: reserved + confirmed never exceed stock ever received; the table agrees.
    per_product: dict[str, int] = defaultdict(int)
    for (_, product), quantity in held.items():
        per_product[product] += quantity
    state = harness.stock_state()
    confirmed_units: dict[str, int] = defaultdict(int)
    for d in {
        (d["order_id"], d["product_id"], d["quantity"])
        for d in decisions
        if d["type"] == "ReservationConfirmed"
    }:
        confirmed_units[d[1]] += d[2]
    for product, units in STOCK.items():
        assert per_product[product] <= units
        assert state[product]["reserved"] + confirmed_units[product] == per_product[product]
        assert state[product]["on_hand"] == units - confirmed_units[product]
        assert state[product]["reserved"] == state[product]["pending_sum"]
    compensations = [d for d in decisions if d["type"] == "ReservationReleased"]
    assert compensations and {d["reason"] for d in compensations} == {"compensation"}
    # Answers whose reply partition was the deciding worker's own were applied there
    # (stockflow._faust.answers); the others came through the broker.
    scrapes = [scrape(f"http://127.0.0.1:{w.web_port}") for w in (first, second)]
    applied = total(scrapes, "stockflow_local_answers_total", stage="applied")
    assert 0 < applied <= total(scrapes, "stockflow_events_out_total", type="LineAnswer")
    assert total(scrapes, "stockflow_local_answers_total", stage="skipped") <= applied
    # Line commands whose product partition was the publishing worker's own were applied there
    # once acknowledged (stockflow._faust.commands_here); the rest came through the broker.
    assert total(scrapes, "stockflow_local_commands_total", stage="applied") > 0
