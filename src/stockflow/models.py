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
part of the contract and may change between releases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, TypeAdapter

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

RejectionReason = Literal["insufficient_stock", "unknown_product", "invalid_order", "timeout"]
RefusalReason = Literal[
    "insufficient_stock", "unknown_product", "timeout", "compensated", "invalid_order"
]
ReleaseReason = Literal["cancelled", "expired", "compensation"]
Fulfilment = Literal["all_or_nothing", "partial"]
AnswerStatus = Literal["reserved", "refused", "confirmed", "released", "cancelled", "expired"]
"""``cancelled`` and ``expired`` report how a single-line order the product writer decides
(``Reserve.decides``) ended, as do ``confirmed`` for those orders."""


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

# --- internal commands --------------------------------------------------------------------------


class _Internal(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Reserve(_Internal):
    type: Literal["Reserve"] = "Reserve"
    order_id: str
    product_id: str
    quantity: int
    expires_at_ms: int
    reply_partition: int
    outcome: bool = False
    """The order has this one line: the product writer publishes its ``OrderReserved`` or
    ``OrderRejected`` itself (one hop fewer) and still answers the saga."""
    decides: bool = False
    """With ``outcome``: the product writer also decides the order's payment, cancellation and
    expiry (the desk forwards them as ``Confirm``/``Release`` with ``at_ms``), so a held
    reservation is not answered; a refusal still is."""


class Confirm(_Internal):
    type: Literal["Confirm"] = "Confirm"
    order_id: str
    product_id: str
    at_ms: int | None = None
    """Set when forwarded for a ``Reserve.decides`` order: the payment's own timestamp; the
    writer decides on the ledger entry (:func:`stockflow.core.single_line.pay_line`) and
    reports the end to ``reply_partition``."""
    reply_partition: int | None = None


class Release(_Internal):
    type: Literal["Release"] = "Release"
    order_id: str
    product_id: str
    reason: ReleaseReason
    at_ms: int | None = None
    """As :attr:`Confirm.at_ms`: a forwarded cancellation (``cancelled``) or expiry tick
    (``expired``)."""
    reply_partition: int | None = None


class SetStock(_Internal):
    """A StockSet forwarded from ``inventory``; ``source`` identifies the input record so that a
    redelivery is applied once while a new recount with the same number is applied again."""

    type: Literal["SetStock"] = "SetStock"
    product_id: str
    on_hand: int
    source: str


class AdjustStock(_Internal):
    type: Literal["AdjustStock"] = "AdjustStock"
    product_id: str
    delta: int
    adjustment_id: str


class FireTimers(_Internal):
    """Tick: fire this partition's timers due at ``now_ms``. Sent by each worker's scheduler into
    the partition it owns, so that timeouts are decided inside the single-writer stream."""

    type: Literal["FireTimers"] = "FireTimers"
    partition: int
    now_ms: int


class LineAnswer(_Internal):
    """A product writer's answer to a saga about one line."""

    type: Literal["LineAnswer"] = "LineAnswer"
    order_id: str
    product_id: str
    status: AnswerStatus
    quantity: int
    reason: RefusalReason | None = None
    available: int | None = None


StockCommand = Annotated[
    Reserve | Confirm | Release | SetStock | AdjustStock, Field(discriminator="type")
]


class ProductBatch(_Internal):
    """Several product commands for one partition in one record, in the order they were sent.

    A worker sends one batch per destination partition and step instead of one record per
    command: Faust's per-record machinery, not the decisions, bounds throughput."""

    type: Literal["ProductBatch"] = "ProductBatch"
    commands: list[StockCommand]


class ReplyBatch(_Internal):
    """Several line answers for one saga partition in one record."""

    type: Literal["ReplyBatch"] = "ReplyBatch"
    answers: list[LineAnswer]


ProductCommand = Annotated[
    Reserve | Confirm | Release | SetStock | AdjustStock | FireTimers | ProductBatch,
    Field(discriminator="type"),
]
ReplyCommand = Annotated[LineAnswer | FireTimers | ReplyBatch, Field(discriminator="type")]

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
PRODUCT_COMMAND_ADAPTER: TypeAdapter[
    Reserve | Confirm | Release | SetStock | AdjustStock | FireTimers | ProductBatch
] = TypeAdapter(ProductCommand)
REPLY_COMMAND_ADAPTER: TypeAdapter[LineAnswer | FireTimers | ReplyBatch] = TypeAdapter(ReplyCommand)
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
