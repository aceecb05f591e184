"""A product event that changed a reservation's state, as the stock check and the merge of one
moment (:mod:`stockflow.audit.moment`) both read it: its own module, so that neither of the two
imports the other for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stockflow.audit.findings import Position

__all__ = ["MoveKind", "Movement"]

MoveKind = Literal["reserve", "confirm", "release"]


@dataclass(frozen=True, slots=True)
class Movement:
    """The first emission of a product event that changed a reservation's state.

    ``quantity`` is the reserved quantity; ``reserved_ts`` the timestamp of the reservation (for
    a ``reserve``, its own)."""

    at: Position
    ts: int
    product_id: str
    order_id: str
    kind: MoveKind
    quantity: int
    reserved_ts: int
