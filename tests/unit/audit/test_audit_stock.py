"""The stock check on hand-made topics: sound under consumer lag (no false oversell), strict
where causality decides (stock stamped after a decision cannot explain it)."""

from __future__ import annotations

from typing import Any

import pytest

from audit_builders import Topics, clean_run, stock_case, stock_kinds


def test_a_lagging_recount_is_not_an_oversell() -> None:
    # The recount to 5 is stamped before the reservation, but the worker may not have applied
    # it yet: 8 of the 10 counted before are legitimately held.
    t = stock_case(("set", "p", 10, 100), ("set", "p", 5, 150), ("reserve", "a", "p", 8, 200))
    assert stock_kinds(t) == []


def test_stock_stamped_after_the_decision_cannot_explain_it() -> None:
    t = stock_case(("reserve", "a", "p", 5, 200), ("set", "p", 10, 300))
    assert stock_kinds(t) == ["oversell"]
    assert stock_kinds(t, clock_skew_ms=150) == []


def test_confirmed_units_have_left_the_stock() -> None:
    t = stock_case(
        ("set", "p", 5, 100),
        ("reserve", "a", "p", 5, 200),
        ("confirm", "a", "p", 5, 300),
        ("reserve", "b", "p", 1, 400),
    )
    assert stock_kinds(t) == ["oversell"]


def test_released_units_are_available_again_even_in_the_same_millisecond() -> None:
    t = stock_case(
        ("set", "p", 5, 100),
        ("reserve", "a", "p", 5, 200),
        ("reserve", "b", "p", 5, 300),  # same ms as the release: the release came first
        ("release", "a", "p", 5, 300),
    )
    assert stock_kinds(t) == []


def test_a_loss_stops_at_zero_like_the_contract_says() -> None:
    t = stock_case(
        ("set", "p", 5, 100),
        ("adjust", "p", -10, "loss", 110),
        ("adjust", "p", 3, "receipt", 120),
        ("reserve", "a", "p", 3, 200),
    )
    # With every event applied (max lag 50 ms), on hand is 0 + 3, not 5 - 10 + 3.
    assert stock_kinds(t, max_lag_ms=50) == []
    t.reserved("b", "p", 1, ts=300)
    assert stock_kinds(t, max_lag_ms=50) == ["oversell"]
    assert stock_kinds(t) == []  # without the assumption, the loss may still be unapplied


def test_more_held_than_ever_received_is_an_oversell_after_one_report() -> None:
    t = stock_case(
        ("adjust", "p", 2, "r1", 100),
        ("reserve", "a", "p", 2, 200),
        ("reserve", "b", "p", 1, 300),
        ("release", "b", "p", 1, 400),
        ("reserve", "c", "p", 1, 500),
    )
    # b is reported once and left out of the model; c is the same oversell again.
    assert stock_kinds(t) == ["oversell", "oversell"]


def test_a_removal_below_the_held_units_needs_a_reported_shortfall() -> None:
    steps: list[tuple[Any, ...]] = [
        ("set", "p", 10, 100),
        ("reserve", "a", "p", 8, 200),
        ("adjust", "p", -5, "loss", 300),
        ("adjust", "p", 10, "receipt", 400),
        ("reserve", "b", "p", 6, 500),  # needs the receipt, so the loss was applied before it
    ]
    assert stock_kinds(stock_case(*steps)) == ["unreported_shortfall"]
    assert stock_kinds(stock_case(*steps, ("shortfall", "p", 301))) == []


def test_max_lag_enforces_removals_without_later_evidence() -> None:
    steps: list[tuple[Any, ...]] = [
        ("set", "p", 10, 100),
        ("reserve", "a", "p", 8, 200),
        ("set", "p", 5, 300),
        ("confirm", "a", "p", 8, 5000),
    ]
    assert stock_kinds(stock_case(*steps)) == []
    assert stock_kinds(stock_case(*steps), max_lag_ms=1000) == ["unreported_shortfall"]
    assert stock_kinds(stock_case(*steps, ("shortfall", "p", 310)), max_lag_ms=1000) == []


def test_an_unknown_product_cannot_be_reserved() -> None:
    assert stock_kinds(stock_case(("reserve", "a", "nothing", 1, 100))) == ["oversell"]


@pytest.mark.parametrize("skew", [0, 50])
def test_the_clean_run_passes_with_any_skew(skew: int) -> None:
    assert clean_run().audit(clock_skew_ms=skew, strict=True).ok


def _one_millisecond(*outputs: tuple[str, str, int]) -> Topics:
    """5 units of p, then one batch stamped with one millisecond: ``(kind, order, partition)``
    per output, 3 units each, on that partition of the output topic."""
    t = Topics()
    t.stock_set("p", 5, ts=100)
    for kind, order, partition in outputs:
        value = {"type": kind, "order_id": order, "product_id": "p", "quantity": 3}
        extra = {"expires_at": "2030-01-01T00:00:00.000Z"} if kind == "ProductReserved" else {}
        if kind == "ReservationReleased":
            extra = {"reason": "compensation"}
        t.out({**value, **extra}, ts=200, partition=partition)
    return t


def _stock_findings(t: Topics) -> list[str]:
    return [f.kind for f in t.audit().violations if f.check == "stock"]


def test_a_cart_reserved_and_released_in_one_batch_held_its_units_only_in_between() -> None:
    # The worker reserved b, released it (its other line was refused), then reserved a: 3 of 5
    # held at most. Across partitions the topics do not say which came first; one order that
    # each partition allows explains it, so it is no oversell.
    a, b = ("ProductReserved", "a", 0), ("ProductReserved", "b", 1)
    assert _stock_findings(_one_millisecond(a, b, ("ReservationReleased", "b", 1))) == []
    # Without the release both are held at once: 6 of 5, whatever the order.
    assert _stock_findings(_one_millisecond(a, b)) == ["oversell"]


def test_the_order_within_one_partition_is_kept_when_a_moment_is_merged() -> None:
    # On partition 1 the worker reserved b before c and released c only after: b and c were
    # held together (6 of 5) before the release, which no merge of partitions can undo.
    t = _one_millisecond(
        ("ProductReserved", "b", 1), ("ProductReserved", "c", 1), ("ReservationReleased", "c", 1)
    )
    assert _stock_findings(t) == ["oversell"]
