"""Bytes in, bytes out: parsing inputs (or explaining why not), encoding outputs and state."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from stockflow.core.saga import Saga
from stockflow.core.stock import Reservation, Stock
from stockflow.models import DeadLetter
from stockflow.processing.records import Meta, Out

__all__ = [
    "ERROR_LIMIT",
    "StockRecord",
    "dead_letter",
    "decode_entry",
    "decode_saga",
    "decode_stock",
    "encode",
    "encode_entry",
    "encode_saga",
    "encode_stock",
    "parse",
]

ERROR_LIMIT = 2000
"""Longest error text kept in a dead letter (pydantic lists every failing field)."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StockRecord:
    """A product's counters plus a write-ahead copy of the other key written in the same step.

    A step that changes both the counters and a ledger entry (or a marker) writes the counters
    first. If a crash loses the second write, the next step for the product finds the copy here
    and repairs it; without it a redelivered reserve could not tell "applied" from "new".

    ``offset`` and ``event_ms`` say which input last changed the counters (its offset in the
    product-command partition and its timestamp) for the read model's freshness; ``None`` in
    state written before they existed.
    """

    stock: Stock
    wal_key: str | None = None
    wal_value: str | None = None
    offset: int | None = None
    event_ms: int | None = None


_STOCK = TypeAdapter(StockRecord)
_ENTRY = TypeAdapter(Reservation)
_SAGA = TypeAdapter(Saga)


def encode(model: BaseModel) -> bytes:
    """A public event or internal command as compact JSON."""
    return model.model_dump_json().encode()


def parse(adapter: TypeAdapter[T], raw: bytes | None) -> T | str:
    """The parsed model, or the reason it could not be parsed (for the dead-letter topic)."""
    if raw is None:
        return "record has no value (tombstone)"
    try:
        return adapter.validate_json(raw)
    except ValidationError as exc:
        return _explain(exc)


def _explain(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(item) for item in error["loc"]) or "value"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)[:ERROR_LIMIT]


def dead_letter(meta: Meta, raw: bytes | None, error: str) -> Out:
    letter = DeadLetter(
        topic=meta.topic,
        partition=meta.partition,
        offset=meta.offset,
        timestamp_ms=meta.timestamp_ms,
        key_b64=_b64(meta.key),
        value_b64=_b64(raw),
        error=error[:ERROR_LIMIT],
    )
    return Out(role="dead_letters", key=meta.key, value=encode(letter))


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def encode_stock(record: StockRecord) -> bytes:
    return _STOCK.dump_json(record)


def decode_stock(raw: bytes) -> StockRecord:
    return _STOCK.validate_json(raw)


def encode_entry(entry: Reservation) -> bytes:
    return _ENTRY.dump_json(entry)


def decode_entry(raw: bytes) -> Reservation:
    return _ENTRY.validate_json(raw)


def encode_saga(saga: Saga) -> bytes:
    return _SAGA.dump_json(saga)


def decode_saga(raw: bytes) -> Saga:
    return _SAGA.validate_json(raw)
