"""The demo's summary: what each number counts, computed from the decisions alone.

Orders and units are different things: "reserved 96" counts orders, the stock table counts
units (an order holds 1-2 units of 1-2 products). Duplicates are counted twice, as orders sent
twice and as repeated outcome records, and the difference is explained: a duplicate of a cart
with several products is answered again once per product whose answer comes back after the
outcome, and an order can be answered again after a rebalance (at-least-once delivery). When
orders were refused ``insufficient_stock`` for a product that still has units left, the summary
says why: a quantity larger than what was left, units held then and given back later by a
rejected cart, or a cart whose other product ran out.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = [
    "DemoCounts",
    "LeftoverReasons",
    "count",
    "print_banner",
    "print_summary",
    "print_units",
]

OUTCOMES = frozenset({"OrderReserved", "OrderRejected"})


@dataclass(frozen=True)
class LeftoverReasons:
    """Why orders for a product were refused ``insufficient_stock`` while units are left."""

    product: str
    left: int
    refused_orders: int
    too_many: int
    """Asked for more units than were available at that moment (2 when 1 was left)."""
    held_then: int
    """Came when every unit was held; units came back later from rejected carts."""
    cart_short: int
    """This line was fine; another product of the cart ran out (all-or-nothing)."""
    given_back: int
    """Units of this product released by rejected carts (``compensation``)."""


@dataclass(frozen=True)
class DemoCounts:
    orders: int
    reserved: int
    rejected: Mapping[str, int]
    units_in_stock: int
    units_reserved: Mapping[str, int]
    sent_twice: int
    """Orders whose ``OrderPlaced`` was sent a second time."""
    answered_again: int
    """Orders sent twice whose outcome was emitted again (identically)."""
    repeated_records: int
    """Outcome records that repeat an earlier one, over all orders."""
    repeated_for_carts: int
    """Repeated records beyond one per duplicated order (carts answered once per product)."""
    repeated_unsent: int
    """Repeated records of orders sent once (re-processed after a rebalance)."""
    leftovers: list[LeftoverReasons] = field(default_factory=list)


def count(
    decisions: Iterable[Mapping[str, Any]], sent: Mapping[str, int], stock: Mapping[str, int]
) -> DemoCounts:
    """The summary's numbers from every record of the reservations topic, how many times each
    order id was sent, and the units each product was stocked with."""
    decisions = list(decisions)
    first: dict[str, Mapping[str, Any]] = {}
    copies: Counter[str] = Counter()
    given_back: Counter[str] = Counter()
    released: set[tuple[str, str]] = set()
    for decision in decisions:
        if decision["type"] in OUTCOMES:
            first.setdefault(decision["order_id"], decision)
            copies[decision["order_id"]] += 1
        elif decision["type"] == "ReservationReleased" and decision["reason"] == "compensation":
            once = (decision["order_id"], decision["product_id"])
            if once not in released:  # a duplicate re-emits its release too
                released.add(once)
                given_back[decision["product_id"]] += decision["quantity"]
    units: Counter[str] = Counter()
    for outcome in first.values():
        if outcome["type"] == "OrderReserved":
            for line in outcome["lines"]:
                units[line["product_id"]] += line["quantity"]
    twice = {order for order, times in sent.items() if times > 1}
    repeated = {order: n - 1 for order, n in copies.items() if n > 1}
    repeated_unsent = sum(n for order, n in repeated.items() if order not in twice)
    answered_again = sum(1 for order in twice if order in repeated)
    kinds = Counter(o["type"] for o in first.values())
    reasons = Counter(o["reason"] for o in first.values() if o["type"] == "OrderRejected")
    return DemoCounts(
        orders=len(sent),
        reserved=kinds["OrderReserved"],
        rejected=dict(sorted(reasons.items())),
        units_in_stock=sum(stock.values()),
        units_reserved={p: units[p] for p in stock},
        sent_twice=len(twice),
        answered_again=answered_again,
        repeated_records=sum(repeated.values()),
        repeated_for_carts=sum(repeated.values()) - repeated_unsent - answered_again,
        repeated_unsent=repeated_unsent,
        leftovers=_leftovers(first.values(), stock, units, given_back),
    )


def _leftovers(
    outcomes: Iterable[Mapping[str, Any]],
    stock: Mapping[str, int],
    units: Mapping[str, int],
    given_back: Mapping[str, int],
) -> list[LeftoverReasons]:
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    for outcome in outcomes:
        if outcome["type"] != "OrderRejected" or outcome["reason"] != "insufficient_stock":
            continue
        for line in outcome["lines"]:
            product = line["product_id"]
            if line["reason"] == "insufficient_stock":
                short = (line.get("available") or 0) > 0
                kinds[product]["too_many" if short else "held_then"] += 1
            elif line["reason"] == "compensated":
                kinds[product]["cart_short"] += 1
    result = []
    for product, units_stocked in stock.items():
        left = units_stocked - units.get(product, 0)
        refused = kinds.get(product)
        if left > 0 and refused:
            result.append(
                LeftoverReasons(
                    product=product,
                    left=left,
                    refused_orders=sum(refused.values()),
                    too_many=refused["too_many"],
                    held_then=refused["held_then"],
                    cart_short=refused["cart_short"],
                    given_back=given_back.get(product, 0),
                )
            )
    return result


def _say(console: Console, text: str) -> None:
    # Not a terminal (a pipe, a CI log): one line per sentence, never cut mid-phrase at 80
    # columns; the reader's viewer wraps. A terminal word-wraps at its own width.
    console.print(text, soft_wrap=not console.is_terminal, highlight=False)


def print_banner(
    console: Console,
    *,
    orders: int,
    stock: Mapping[str, int],
    duplicates: int,
    malformed: int,
    producers: int,
) -> None:
    """Three short lines (each under 80 columns for the demo's numbers)."""
    _say(
        console,
        f"flash sale: {orders} orders for {sum(stock.values())} units of {len(stock)} products, "
        f"from {producers} producers at once;",
    )
    _say(console, f"{duplicates} of the orders are sent twice (duplicates, as a retrying client);")
    _say(console, f"{malformed} malformed messages, for the dead-letter topic")


def print_summary(
    console: Console, counts: DemoCounts, *, dead_letters: int, seconds: float
) -> None:
    table = Table(title=f"{counts.orders} orders decided in {seconds:.1f} s", title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("counts")
    table.add_row("reserved", str(counts.reserved), "orders")
    for reason, number in counts.rejected.items():
        table.add_row(f"rejected: {reason}", str(number), "orders")
    table.add_row("sent twice (duplicates)", str(counts.sent_twice), "orders")
    table.add_row("  answered again, identically", str(counts.answered_again), "orders")
    table.add_row("  repeated outcome records", str(counts.repeated_records), "records")
    table.add_row("malformed, dead-lettered", str(dead_letters), "messages")
    console.print(table)
    for note in _duplicate_notes(counts):
        _say(console, note)


def print_units(console: Console, counts: DemoCounts) -> None:
    """The units line under the stock table, and why orders were refused where units are left."""
    total = sum(counts.units_reserved.values())
    _say(
        console,
        f"units: {total} of {counts.units_in_stock} reserved by {counts.reserved} orders "
        f"(an order holds 1-2 units of 1-2 products), {counts.units_in_stock - total} left",
    )
    for reasons in counts.leftovers:
        _say(console, _leftover_note(reasons))


def _duplicate_notes(counts: DemoCounts) -> list[str]:
    notes = []
    if counts.repeated_for_carts > 0:
        notes.append(
            f"{counts.repeated_records} repeated outcome records for {counts.sent_twice} "
            f"duplicates: a duplicate of a cart with several products is answered again once "
            f"per product whose answer comes back after the outcome "
            f"({counts.repeated_for_carts} more records). Every repeat is identical; "
            "consumers de-duplicate by order id."
        )
    if counts.repeated_unsent > 0:
        notes.append(
            f"{counts.repeated_unsent} outcome records repeat orders sent once: re-processed "
            "after a rebalance (at-least-once delivery), identical to the first."
        )
    if counts.answered_again < counts.sent_twice:
        notes.append(
            f"{counts.sent_twice - counts.answered_again} duplicates got no repeated outcome: "
            "check the worker log."
        )
    return notes


def _leftover_note(reasons: LeftoverReasons) -> str:
    parts = []
    if reasons.too_many:
        parts.append(f"{reasons.too_many} asked for more units than were left at that moment")
    if reasons.held_then:
        later = (
            f" ({_units(reasons.given_back)} came back later, released by carts rejected "
            "all-or-nothing)"
            if reasons.given_back
            else ""
        )
        parts.append(f"{reasons.held_then} came when none were available{later}")
    if reasons.cart_short:
        parts.append(f"{reasons.cart_short} were carts whose other product ran out")
    return (
        f"{reasons.product}: {_units(reasons.left)} left, yet {reasons.refused_orders} orders for "
        f"it were rejected insufficient_stock: " + "; ".join(parts) + "."
    )


def _units(number: int) -> str:
    return f"{number} unit" if number == 1 else f"{number} units"
