"""The auditor on hand-made topics: a clean run passes, and every seeded violation is caught at
the right offset (so the audit is known to be able to fail)."""

from __future__ import annotations

import json
import subprocess
import sys

from stockflow.audit import Position

from audit_builders import DEAD, INVENTORY, ORDERS, RESERVATIONS, clean_run, only


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
