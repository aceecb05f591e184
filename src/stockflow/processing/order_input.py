"""Reading the public ``orders`` topic: the usual ``OrderPlaced`` as plain values, anything else
through the models.

Validating every order into :class:`~stockflow.models.OrderPlaced` (a discriminated union of
three models, each line a model of its own) was the largest single cost of a single-line order
in the processors (~10% of ``LocalPipeline``'s samples). The usual shape, an object with
``type``, ``order_id``, ``lines`` and at most ``fulfilment`` (``reservation_ttl`` absent or
``null``), is read with ``pydantic_core.from_json`` (the same JSON parser the models use) and
checked field by field against the models' strict constraints; it becomes a :class:`Placed` of
plain values. Everything else (any other key, a TTL, another event type, a value of another
type or out of range, bytes that are not a JSON object) goes through the models' full
validation, which either parses it or gives the dead-letter reason. So the fast path never
accepts what the models would refuse, nor reads what they accept differently: a property test
holds the two together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from pydantic_core import from_json

from stockflow.core.saga_state import LineState
from stockflow.models import (
    ORDER_EVENT_ADAPTER,
    Fulfilment,
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
)
from stockflow.processing.codec import KEYS_ONLY, parse

__all__ = ["OrderInput", "Placed", "parse_order"]

# The models' constraints (stockflow.models: Id, Quantity, OrderPlaced).
_ID_MAX: Final = 256
_QUANTITY_MAX: Final = 1_000_000_000
_FULFILMENTS: Final = frozenset({"all_or_nothing", "partial"})
_PLAIN_KEYS: Final = frozenset({"type", "order_id", "lines", "fulfilment", "reservation_ttl"})


@dataclass(slots=True)
class Placed:
    """An ``OrderPlaced`` read as plain values: what the order desk takes from the model.
    ``lines`` as the order listed them (not merged); no TTL of its own."""

    order_id: str
    lines: list[LineState]
    fulfilment: Fulfilment
    reservation_ttl: None = None

    # Written out for the compiled build (see processing.records.Meta).
    def __init__(
        self,
        order_id: str,
        lines: list[LineState],
        fulfilment: Fulfilment,
        reservation_ttl: None = None,
    ) -> None:
        self.order_id = order_id
        self.lines = lines
        self.fulfilment = fulfilment
        self.reservation_ttl = reservation_ttl


OrderInput = Placed | OrderPlaced | OrderPaid | OrderCancelled
"""What :func:`parse_order` reads a valid record as."""


def parse_order(raw: bytes | None) -> OrderInput | str:
    """The order event ``raw`` holds, or why it cannot be parsed (for the dead-letter topic)."""
    if raw is not None:
        placed = _plain_placed(raw)
        if placed is not None:
            return placed
    parsed: OrderInput | str = parse(ORDER_EVENT_ADAPTER, raw)
    return parsed


def _plain_placed(raw: bytes) -> Placed | None:
    """``raw`` as a :class:`Placed`, or ``None`` when it is not the usual shape (the models
    then decide)."""
    try:
        value: Any = from_json(raw, cache_strings=KEYS_ONLY)
    except ValueError:
        return None
    if value.__class__ is not dict or value.get("type") != "OrderPlaced":
        return None
    size = len(value)
    fulfilment: Any = "all_or_nothing"
    if size > 3:
        if size > 5 or not _PLAIN_KEYS.issuperset(value):
            return None
        if value.get("reservation_ttl", None) is not None:
            return None
        fulfilment = value.get("fulfilment", fulfilment)
        if fulfilment.__class__ is not str or fulfilment not in _FULFILMENTS:
            return None
    order_id: Any = value.get("order_id")
    lines: Any = value.get("lines")
    if (
        order_id.__class__ is not str
        or not 0 < len(order_id) <= _ID_MAX
        or lines.__class__ is not list
        or not lines
    ):
        return None
    plain: list[LineState] = []
    for line in lines:
        if line.__class__ is not dict:
            return None
        product_id: Any = line.get("product_id")
        quantity: Any = line.get("quantity")
        if (
            product_id.__class__ is not str
            or not 0 < len(product_id) <= _ID_MAX
            or quantity.__class__ is not int
            or not 0 < quantity <= _QUANTITY_MAX
        ):
            return None
        plain.append(LineState(product_id, quantity))
    return Placed(order_id, plain, fulfilment)
