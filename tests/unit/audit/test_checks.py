"""The auditor on hand-made topics: a clean run passes, and every seeded violation is caught at
the right offset (so the audit is known to be able to fail)."""

from __future__ import annotations

import json
import subprocess
import sys

from stockflow.audit import Position
from stockflow.testing.topics import Record

from audit_builders import DEAD, INVENTORY, ORDERS, RESERVATIONS, Topics, clean_run, only


def test_clean_run_passes_and_counts_duplicates() -> None:
    result = clean_run().audit(strict=True)
    assert result.ok, result.violations
    assert not result.pending
    assert result.counts["duplicates"] == {
        "ProductReserved": 1,
        "OrderReserved": 1,
        "StockAdjusted (repeated adjustment_id)": 1,
    }
    assert result.counts["inputs"]["OrderPlaced"] == 6
    assert result.counts["inputs"]["(invalid)"] == 1  # the bad StockSet counts as a StockSet
    assert result.counts["inputs"]["StockSet"] == 3
    assert result.counts["outputs"]["ProductReserved"] == 4
    assert result.counts["dead_letters"] == {"DeadLetter": 2}
    assert result.counts["accounting"] == {"decided": 9, "applied": 5, "dead_lettered": 2}
    assert json.loads(json.dumps(result.to_dict()))["ok"] is True


def test_a_second_different_outcome_is_caught() -> None:
    t = clean_run()
    second = t.rejected("o-1", "sku", 3, ts=1160)
    finding = only(t.audit(), "conflicting_outcome")
    assert finding.at == Position(RESERVATIONS, 0, second.offset)
    assert finding.order_id == "o-1"
    assert finding.related == (Position(RESERVATIONS, 0, 1),)


def test_an_oversell_is_caught() -> None:
    t = clean_run()
    t.place("o-7", ("sku", 3), ts=1410)
    # 7 received, 3 confirmed, o-5 holds 2: even if the recount to 2 was not applied yet, at
    # most 4 are on hand, and 2 + 3 are held.
    extra = t.reserved("o-7", "sku", 3, ts=1420)
    t.order_reserved("o-7", ("sku", 3), ts=1421)
    finding = only(t.audit(), "oversell")
    assert finding.at == Position(RESERVATIONS, 0, extra.offset)
    assert finding.product_id == "sku" and finding.order_id == "o-7"
    assert finding.details["held_after"] == 5 and finding.details["max_on_hand"] == 4


def test_a_lost_order_is_pending_then_a_violation_when_strict() -> None:
    t = clean_run()
    lost = t.place("o-8", ("sku", 1), ts=1700)
    lenient = t.audit()
    assert lenient.ok
    assert [(f.kind, f.order_id, f.at.offset) for f in lenient.pending] == [
        ("awaiting_outcome", "o-8", lost.offset)
    ]
    finding = only(t.audit(strict=True), "lost_order")
    assert finding.at == Position(ORDERS, 0, lost.offset)


def test_a_dead_letter_with_other_bytes_is_caught() -> None:
    t = clean_run()
    bad = t.add(ORDERS, b"{broken", ts=1800)
    letter = t.dead_letter(bad, ts=1810, value=b"{broke")
    finding = only(t.audit(), "dead_letter_bytes")
    assert finding.at == Position(DEAD, 0, letter.offset)
    assert finding.related == (Position(ORDERS, 0, bad.offset),)


def test_a_release_of_a_reservation_never_pending_is_caught() -> None:
    t = clean_run()
    release = t.closing("ReservationReleased", "o-3", "sku", 1, reason="compensation", ts=1260)
    finding = only(t.audit(), "release_without_reservation")
    assert finding.at == Position(RESERVATIONS, 0, release.offset)


def test_a_second_different_release_is_caught_and_an_identical_one_is_not() -> None:
    t = clean_run()
    t.closing("ReservationReleased", "o-2", "sku", 4, reason="cancelled", ts=1255)  # re-emission
    second = t.closing("ReservationReleased", "o-2", "sku", 4, reason="expired", ts=1256)
    result = t.audit()
    finding = only(result, "double_release")
    assert finding.at == Position(RESERVATIONS, 0, second.offset)
    assert result.counts["duplicates"]["ReservationReleased"] == 1


def test_an_outcome_without_an_order_is_caught() -> None:
    t = clean_run()
    orphan = t.rejected("ghost", "sku", 1, ts=1700)
    assert only(t.audit(), "orphan_outcome").at.offset == orphan.offset


def test_a_dead_letter_for_no_input_and_a_malformed_output_are_caught() -> None:
    t = clean_run()
    t.add(DEAD, {"type": "DeadLetter", "topic": ORDERS, "partition": 3, "offset": 99}, ts=1)
    t.out({"type": "Surprise"}, ts=1900)
    kinds = sorted(f.kind for f in t.audit().violations)
    assert kinds == ["dead_letter_without_input", "malformed_output"]


def test_an_input_neither_decided_nor_dead_lettered_is_unaccounted() -> None:
    t = clean_run()
    t.order_event("OrderPaid", "o-5", ts=1900)  # no confirmation, no failure
    t.add(INVENTORY, {"type": "StockSet"}, ts=1901)  # invalid and never dead-lettered
    result = t.audit(strict=True)
    assert sorted((f.kind, f.at.topic) for f in result.violations) == [
        ("unaccounted_input", INVENTORY),
        ("unaccounted_input", ORDERS),
    ]


def test_confirming_after_a_release_and_a_wrong_quantity_are_caught() -> None:
    t = clean_run()
    late = t.closing("ReservationConfirmed", "o-2", "sku", 4, ts=1260)
    short = t.closing("ReservationReleased", "o-5", "sku", 1, reason="expired", ts=1700)
    result = t.audit()
    assert {(f.kind, f.at.offset) for f in result.violations} == {
        ("confirm_after_release", late.offset),
        ("quantity_mismatch", short.offset),
    }


def two_line_order_paid() -> tuple[Topics, Record]:
    """A two-line order, reserved and paid; only its first line's confirmation published."""
    t = Topics()
    t.stock_set("a", 5, ts=1000)
    t.stock_set("b", 5, ts=1001)
    t.place("o-1", ("a", 1), ("b", 2), ts=1100)
    t.order_event("OrderPaid", "o-1", ts=1200)
    t.reserved("o-1", "a", 1, ts=1150)
    pending_b = t.reserved("o-1", "b", 2, ts=1151)
    t.order_reserved("o-1", ("a", 1), ("b", 2), ts=1152)
    t.closing("ReservationConfirmed", "o-1", "a", 1, ts=1250)
    return t, pending_b


def test_a_paid_order_with_a_line_left_pending_is_pending_then_a_violation_when_strict() -> None:
    # A soak lost a multi-line order's second Confirm: one line confirmed, the other pending
    # for good. Only the chaos run's own lifecycle check saw it; the audit exited 0.
    t, pending_b = two_line_order_paid()
    lenient = t.audit()
    assert lenient.ok
    assert [(f.kind, f.product_id, f.at) for f in lenient.pending] == [
        ("awaiting_confirmation", "b", Position(RESERVATIONS, 0, pending_b.offset))
    ]
    finding = only(t.audit(strict=True), "unconfirmed_line")
    assert finding.order_id == "o-1" and finding.product_id == "b"

    t.closing("ReservationConfirmed", "o-1", "b", 2, ts=1251)
    assert t.audit(strict=True).ok


def test_a_paid_order_with_a_line_released_is_partly_confirmed() -> None:
    t, _ = two_line_order_paid()
    release = t.closing("ReservationReleased", "o-1", "b", 2, reason="expired", ts=1251)
    finding = only(t.audit(), "partly_confirmed")
    assert finding.at == Position(RESERVATIONS, 0, release.offset)
    assert finding.product_id == "b" and finding.related == (Position(RESERVATIONS, 0, 3),)


def test_the_auditor_loads_none_of_the_worker_code() -> None:
    forbidden = (
        "stockflow.core",
        "stockflow.processing",
        "stockflow.models",
        "stockflow.agents",
        "stockflow.tables",
        "stockflow.application",
        "faust",
    )
    code = (
        "import sys, stockflow.audit, stockflow.cli.audit; "
        f"print(sorted(m for m in sys.modules if m.startswith({forbidden!r})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.strip() == "[]"
