"""Reading the contract's JSON with the standard library only (no models, no worker code).

The auditor deliberately does not reuse :mod:`stockflow.models`: it is an independent reading of
the public contract, so that a bug in the worker's decoding cannot hide itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from stockflow.audit.findings import Position
from stockflow.kafka import Record

__all__ = [
    "CLOSINGS",
    "OUTCOMES",
    "PRODUCT_EVENTS",
    "Output",
    "StockKind",
    "canonical",
    "load",
    "output_problem",
    "position",
    "stock_fields",
    "text",
    "whole",
]

OUTCOMES = ("OrderReserved", "OrderRejected")
PRODUCT_EVENTS = ("ProductReserved", "ReservationConfirmed", "ReservationReleased")
CLOSINGS = ("ReservationConfirmed", "ReservationReleased")
RELEASE_REASONS = ("cancelled", "expired", "compensation")

StockKind = Literal["set", "adjust"]

_ORDER = ("order_id",)
_PRODUCT_EVENT = ("order_id", "product_id")
_REQUIRED: dict[str, tuple[str, ...]] = {
    "ProductReserved": _PRODUCT_EVENT,
    "ReservationConfirmed": _PRODUCT_EVENT,
    "ReservationReleased": _PRODUCT_EVENT,
    "OrderReserved": _ORDER,
    "OrderRejected": _ORDER,
    "ReservationConfirmFailed": _ORDER,
    "OrderCancelIgnored": _ORDER,
    "StockShortfall": ("product_id",),
}


def position(record: Record) -> Position:
    return Position(record.topic, record.partition, record.offset)


@dataclass(frozen=True, slots=True)
class Output:
    """A well-formed output record (see :func:`output_problem`), its value and its content."""

    record: Record
    value: dict[str, Any]
    canon: str

    @property
    def kind(self) -> str:
        return str(self.value["type"])

    @property
    def at(self) -> Position:
        return position(self.record)


def load(value: bytes | None) -> dict[str, Any] | None:
    """The record value as a JSON object, or ``None`` when it is not one."""
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError):  # nesting deeper than json allows
        return None
    return parsed if isinstance(parsed, dict) else None


def canonical(value: Mapping[str, Any]) -> str:
    """A value's content as a comparable string (key order does not matter)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def text(value: Any) -> str | None:
    """A non-empty string field, else ``None``."""
    return value if isinstance(value, str) and value else None


def whole(value: Any) -> int | None:
    """An integer field (JSON booleans are not integers), else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def output_problem(value: Mapping[str, Any] | None) -> str | None:
    """Why an output record does not follow the contract, or ``None`` when it does (as far as
    the audit relies on it: the type and the fields the checks read)."""
    if value is None:
        return "not a JSON object"
    kind = value.get("type")
    if kind not in _REQUIRED:
        return f"unknown type {kind!r}"
    for name in _REQUIRED[kind]:
        if text(value.get(name)) is None:
            return f"{kind} without a valid {name}"
    if kind in PRODUCT_EVENTS:
        quantity = whole(value.get("quantity"))
        if quantity is None or quantity <= 0:
            return f"{kind} with quantity {value.get('quantity')!r}"
    if kind == "ReservationReleased" and value.get("reason") not in RELEASE_REASONS:
        return f"ReservationReleased with reason {value.get('reason')!r}"
    return None


def stock_fields(
    value: Mapping[str, Any] | None,
) -> tuple[StockKind, str, int, str | None] | None:
    """``(kind, product id, amount, adjustment id)`` of a well-formed ``StockSet`` (kind
    ``set``, amount = on hand) or ``StockAdjusted`` (kind ``adjust``, amount = delta)."""
    if value is None:
        return None
    product = text(value.get("product_id"))
    if product is None:
        return None
    if value.get("type") == "StockSet":
        on_hand = whole(value.get("on_hand"))
        return ("set", product, on_hand, None) if on_hand is not None and on_hand >= 0 else None
    if value.get("type") == "StockAdjusted":
        delta = whole(value.get("delta"))
        adjustment = text(value.get("adjustment_id"))
        if delta is None or adjustment is None:
            return None
        return ("adjust", product, delta, adjustment)
    return None
