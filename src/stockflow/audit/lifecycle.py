"""The lifecycle check: each reservation is pending before it is confirmed or released, once.

Per ``(order_id, product_id)``, in the reservations topic's order (offset order: the worker keys
these events by order id, so they share a partition): ``ProductReserved`` first, then at most one
of ``ReservationConfirmed`` / ``ReservationReleased``, carrying the reserved quantity. Identical
repeats of a product event are re-emissions (counted as duplicates); different repeats and
closings without a pending reservation are violations.

Per order: a payment confirms every line its saga holds, and an expiry, a cancellation or a
compensation releases every one. An order with a confirmed line and a released one is
``partly_confirmed``; an order with a confirmed line and one still pending is
:attr:`LifecycleReport.unconfirmed` (a confirmation on its way, or lost: a violation when the
audit is strict).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from stockflow.audit.events import PRODUCT_EVENTS, Output
from stockflow.audit.findings import Finding
from stockflow.audit.movements import MoveKind, Movement

__all__ = ["LifecycleReport", "check_lifecycle"]

_CHECK = "lifecycle"


@dataclass(slots=True)
class LifecycleReport:
    findings: list[Finding] = field(default_factory=list)
    duplicates: Counter[str] = field(default_factory=Counter)
    movements: list[Movement] = field(default_factory=list)
    """The first emissions that changed a reservation's state: the stock check's input."""
    unconfirmed: list[Finding] = field(default_factory=list)
    """``awaiting_confirmation``: a line still pending in an order with a confirmed line."""


def check_lifecycle(outputs: Sequence[Output]) -> LifecycleReport:
    """``outputs`` in topic order (timestamp, partition, offset); other event types ignored."""
    lives: dict[tuple[str, str], list[Output]] = defaultdict(list)
    for output in outputs:
        if output.kind in PRODUCT_EVENTS:
            lives[(output.value["order_id"], output.value["product_id"])].append(output)
    report = LifecycleReport()
    orders: dict[str, list[_Life]] = defaultdict(list)
    for (order, product), events in lives.items():
        if len({e.record.partition for e in events}) == 1:
            events = sorted(events, key=lambda e: e.record.offset)
        life = _Life(order, product, report)
        life.run(events)
        orders[order].append(life)
    for order, lines in orders.items():
        if len(lines) > 1:
            _check_order(order, lines, report)
    return report


def _check_order(order: str, lines: list[_Life], report: LifecycleReport) -> None:
    """One payment confirms all of an order's lines; no other event closes some of them."""
    confirmed = next(
        (line.closing for line in lines if line.state == "confirmed" and line.closing), None
    )
    if confirmed is None:
        return
    product = confirmed.value["product_id"]
    for line in lines:
        if line.state == "released" and line.closing is not None:
            found, at, target = "released", line.closing, report.findings
            kind = "partly_confirmed"
        elif line.state == "pending" and line.reserved is not None:
            found, at, target = "still pending", line.reserved, report.unconfirmed
            kind = "awaiting_confirmation"
        else:
            continue
        target.append(
            Finding(
                check=_CHECK,
                kind=kind,
                message=f"{order}/{line.product}: {found}, while {product} was confirmed",
                at=at.at,
                order_id=order,
                product_id=line.product,
                related=(confirmed.at,),
            )
        )


class _Life:
    def __init__(self, order: str, product: str, report: LifecycleReport) -> None:
        self.order = order
        self.product = product
        self.report = report
        self.first: dict[str, Output] = {}
        self.state = "none"
        self.reserved: Output | None = None
        self.closing: Output | None = None
        """The event that confirmed or released the pending reservation."""

    def flag(self, kind: str, message: str, event: Output, *related: Output) -> None:
        self.report.findings.append(
            Finding(
                check=_CHECK,
                kind=kind,
                message=f"{self.order}/{self.product}: {message}",
                at=event.at,
                order_id=self.order,
                product_id=self.product,
                related=tuple(r.at for r in related),
            )
        )

    def run(self, events: Sequence[Output]) -> None:
        for event in events:
            earlier = self.first.get(event.kind)
            if earlier is None:
                self.first[event.kind] = event
                self.step(event)
            elif earlier.canon == event.canon:
                self.report.duplicates[event.kind] += 1
            elif event.kind == "ReservationReleased":
                self.flag("double_release", "released a second time, differently", event, earlier)
            else:
                self.flag(
                    "conflicting_duplicate", f"a different second {event.kind}", event, earlier
                )

    def step(self, event: Output) -> None:
        if event.kind == "ProductReserved":
            if self.state != "none":
                self.flag("reservation_after_close", f"reserved after being {self.state}", event)
                return
            self.state, self.reserved = "pending", event
            self.move(event, "reserve", event)
            return
        confirming = event.kind == "ReservationConfirmed"
        verb: MoveKind = "confirm" if confirming else "release"
        closed = "confirmed" if confirming else "released"
        if self.state == "none" or self.reserved is None:
            self.flag(f"{verb}_without_reservation", f"{closed} but never pending", event)
            self.state = closed
            return
        if self.state != "pending":
            other = self.first["ReservationReleased" if confirming else "ReservationConfirmed"]
            after = "release" if self.state == "released" else "confirm"
            self.flag(f"{verb}_after_{after}", f"{closed} after being {self.state}", event, other)
            return
        held, quantity = self.reserved.value["quantity"], event.value["quantity"]
        if quantity != held:
            self.flag(
                "quantity_mismatch", f"{closed} {quantity} of {held} reserved", event, self.reserved
            )
        self.state, self.closing = closed, event
        self.move(event, verb, self.reserved)

    def move(self, event: Output, kind: MoveKind, reserved: Output) -> None:
        self.report.movements.append(
            Movement(
                at=event.at,
                ts=event.record.timestamp_ms,
                product_id=self.product,
                order_id=self.order,
                kind=kind,
                quantity=reserved.value["quantity"],
                reserved_ts=reserved.record.timestamp_ms,
            )
        )
