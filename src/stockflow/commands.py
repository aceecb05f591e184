"""stockflow's internal commands, on topics ``{app_id}-product-commands`` (stock commands and
timer ticks for the product writers) and ``{app_id}-order-replies`` (line answers and timer
ticks for the sagas).

They are not part of the public event contract (:mod:`stockflow.models`) and may change between
releases; they have their own module so that the contract reads apart from them.
:mod:`stockflow.models` re-exports them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from stockflow.reasons import RefusalReason, ReleaseReason

__all__ = [
    "PRODUCT_COMMAND_ADAPTER",
    "REPLY_COMMAND_ADAPTER",
    "AdjustStock",
    "AnswerStatus",
    "Confirm",
    "FireTimers",
    "LineAnswer",
    "ProductBatch",
    "ProductCommand",
    "Release",
    "ReplyBatch",
    "ReplyCommand",
    "Reserve",
    "SetStock",
    "StockCommand",
]

AnswerStatus = Literal["reserved", "refused", "confirmed", "released", "cancelled", "expired"]
"""``cancelled`` and ``expired`` report how a single-line order the product writer decides
(``Reserve.decides``) ended, as do ``confirmed`` for those orders."""


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

PRODUCT_COMMAND_ADAPTER: TypeAdapter[
    Reserve | Confirm | Release | SetStock | AdjustStock | FireTimers | ProductBatch
] = TypeAdapter(ProductCommand)
REPLY_COMMAND_ADAPTER: TypeAdapter[LineAnswer | FireTimers | ReplyBatch] = TypeAdapter(ReplyCommand)
