"""A single-line order's payment, cancellation and expiry, decided on its ledger entry.

Step 1 of docs/design-single-line-at-product-writer.md: the decisions the product writer will
take for a single-line order once the order desk forwards its payment and cancellation and
the writer keeps its expiry timer, instead of the saga taking them on a copy of the writer's
answer. Not wired into the processors yet; tests/unit/test_single_line.py holds every
function here to the saga's own decisions (:mod:`stockflow.core.saga`) followed by the
writer's (:mod:`stockflow.core.stock`), over any history of payments, cancellations, expiry
ticks and their redeliveries: the same public events, the same counters, the same end state.

Why the entry is enough: it holds the quantity, the expiry, whether the units are held,
confirmed, released (and why) or were refused, and when it finished. The saga of a single-line
order holds nothing else that these decisions read. And the writer sees them in its
partition's log order, in which the order's ``Reserve`` comes first (the desk produced it
earlier, to the same partition), so "a payment before the answer" is not a state here. One
exception: after a crash that lost the ``Reserve``, the desk's expiry tick can be forwarded
before the redelivered placement sends it again. That tick finds no entry and does nothing
(the placement arms the timer again), and the product writer decides a redelivered command
against the entry as it stood at the command's place in the log
(:attr:`~stockflow.core.stock.Reservation.held_at`), so it does nothing again.

``at_ms`` is the payment's or cancellation's own timestamp (the input record's, as the saga
uses it), so a redelivery decides the same; ``now_ms`` is the timer tick's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Literal

from stockflow.core.saga_state import Saga, saga_with
from stockflow.core.stock import NOTHING as UNCHANGED
from stockflow.core.stock import Reservation, Stock, StockDecision, confirm, release
from stockflow.models import OrderCancelIgnored, ReservationConfirmFailed

__all__ = [
    "LineDecision",
    "LineEnd",
    "cancel_line",
    "ended_saga",
    "expire_line",
    "line_end",
    "pay_line",
    "seen_at_writer",
]

LineEnd = Literal["reserving", "reserved", "rejected", "confirmed", "cancelled", "expired"]
"""The saga status an entry stands for (:func:`line_end`)."""

OrderAnswer = ReservationConfirmFailed | OrderCancelIgnored


@dataclass(slots=True, frozen=True)
class LineDecision:
    """What a payment, cancellation or tick did to a single-line order: ``stock`` as the
    writer's other decisions (its entry event published when ``stock.emits``), and
    ``answers``, the order-level answers published before that event."""

    stock: StockDecision
    answers: tuple[OrderAnswer, ...] = ()


NOTHING = LineDecision(UNCHANGED)


def pay_line(
    stock: Stock | None,
    entry: Reservation | None,
    *,
    order_id: str,
    at_ms: int,
    pending: Callable[[], Iterable[Reservation]],
) -> LineDecision:
    """Payment: confirm the held units, unless the reservation had expired when it was made
    (then release them and say the payment failed), or it ended already."""
    if entry is None:
        # Forgotten after its retention (the desk forgets the saga no sooner), or never held.
        return _failed(order_id, "unknown_order")
    if entry.status == "pending":
        if at_ms < entry.expires_at_ms:
            return LineDecision(confirm(stock, entry, now_ms=at_ms, pending=pending))
        # Stamped after the expiry, whether or not the tick has run yet.
        expired = release(stock, entry, reason="expired", now_ms=at_ms)
        return LineDecision(expired, _failure(order_id, "expired"))
    if entry.status == "confirmed":
        # A duplicate: the confirmation again (the first may have been lost in a crash).
        return LineDecision(confirm(stock, entry, now_ms=at_ms, pending=pending))
    if entry.status == "refused" or entry.release_reason == "compensation":
        return _failed(order_id, "rejected")
    if entry.release_reason == "cancelled":
        return _failed(order_id, "cancelled")
    if entry.finished_at_ms == at_ms:
        # This very payment expired it and is being redelivered: the release again as well.
        return LineDecision(
            release(stock, entry, reason="expired", now_ms=at_ms), _failure(order_id, "expired")
        )
    return _failed(order_id, "expired")


def cancel_line(
    stock: Stock | None, entry: Reservation | None, *, order_id: str, at_ms: int
) -> LineDecision:
    """Cancellation: release the held units; after payment or an expiry it changes nothing.
    (As the saga: a cancellation stamped after the expiry still cancels a reservation the
    tick has not expired yet.)"""
    if entry is None:
        return LineDecision(
            UNCHANGED, (OrderCancelIgnored(order_id=order_id, reason="unknown_order"),)
        )
    if entry.status == "pending":
        return LineDecision(release(stock, entry, reason="cancelled", now_ms=at_ms))
    if entry.status == "confirmed":
        return _ignored(order_id, "already_confirmed")
    if entry.status == "released" and entry.release_reason == "cancelled":
        # A duplicate: the release again (the first may have been lost in a crash).
        return LineDecision(release(stock, entry, reason="cancelled", now_ms=at_ms))
    return _ignored(order_id, "already_released")


def expire_line(stock: Stock | None, entry: Reservation | None, *, now_ms: int) -> LineDecision:
    """The entry's expiry timer is due at the tick ``now_ms``: release held units whose time
    is up. A tick redelivered after a crash (the same ``now_ms``) releases again what it
    released; any other tick finding the entry ended does nothing."""
    if entry is None:
        return NOTHING
    if entry.status == "pending":
        if now_ms < entry.expires_at_ms:
            return NOTHING
        return LineDecision(release(stock, entry, reason="expired", now_ms=now_ms))
    if (
        entry.status == "released"
        and entry.release_reason == "expired"
        and entry.finished_at_ms == now_ms
    ):
        return LineDecision(release(stock, entry, reason="expired", now_ms=now_ms))
    return NOTHING


def line_end(entry: Reservation | None) -> LineEnd:
    """The saga status the entry stands for: what the order desk's read model says once the
    writer reports it."""
    if entry is None:
        return "reserving"
    if entry.status == "pending":
        return "reserved"
    if entry.status == "confirmed":
        return "confirmed"
    if entry.status == "refused" or entry.release_reason == "compensation":
        return "rejected"
    return "cancelled" if entry.release_reason == "cancelled" else "expired"


def seen_at_writer(saga: Saga, entry: Reservation | None) -> Saga:
    """A saga that forwards its order's decisions (``Saga.forwards``), as its product writer's
    ledger entry shows the order: held, refused, or ended before the desk heard of it. For
    the read model only (the desk decides nothing on it). The saga as it is when it does not
    forward, has heard how the order ended, or the entry is not there (not processed yet, or
    on another worker)."""
    if not saga.forwards or saga.status != "reserving" or entry is None:
        return saga
    line = saga.lines[0]
    if entry.order_id != saga.order_id or entry.product_id != line.product_id:
        return saga
    end = line_end(entry)
    if end == "reserved":
        return saga_with(saga, (replace(line, answer="reserved"),), "reserved")
    if end == "rejected":
        refused = replace(
            line, answer="refused", reason=entry.refusal, available=entry.available, action="none"
        )
        seen = saga_with(saga, (refused,), "rejected")
        seen.rejection = (
            "unknown_product" if entry.refusal == "unknown_product" else "insufficient_stock"
        )
    else:
        assert end == "confirmed" or end == "cancelled" or end == "expired"
        seen = ended_saga(saga, end)
    seen.finished_at_ms = entry.finished_at_ms
    return seen


def ended_saga(saga: Saga, end: Literal["confirmed", "cancelled", "expired"]) -> Saga:
    """A single-line saga as it stands once its order ended ``end``: its line reserved, then
    confirmed or released (a new record; the caller sets when it finished)."""
    line = saga.lines[0]
    if end == "confirmed":
        return saga_with(saga, (replace(line, answer="reserved", action="confirm"),), end)
    released = replace(line, answer="reserved", action="release", release_reason=end)
    return saga_with(saga, (released,), end)


def _failure(
    order_id: str, reason: Literal["expired", "cancelled", "rejected", "unknown_order"]
) -> tuple[OrderAnswer, ...]:
    return (ReservationConfirmFailed(order_id=order_id, reason=reason),)


def _failed(
    order_id: str, reason: Literal["expired", "cancelled", "rejected", "unknown_order"]
) -> LineDecision:
    return LineDecision(UNCHANGED, _failure(order_id, reason))


def _ignored(
    order_id: str, reason: Literal["already_confirmed", "already_released"]
) -> LineDecision:
    return LineDecision(UNCHANGED, (OrderCancelIgnored(order_id=order_id, reason=reason),))
