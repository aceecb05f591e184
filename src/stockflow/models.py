"""The public event contract (JSON, one object per Kafka record) and stockflow's internal commands.

Input topics
    ``orders`` (key = order id): :class:`OrderPlaced`, :class:`OrderPaid`, :class:`OrderCancelled`.
    ``inventory`` (key = product id): :class:`StockSet`, :class:`StockAdjusted`.
Output topics
    ``reservations`` (key = order id; :class:`StockShortfall` is keyed by product id):
    :class:`ProductReserved`, :class:`OrderReserved`, :class:`OrderRejected`,
    :class:`ReservationConfirmed`, :class:`ReservationReleased`, :class:`ReservationConfirmFailed`,
    :class:`OrderCancelIgnored`, :class:`StockShortfall`.
    ``stockflow-dead-letters``: :class:`DeadLetter`.

Every event carries a ``type`` discriminator. Extra fields on inputs are allowed and ignored.
Internal commands (topics ``{app_id}-product-commands`` and ``{app_id}-order-replies``) are not
part of the contract and may change between releases; they live in :mod:`stockflow.commands`,
the reason codes in :mod:`stockflow.reasons`, and both are re-exported here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, TypeAdapter

from stockflow.commands import (
    AdjustStock,
    AnswerStatus,
    Confirm,
    FireTimers,
    LineAnswer,
    ProductBatch,
    ProductCommand,
    Release,
    ReplyBatch,
    ReplyCommand,
    Reserve,
    SetStock,
    StockCommand,
)
from stockflow.reasons import RefusalReason, RejectionReason, ReleaseReason

__all__ = [
    "INPUT_EVENT_TYPES",
    "OUTPUT_EVENT_TYPES",
    "AdjustStock",
    "AnswerStatus",
    "Confirm",
    "DeadLetter",
    "Event",
    "FireTimers",
    "Fulfilment",
    "InventoryEvent",
    "LineAnswer",
    "LineRefusal",
    "OrderCancelIgnored",
    "OrderCancelled",
    "OrderEvent",
    "OrderLine",
    "OrderPaid",
    "OrderPlaced",
    "OrderRejected",
    "OrderReserved",
    "OutputEvent",
    "ProductBatch",
    "ProductCommand",
    "ProductReserved",
    "RefusalReason",
    "RejectionReason",
    "Release",
    "ReleaseReason",
    "ReplyBatch",
    "ReplyCommand",
    "ReservationConfirmFailed",
    "ReservationConfirmed",
    "ReservationReleased",
    "Reserve",
    "SetStock",
    "StockAdjusted",
    "StockCommand",
    "StockSet",
    "StockShortfall",
    "iso_from_ms",
]

Id = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Quantity = Annotated[StrictInt, Field(gt=0, le=1_000_000_000)]
Count = Annotated[StrictInt, Field(ge=0, le=1_000_000_000_000)]

Fulfilment = Literal["all_or_nothing", "partial"]


class _Input(BaseModel):
    """Inputs accept unknown fields (producers may add their own) but never coerce types."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class _Output(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- inputs: orders ------------------------------------------------------------------------


class OrderLine(_Input):
    product_id: Id
    quantity: Quantity


class OrderPlaced(_Input):
    """A customer's order. ``lines`` are reserved all-or-nothing unless ``fulfilment="partial"``.

    Example: ``{"type": "OrderPlaced", "order_id": "o-1", "lines": [{"product_id": "sku-1",
    "quantity": 2}]}``
    """

    type: Literal["OrderPlaced"]
    order_id: Id
    lines: Annotated[list[OrderLine], Field(min_length=1)]
    fulfilment: Fulfilment = "all_or_nothing"
    reservation_ttl: Annotated[float, Field(gt=0, le=365 * 24 * 3600)] | None = None
    """Seconds; may only shorten the configured TTL."""


class OrderPaid(_Input):
    """Payment captured: confirm every reservation of the order."""

    type: Literal["OrderPaid"]
    order_id: Id


class OrderCancelled(_Input):
    """The customer walked away: release every reservation of the order."""

    type: Literal["OrderCancelled"]
    order_id: Id
    reason: Annotated[str, StringConstraints(max_length=1024)] | None = None


OrderEvent = Annotated[OrderPlaced | OrderPaid | OrderCancelled, Field(discriminator="type")]


# --- inputs: inventory -----------------------------------------------------------------------


class StockSet(_Input):
    """Absolute count from a warehouse recount."""

    type: Literal["StockSet"]
    product_id: Id
    on_hand: Count


class StockAdjusted(_Input):
    """Relative change (receipt, damage), applied once per ``adjustment_id``."""

    type: Literal["StockAdjusted"]
    product_id: Id
    delta: Annotated[StrictInt, Field(ge=-1_000_000_000_000, le=1_000_000_000_000)]
    adjustment_id: Id


InventoryEvent = Annotated[StockSet | StockAdjusted, Field(discriminator="type")]


# --- outputs ------------------------------------------------------------------------------------


class ProductReserved(_Output):
    """One line's units are held for the order until ``expires_at`` (UTC, ISO 8601)."""

    type: Literal["ProductReserved"] = "ProductReserved"
    order_id: str
    product_id: str
    quantity: int
    expires_at: str


class ReservedLine(_Output):
    product_id: str
    quantity: int


class LineRefusal(_Output):
    """Why one line of an order was not reserved; ``available`` is the stock seen at decision."""

    product_id: str
    quantity: int
    reason: RefusalReason
    available: int | None = None


class OrderReserved(_Output):
    """The order-level outcome when its lines are held. ``partial`` orders list refused lines."""

    type: Literal["OrderReserved"] = "OrderReserved"
    order_id: str
    lines: list[ReservedLine]
    expires_at: str
    partial: bool = False
    refused: list[LineRefusal] = Field(default_factory=list)


class OrderRejected(_Output):
    """The order-level outcome when nothing is held for the order."""

    type: Literal["OrderRejected"] = "OrderRejected"
    order_id: str
    reason: RejectionReason
    lines: list[LineRefusal]


class ReservationConfirmed(_Output):
    """Paid: the units left stock (``on_hand`` and ``reserved`` both went down)."""

    type: Literal["ReservationConfirmed"] = "ReservationConfirmed"
    order_id: str
    product_id: str
    quantity: int


class ReservationReleased(_Output):
    """The units are available again (cancelled, expired, or compensation of a failed saga)."""

    type: Literal["ReservationReleased"] = "ReservationReleased"
    order_id: str
    product_id: str
    quantity: int
    reason: ReleaseReason


class ReservationConfirmFailed(_Output):
    """An ``OrderPaid`` that could not be applied; the payment must be refunded."""

    type: Literal["ReservationConfirmFailed"] = "ReservationConfirmFailed"
    order_id: str
    reason: Literal["expired", "cancelled", "rejected", "unknown_order"]


class OrderCancelIgnored(_Output):
    """An ``OrderCancelled`` that changed nothing, and why."""

    type: Literal["OrderCancelIgnored"] = "OrderCancelIgnored"
    order_id: str
    reason: Literal["already_confirmed", "already_released", "unknown_order"]


class StockShortfall(_Output):
    """Stock fell below what is promised: ``at_risk`` names the newest pending reservations
    (order ids) that can no longer all be honoured. New orders are refused until it is covered."""

    type: Literal["StockShortfall"] = "StockShortfall"
    product_id: str
    on_hand: int
    reserved: int
    at_risk: list[str]


class DeadLetter(_Output):
    """An input that could not be parsed or validated, with its original bytes (base64)."""

    type: Literal["DeadLetter"] = "DeadLetter"
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key_b64: str | None
    value_b64: str | None
    error: str


OutputEvent = Annotated[
    ProductReserved
    | OrderReserved
    | OrderRejected
    | ReservationConfirmed
    | ReservationReleased
    | ReservationConfirmFailed
    | OrderCancelIgnored
    | StockShortfall,
    Field(discriminator="type"),
]

Event = OrderPlaced | OrderPaid | OrderCancelled | StockSet | StockAdjusted

INPUT_EVENT_TYPES: tuple[type[BaseModel], ...] = (
    OrderPlaced,
    OrderPaid,
    OrderCancelled,
    StockSet,
    StockAdjusted,
)
OUTPUT_EVENT_TYPES: tuple[type[BaseModel], ...] = (
    ProductReserved,
    OrderReserved,
    OrderRejected,
    ReservationConfirmed,
    ReservationReleased,
    ReservationConfirmFailed,
    OrderCancelIgnored,
    StockShortfall,
    DeadLetter,
)

ORDER_EVENT_ADAPTER: TypeAdapter[OrderPlaced | OrderPaid | OrderCancelled] = TypeAdapter(OrderEvent)
INVENTORY_EVENT_ADAPTER: TypeAdapter[StockSet | StockAdjusted] = TypeAdapter(InventoryEvent)
OUTPUT_EVENT_ADAPTER: TypeAdapter[object] = TypeAdapter(OutputEvent)


_last_iso: tuple[int | None, str] = (None, "")
"""The last conversion: a reservation's hold and its order's outcome carry the same expiry, one
after the other. One tuple, replaced whole, so a reader in another thread sees a matching pair."""


def iso_from_ms(epoch_ms: int) -> str:
    """UTC ISO 8601 with millisecond precision, e.g. ``2026-11-25T09:00:00.000Z``."""
    global _last_iso
    last = _last_iso
    if last[0] == epoch_ms:
        return last[1]
    seconds, millis = divmod(epoch_ms, 1000)
    text = f"{_iso_seconds(seconds)}.{millis:03d}Z"
    _last_iso = (epoch_ms, text)
    return text


@lru_cache(maxsize=4096)
def _iso_seconds(epoch_s: int) -> str:
    # Reservations made in the same second share it: formatting dates was a tenth of a reserve.
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
