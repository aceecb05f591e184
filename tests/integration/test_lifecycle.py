"""Issue 3 on a real broker: confirm on payment, release on cancel, expiry (while running and
across a restart), a confirm racing an expiry, and shortfalls after a recount."""

from __future__ import annotations

import time
from typing import Any

from stockflow.testing.harness import Harness

from expectations import assert_one_outcome_each, order_placed


def paid(order_id: str) -> tuple[str, str, dict[str, Any]]:
    return ("orders", order_id, {"type": "OrderPaid", "order_id": order_id})


def cancelled(order_id: str) -> tuple[str, str, dict[str, Any]]:
    return ("orders", order_id, {"type": "OrderCancelled", "order_id": order_id, "reason": "n/a"})


def of(decisions: list[dict[str, Any]], kind: str, order_id: str) -> list[dict[str, Any]]:
    return [d for d in decisions if d["type"] == kind and d.get("order_id") == order_id]


def test_pay_confirms_and_deducts_stock(stockflow_harness: Harness) -> None:
    harness = stockflow_harness
    harness.start_worker()
    harness.stock("sku", 5)
    harness.send([order_placed("o1", ("sku", 2))])
    harness.wait_outcomes(["o1"])
    harness.send([paid("o1"), paid("o1")])  # a duplicate payment changes stock once
    decisions = harness.wait_decisions(lambda ds: of(ds, "ReservationConfirmed", "o1"))
    assert {d["quantity"] for d in of(decisions, "ReservationConfirmed", "o1")} == {2}
    time.sleep(1.0)
    assert harness.stock_state()["sku"] == {"on_hand": 3, "reserved": 0, "pending_sum": 0}


def test_cancel_releases_units_for_the_next_order(stockflow_harness: Harness) -> None:
    harness = stockflow_harness
    harness.start_worker()
    harness.stock("sku", 1)
    harness.send([order_placed("first", ("sku", 1))])
    harness.wait_outcomes(["first"])
    harness.send([order_placed("second", ("sku", 1))])
    assert of(harness.wait_outcomes(["second"]), "OrderRejected", "second")
    harness.send([cancelled("first")])
    harness.wait_decisions(lambda ds: of(ds, "ReservationReleased", "first"))
    harness.send([order_placed("third", ("sku", 1))])
    decisions = harness.wait_outcomes(["third"])
    assert of(decisions, "ReservationReleased", "first")[0]["reason"] == "cancelled"
    assert of(decisions, "OrderReserved", "third")
    harness.send([cancelled("first"), paid("first")])  # both too late: explicit answers
    decisions = harness.wait_decisions(lambda ds: of(ds, "ReservationConfirmFailed", "first"))
    assert of(decisions, "ReservationConfirmFailed", "first")[0]["reason"] == "cancelled"
    time.sleep(1.0)
    assert harness.stock_state()["sku"] == {"on_hand": 1, "reserved": 1, "pending_sum": 1}


def test_short_ttl_expires_and_the_unit_is_sold_again(stockflow_harness: Harness) -> None:
    harness = stockflow_harness
    harness.start_worker()
    harness.stock("sku", 1)
    harness.send([order_placed("slow", ("sku", 1), reservation_ttl=2)])
    harness.wait_outcomes(["slow"])
    reserved_at = time.monotonic()
    decisions = harness.wait_decisions(lambda ds: of(ds, "ReservationReleased", "slow"), timeout=20)
    assert time.monotonic() - reserved_at < 8  # "within a few seconds of its deadline"
    assert of(decisions, "ReservationReleased", "slow")[0]["reason"] == "expired"
    harness.send([order_placed("next", ("sku", 1)), paid("slow")])
    decisions = harness.wait_decisions(lambda ds: of(ds, "ReservationConfirmFailed", "slow"))
    assert of(decisions, "ReservationConfirmFailed", "slow")[0]["reason"] == "expired"
    assert of(harness.wait_outcomes(["next"]), "OrderReserved", "next")


def test_confirm_racing_expiry_resolves_one_way(stockflow_harness: Harness) -> None:
    harness = stockflow_harness
    harness.start_worker()
    harness.stock("sku", 40)
    ids = [f"race-{n}" for n in range(40)]
    harness.send([order_placed(order, ("sku", 1), reservation_ttl=1.5) for order in ids])
    harness.wait_outcomes(ids)
    # Payments land around the deadline: some before, some after the expiry is decided.
    for order in ids:
        harness.send([paid(order)])
        time.sleep(0.05)

    def settled(ds: list[dict[str, Any]]) -> bool:
        # Each payment is answered, and each expiry's release (one hop later) is out too.
        return all(
            of(ds, "ReservationConfirmed", o)
            or (of(ds, "ReservationConfirmFailed", o) and of(ds, "ReservationReleased", o))
            for o in ids
        )

    decisions = harness.wait_decisions(settled, timeout=30)
    time.sleep(1.0)
    confirmed = {o for o in ids if of(decisions, "ReservationConfirmed", o)}
    failed = {o for o in ids if of(decisions, "ReservationConfirmFailed", o)}
    released = {o for o in ids if of(decisions, "ReservationReleased", o)}
    assert confirmed.isdisjoint(failed) and confirmed.isdisjoint(released)
    assert failed == released  # every failed payment belongs to an expired reservation
    assert confirmed | failed == set(ids)
    state = harness.stock_state()["sku"]
    assert state == {"on_hand": 40 - len(confirmed), "reserved": 0, "pending_sum": 0}


def test_deadlines_passed_while_stopped_expire_after_restart(stockflow_harness: Harness) -> None:
    harness = stockflow_harness
    worker = harness.start_worker()
    harness.stock("sku", 3)
    ids = ["a", "b", "c"]
    harness.send([order_placed(o, ("sku", 1), reservation_ttl=3) for o in ids])
    harness.wait_outcomes(ids)
    worker.stop()
    time.sleep(4)  # every deadline passes while no worker runs
    worker.start()
    worker.wait_ready(60)
    decisions = harness.wait_decisions(
        lambda ds: all(of(ds, "ReservationReleased", o) for o in ids), timeout=30
    )
    assert {of(decisions, "ReservationReleased", o)[0]["reason"] for o in ids} == {"expired"}
    time.sleep(1.0)
    assert harness.stock_state()["sku"] == {"on_hand": 3, "reserved": 0, "pending_sum": 0}


def test_recount_below_reserved_reports_shortfall(stockflow_harness: Harness) -> None:
    harness = stockflow_harness
    harness.start_worker()
    harness.stock("sku", 10)
    ids = [f"o{n}" for n in range(5)]
    for order in ids:  # one at a time, so the reservation order is known
        harness.send([order_placed(order, ("sku", 2))])
        harness.wait_outcomes([order])
    harness.stock("sku", 7)  # a box of three dropped in the warehouse
    decisions = harness.wait_decisions(lambda ds: [d for d in ds if d["type"] == "StockShortfall"])
    (shortfall,) = [d for d in decisions if d["type"] == "StockShortfall"]
    assert shortfall == {
        "type": "StockShortfall",
        "product_id": "sku",
        "on_hand": 7,
        "reserved": 10,
        "at_risk": ["o4", "o3"],  # the newest reservations that cover the missing three
    }
    harness.send([order_placed("late", ("sku", 1))])
    decisions = harness.wait_outcomes(["late"])
    assert of(decisions, "OrderRejected", "late")[0]["reason"] == "insufficient_stock"
    assert_one_outcome_each(decisions, [*ids, "late"])
