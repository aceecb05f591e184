"""Matching answers on ``reservations`` to a checkout's calls: pure functions, no broker.

An order is identified by its id. Its *lines* are what the decision was made on: one quantity per
product, lines for the same product summed (as the saga merges them). The outcome of an order
names every line (``OrderReserved.lines`` plus ``refused``, or ``OrderRejected.lines``), so a
repeated ``place()`` can be checked against the first one even by a client that never saw it.

A payment is answered by one ``ReservationConfirmed`` per reserved line or by one
``ReservationConfirmFailed``; a cancellation by one ``ReservationReleased`` (reason
``cancelled``) per reserved line or by one ``OrderCancelIgnored``. :class:`Answers` collects
them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from stockflow.models import (
    OrderCancelIgnored,
    OrderLine,
    OrderRejected,
    OrderReserved,
    ReservationConfirmed,
    ReservationConfirmFailed,
    ReservationReleased,
)

__all__ = [
    "Action",
    "Answers",
    "CancelAnswer",
    "Outcome",
    "PayAnswer",
    "differences",
    "fulfilment_of",
    "merged",
    "outcome_lines",
    "reserved_products",
]

Outcome = OrderReserved | OrderRejected
PayAnswer = ReservationConfirmed | ReservationConfirmFailed
CancelAnswer = ReservationReleased | OrderCancelIgnored
Action = Literal["pay", "cancel"]


def merged(lines: Iterable[OrderLine]) -> dict[str, int]:
    """One quantity per product, in first-appearance order (what the saga decides on)."""
    totals: dict[str, int] = {}
    for line in lines:
        totals[line.product_id] = totals.get(line.product_id, 0) + line.quantity
    return totals


def outcome_lines(outcome: Outcome) -> dict[str, int]:
    """Every line the outcome was decided on, reserved or not."""
    if isinstance(outcome, OrderReserved):
        lines = {line.product_id: line.quantity for line in outcome.lines}
        lines.update({line.product_id: line.quantity for line in outcome.refused})
        return lines
    return {line.product_id: line.quantity for line in outcome.lines}


def fulfilment_of(outcome: Outcome) -> str | None:
    """The fulfilment an outcome proves, or ``None`` when it could be either: only a partial
    order is reserved with refused lines, and only an all-or-nothing one has lines rejected as
    ``compensated`` (given back because another line failed)."""
    if isinstance(outcome, OrderReserved):
        return "partial" if outcome.refused else None
    if any(line.reason == "compensated" for line in outcome.lines):
        return "all_or_nothing"
    return None


def differences(
    asked: Mapping[str, int],
    placed: Mapping[str, int],
    *,
    asked_fulfilment: str | None = None,
    placed_fulfilment: str | None = None,
) -> list[str]:
    """What differs between the lines asked now and the lines the order was placed with,
    one sentence per product (empty: the same order). Fulfilment is compared when both are
    known."""
    found = []
    for product, quantity in placed.items():
        if product not in asked:
            found.append(f"{product}: quantity {quantity} placed, not asked now")
        elif asked[product] != quantity:
            found.append(f"{product}: quantity {quantity} placed, {asked[product]} asked now")
    found.extend(
        f"{product}: not placed, quantity {quantity} asked now"
        for product, quantity in asked.items()
        if product not in placed
    )
    if asked_fulfilment and placed_fulfilment and asked_fulfilment != placed_fulfilment:
        found.append(f"fulfilment {placed_fulfilment} placed, {asked_fulfilment} asked now")
    return found


def reserved_products(outcome: Outcome) -> frozenset[str]:
    """The products a payment confirms or a cancellation releases."""
    if isinstance(outcome, OrderReserved):
        return frozenset(line.product_id for line in outcome.lines)
    return frozenset()


@dataclass
class Answers:
    """The answers to one payment or cancellation, as they arrive.

    ``expected`` are the products whose confirmation (or release) completes the answer, known
    from the order's outcome; ``None`` while the outcome is unknown, then :meth:`settled` decides
    after a quiet period instead. A failure (``ReservationConfirmFailed``, ``OrderCancelIgnored``)
    completes it at once.
    """

    action: Action
    expected: frozenset[str] | None = None
    events: list[PayAnswer | CancelAnswer] = field(default_factory=list)
    failed: bool = False

    def feed(self, event: object) -> bool:
        """Take one event of the order; True when the answer is complete."""
        if isinstance(event, OrderReserved | OrderRejected):
            self.expected = reserved_products(event)  # the outcome came with a deferred request
        elif self._is_failure(event):
            self.events.append(event)  # type: ignore[arg-type]
            self.failed = True
        elif self._is_line_answer(event):
            self._add(event)  # type: ignore[arg-type]
        return self.complete

    def _is_failure(self, event: object) -> bool:
        if self.action == "pay":
            return isinstance(event, ReservationConfirmFailed)
        return isinstance(event, OrderCancelIgnored)

    def _is_line_answer(self, event: object) -> bool:
        if self.action == "pay":
            return isinstance(event, ReservationConfirmed)
        # Releases for other reasons (expiry, compensation) do not answer a cancellation.
        return isinstance(event, ReservationReleased) and event.reason == "cancelled"

    def _add(self, event: PayAnswer | CancelAnswer) -> None:
        # A re-emission (a duplicated request, a crash) repeats an event: keep one per product.
        product = getattr(event, "product_id", None)
        if all(getattr(seen, "product_id", None) != product for seen in self.events):
            self.events.append(event)

    @property
    def products(self) -> frozenset[str]:
        return frozenset(getattr(event, "product_id", "") for event in self.events) - {""}

    @property
    def complete(self) -> bool:
        if self.failed:
            return True
        return bool(self.expected) and self.expected is not None and self.expected <= self.products

    @property
    def settled(self) -> bool:
        """Complete, or (outcome unknown) at least one line answered: the caller then waits a
        quiet period for the rest."""
        return self.complete or (self.expected is None and bool(self.events))
