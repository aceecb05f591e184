"""One product's records: its counters (:class:`Stock`) and its reservation ledger entries
(:class:`Reservation`), as :mod:`stockflow.core.saga_state` holds an order's. The decisions
over them are in :mod:`stockflow.core.stock`, which re-exports both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stockflow.reasons import RefusalReason, ReleaseReason

__all__ = ["Reservation", "ReservationStatus", "Stock"]

ReservationStatus = Literal["pending", "confirmed", "released", "refused"]


# Not frozen, like the saga's records: a frozen dataclass sets each field through
# object.__setattr__ when it is built, several times the cost, and every decision builds one or
# two. The decisions never change a record in place; each builds the new one
# (python -m bench --only core, same session: bare reserve 546,848 -> 1,475,140/s,
# ProductWriter.handle 79,952 -> 92,558/s).
@dataclass(slots=True)
class Stock:
    """One product's counters. ``available = on_hand - reserved``; ``next_seq`` numbers
    reservations so that a shortfall can name the newest ones."""

    on_hand: int
    reserved: int = 0
    next_seq: int = 0

    # Written out for the compiled build (see processing.records.Meta).
    def __init__(self, on_hand: int, reserved: int = 0, next_seq: int = 0) -> None:
        self.on_hand = on_hand
        self.reserved = reserved
        self.next_seq = next_seq

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass(slots=True)
class Reservation:
    """One order's hold on one product: the reservation ledger entry."""

    order_id: str
    product_id: str
    quantity: int
    seq: int
    expires_at_ms: int
    status: ReservationStatus = "pending"
    release_reason: ReleaseReason | None = None
    finished_at_ms: int | None = None
    refusal: RefusalReason | None = None
    """Why a ``refused`` entry's Reserve was refused, and the units ``available`` then."""
    available: int | None = None
    held_at: int | None = None
    """Where the Reserve that made the entry stands in its product's command log (the product
    writer's :func:`~stockflow.processing.products.log_position`; ``None`` for an entry
    written before it was kept). A command that stands before it was decided when the entry
    did not exist, and is decided so again when it is redelivered after a crash."""

    # Written out for the compiled build (see processing.records.Meta).
    def __init__(
        self,
        order_id: str,
        product_id: str,
        quantity: int,
        seq: int,
        expires_at_ms: int,
        status: ReservationStatus = "pending",
        release_reason: ReleaseReason | None = None,
        finished_at_ms: int | None = None,
        refusal: RefusalReason | None = None,
        available: int | None = None,
        held_at: int | None = None,
    ) -> None:
        self.order_id = order_id
        self.product_id = product_id
        self.quantity = quantity
        self.seq = seq
        self.expires_at_ms = expires_at_ms
        self.status = status
        self.release_reason = release_reason
        self.finished_at_ms = finished_at_ms
        self.refusal = refusal
        self.available = available
        self.held_at = held_at
