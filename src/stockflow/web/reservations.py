"""A product's ledger entry for one order, as ``GET /stock/{product_id}?order={order_id}`` shows it.

A single-line order is decided by its product's writer (:mod:`stockflow.core.single_line`): until
the order desk hears how it ended, the order's state is the writer's ledger entry. The worker
answering ``GET /orders/{order_id}`` reads that entry from its own store when the product's
partition is there; otherwise it asks the worker owning it with this query and reads the
answer back into a :class:`~stockflow.core.stock.Reservation` (:func:`reservation_of`).
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from stockflow.core.stock import Reservation, ReservationStatus
from stockflow.models import iso_from_ms
from stockflow.reasons import RefusalReason, ReleaseReason

__all__ = ["ReservationState", "reservation_answer", "reservation_of"]


class ReservationState(BaseModel):
    """The ``reservation`` of a stock answer: one order's hold on the product."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    order_id: str
    quantity: int
    status: ReservationStatus
    """``pending`` (held), ``confirmed``, ``released`` or ``refused``."""
    release_reason: ReleaseReason | None = None
    refusal: RefusalReason | None = None
    available: int | None = None
    """For a refusal: the units available then."""
    expires_at: AwareDatetime
    finished_at: AwareDatetime | None = None


def reservation_answer(entry: Reservation) -> dict[str, Any]:
    """The JSON object of ``entry`` (what :class:`ReservationState` reads)."""
    finished = entry.finished_at_ms
    return {
        "order_id": entry.order_id,
        "quantity": entry.quantity,
        "status": entry.status,
        "release_reason": entry.release_reason,
        "refusal": entry.refusal,
        "available": entry.available,
        "expires_at": iso_from_ms(entry.expires_at_ms),
        "finished_at": None if finished is None else iso_from_ms(finished),
    }


def reservation_of(value: object, *, order_id: str, product_id: str) -> Reservation | None:
    """The ledger entry a peer's stock answer holds for ``order_id``, or ``None`` (none there,
    or an answer this version cannot read: the order is then shown as its desk knows it)."""
    if value is None:
        return None
    try:
        state = ReservationState.model_validate(value)
    except ValidationError:
        return None
    if state.order_id != order_id:
        return None
    finished = state.finished_at
    return Reservation(
        order_id,
        product_id,
        state.quantity,
        0,  # the sequence number: not shown, and nothing here reads it
        round(state.expires_at.timestamp() * 1000),
        state.status,
        state.release_reason,
        None if finished is None else round(finished.timestamp() * 1000),
        state.refusal,
        state.available,
    )
