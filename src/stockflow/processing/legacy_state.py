"""State written by versions before 0.x (pydantic-dumped JSON objects, ``{...}``), read back.

Each such record is validated by the pydantic model of its shape here, then copied field by
field into the core's dataclass. The shapes are written out rather than derived from the
dataclasses: a compiled build of the core (mypyc) erases their annotations (a union reads
back as ``type``) and lets no one but their own ``__init__`` fill them, so pydantic could
neither learn their types nor build them. A unit test holds each shape's fields, in order,
to its dataclass's. Rare by design: a table written by an older version is read once per
key, then written back in the compact form.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from stockflow.core.saga_state import Action, LineState, SagaStatus
from stockflow.core.stock import ReservationStatus, Stock
from stockflow.models import Fulfilment
from stockflow.reasons import RefusalReason, RejectionReason, ReleaseReason

__all__ = ["LEGACY_SHAPES", "decode_legacy"]

T = TypeVar("T")


class _Stock(BaseModel):
    on_hand: int
    reserved: int = 0
    next_seq: int = 0


class _StockRecord(BaseModel):
    stock: _Stock
    wal_key: str | None = None
    wal_value: str | None = None
    offset: int | None = None
    event_ms: int | None = None


class _Reservation(BaseModel):
    order_id: str
    product_id: str
    quantity: int
    seq: int
    expires_at_ms: int
    status: ReservationStatus = "pending"
    release_reason: ReleaseReason | None = None
    finished_at_ms: int | None = None
    refusal: RefusalReason | None = None
    available: int | None = None
    held_at: int | None = None


class _LineState(BaseModel):
    product_id: str
    quantity: int
    answer: Literal["pending", "reserved", "refused"] = "pending"
    reason: RefusalReason | None = None
    available: int | None = None
    action: Action = "reserve"
    release_reason: ReleaseReason | None = None


class _Saga(BaseModel):
    order_id: str
    lines: tuple[_LineState, ...]
    fulfilment: Fulfilment
    status: SagaStatus
    placed_at_ms: int
    deadline_ms: int
    expires_at_ms: int
    reply_partition: int
    rejection: RejectionReason | None = None
    pay_requested: bool = False
    cancel_requested: bool = False
    finished_at_ms: int | None = None
    placed_at: tuple[int, int] | None = None
    first_request: Literal["pay", "cancel"] | None = None
    product_decides: bool = False
    forwards: bool = False


LEGACY_SHAPES: dict[str, type[BaseModel]] = {
    "StockRecord": _StockRecord,
    "Reservation": _Reservation,
    "Saga": _Saga,
    "Stock": _Stock,
    "LineState": _LineState,
}
"""The shape of each dataclass a legacy record holds, by the dataclass's name."""

_NESTED: dict[type[BaseModel], type] = {_Stock: Stock, _LineState: LineState}


def decode_legacy(kind: type[T], raw: bytes) -> T:
    """``raw``, a JSON object pydantic once dumped from a ``kind`` (``StockRecord``,
    ``Reservation`` or ``Saga``), as a ``kind``. Raises pydantic's ``ValidationError`` when it
    is not one."""
    shape = LEGACY_SHAPES[kind.__name__].model_validate_json(raw)
    return kind(*_values(shape))


def _values(shape: BaseModel) -> list[Any]:
    return [_value(getattr(shape, name)) for name in type(shape).model_fields]


def _value(value: Any) -> Any:
    kind = _NESTED.get(type(value))
    if kind is not None:
        return kind(*_values(value))
    if type(value) is tuple:
        return tuple(_value(item) for item in value)
    return value
