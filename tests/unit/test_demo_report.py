"""The demo's summary: orders vs units, duplicates vs repeated records, and why orders were
refused where units are left; rendered without mid-phrase wraps when not on a terminal."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from stockflow.demo_report import count, print_banner, print_summary, print_units

STOCK = {"p1": 5, "p2": 2}


def reserved(order: str, *lines: tuple[str, int]) -> dict[str, Any]:
    return {
        "type": "OrderReserved",
        "order_id": order,
        "lines": [{"product_id": p, "quantity": q} for p, q in lines],
        "expires_at": 1,
        "partial": False,
        "refused": [],
    }


def rejected(order: str, *lines: tuple[str, int, str, int | None]) -> dict[str, Any]:
    return {
        "type": "OrderRejected",
        "order_id": order,
        "reason": "insufficient_stock",
        "lines": [
            {"product_id": p, "quantity": q, "reason": r, "available": a} for p, q, r, a in lines
        ],
    }


def released(order: str, product: str, quantity: int) -> dict[str, Any]:
    return {
        "type": "ReservationReleased",
        "order_id": order,
        "product_id": product,
        "quantity": quantity,
        "reason": "compensation",
    }


def decisions() -> list[dict[str, Any]]:
    cart = reserved("cart", ("p1", 1), ("p2", 1))
    return [
        *[reserved("a", ("p1", 2))] * 2,  # sent twice, answered twice
        *[cart] * 3,  # a cart sent twice: answered again once per product
        *[reserved("u", ("p1", 1))] * 2,  # sent once, re-processed after a rebalance
        rejected("big", ("p2", 2, "insufficient_stock", 1)),  # wanted 2, 1 was left
        rejected("late", ("p1", 1, "insufficient_stock", 0)),  # came when all were held
        rejected("k", ("p2", 1, "insufficient_stock", 0), ("p1", 1, "compensated", None)),
        *[released("k", "p1", 1)] * 2,  # a release repeated by a duplicate counts once
    ]


SENT = {"a": 2, "cart": 2, "u": 1, "big": 1, "late": 1, "k": 1}


def test_orders_units_and_duplicates_are_counted_apart() -> None:
    counts = count(decisions(), SENT, STOCK)
    assert counts.orders == 6
    assert counts.reserved == 3
    assert dict(counts.rejected) == {"insufficient_stock": 3}
    assert counts.units_in_stock == 7
    assert dict(counts.units_reserved) == {"p1": 4, "p2": 1}
    assert counts.sent_twice == 2
    assert counts.answered_again == 2
    assert counts.repeated_records == 4  # a: 1, cart: 2, u: 1
    assert counts.repeated_for_carts == 1
    assert counts.repeated_unsent == 1


def test_why_orders_were_refused_where_units_are_left() -> None:
    counts = count(decisions(), SENT, STOCK)
    by_product = {r.product: r for r in counts.leftovers}
    assert set(by_product) == {"p1", "p2"}
    p1, p2 = by_product["p1"], by_product["p2"]
    assert (p1.left, p1.refused_orders, p1.held_then, p1.cart_short, p1.given_back) == (
        1,
        2,
        1,
        1,
        1,
    )
    assert (p2.left, p2.refused_orders, p2.too_many, p2.held_then) == (1, 2, 1, 1)


def test_no_leftover_note_when_nothing_is_left() -> None:
    counts = count(decisions(), SENT, {"p1": 4, "p2": 1})
    assert counts.leftovers == []


def render(width: int, *, terminal: bool = False) -> str:
    console = Console(file=io.StringIO(), width=width, force_terminal=terminal, color_system=None)
    counts = count(decisions(), SENT, STOCK)
    print_banner(console, orders=2000, stock=STOCK, duplicates=100, malformed=6, producers=4)
    print_summary(console, counts, dead_letters=6, seconds=1.5)
    print_units(console, counts)
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_the_summary_says_what_each_number_counts() -> None:
    text = render(80)
    assert "6 orders decided in 1.5 s" in text
    for row in (
        ("reserved", "3", "orders"),
        ("sent twice (duplicates)", "2", "orders"),
        ("answered again, identically", "2", "orders"),
        ("repeated outcome records", "4", "records"),
        ("malformed, dead-lettered", "6", "messages"),
    ):
        line = next(line for line in text.splitlines() if row[0] in line)
        assert row[1] in line and row[2] in line, line
    assert "a duplicate of a cart with several products is answered again once per product" in (
        text
    )
    assert "1 outcome records repeat orders sent once: re-processed after a rebalance" in text
    assert "units: 5 of 7 reserved by 3 orders" in text
    assert (
        "p1: 1 unit left, yet 2 orders for it were rejected insufficient_stock: 1 came when none "
        "were available (1 unit came back later, released by carts rejected all-or-nothing); "
        "1 were carts whose other product ran out." in text
    )
    assert (
        "p2: 1 unit left, yet 2 orders for it were rejected insufficient_stock: 1 asked for "
        "more units than were left at that moment; 1 came when none were available." in text
    )


def test_no_mid_phrase_wrap_when_not_a_terminal() -> None:
    lines = render(40).splitlines()
    assert "flash sale: 2000 orders for 7 units of 2 products, from 4 producers at once;" in lines
    assert "100 of the orders are sent twice (duplicates, as a retrying client);" in lines
    assert "6 malformed messages, for the dead-letter topic" in lines
    assert any(
        line.startswith("p1: 1 unit left, yet") and line.endswith("ran out.") for line in lines
    )


def test_banner_lines_fit_80_columns() -> None:
    banner = render(80, terminal=True).splitlines()[:3]
    assert banner[0].startswith("flash sale: 2000 orders")
    assert all(len(line) <= 80 for line in banner)
