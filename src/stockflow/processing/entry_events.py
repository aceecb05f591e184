"""What a ledger entry publishes, encoded from byte templates: its public event, its order's
outcome (a single-line order its writer decides), its saga's line answer.

Byte for byte what the models dump (property tests in ``tests/unit/test_output_encoders.py``
hold them together), without building a model: these are written for nearly every command.
"""

from __future__ import annotations

from typing import Final

from pydantic_core import to_json

from stockflow.core.single_line import line_end
from stockflow.core.stock import Reservation
from stockflow.models import iso_from_ms

__all__ = [
    "encode_answer",
    "encode_end",
    "encode_entry_event",
    "encode_new_hold",
    "encode_outcome",
    "encode_reserved",
]

_NULL: Final = b"null"
_PRODUCT_RESERVED: Final = (
    b'{"type":"ProductReserved","order_id":%b,"product_id":%b,"quantity":%d,"expires_at":"%b"}'
)
"""ProductReserved: order id, product id (both JSON strings), quantity, expiry (ISO text)."""
_ORDER_RESERVED: Final = (
    b'{"type":"OrderReserved","order_id":%b,"lines":[{"product_id":%b,"quantity":%d}],'
    b'"expires_at":"%b","partial":false,"refused":[]}'
)
"""A single-line order's OrderReserved, filled as :data:`_PRODUCT_RESERVED`."""
_LINE_RESERVED: Final = (
    b'{"type":"LineAnswer","order_id":%b,"product_id":%b,"status":"reserved","quantity":%d,'
    b'"reason":null,"available":null}'
)
"""A held line's answer to its saga: order id, product id (JSON strings), quantity."""


def _held(
    order_id: str, product_id: str, quantity: int, expires_at_ms: int
) -> tuple[bytes, bytes, int, bytes]:
    """The fields of :data:`_PRODUCT_RESERVED` and :data:`_ORDER_RESERVED`, encoded once."""
    return to_json(order_id), to_json(product_id), quantity, iso_from_ms(expires_at_ms).encode()


def encode_entry_event(entry: Reservation) -> bytes:
    """The public event a ledger entry stands for (:func:`stockflow.core.stock.entry_event`),
    byte for byte what the model would dump."""
    if entry.status == "confirmed":
        return b'{"type":"ReservationConfirmed","order_id":%b,"product_id":%b,"quantity":%d}' % (
            to_json(entry.order_id),
            to_json(entry.product_id),
            entry.quantity,
        )
    if entry.status == "released":
        return (
            b'{"type":"ReservationReleased","order_id":%b,"product_id":%b,"quantity":%d,'
            b'"reason":%b}'
            % (
                to_json(entry.order_id),
                to_json(entry.product_id),
                entry.quantity,
                to_json(entry.release_reason),
            )
        )
    return _PRODUCT_RESERVED % _held(
        entry.order_id, entry.product_id, entry.quantity, entry.expires_at_ms
    )


def encode_outcome(entry: Reservation) -> bytes:
    """The order-level outcome of a single-line order, decided by its product writer: exactly
    the :class:`~stockflow.models.OrderReserved` or :class:`~stockflow.models.OrderRejected` the
    order's saga would publish for this line's answer (``saga._outcome``). Derived from the
    ledger entry alone, so a redelivered Reserve re-derives the same outcome."""
    if entry.status == "refused":
        reason = b"unknown_product" if entry.refusal == "unknown_product" else b"insufficient_stock"
        return (
            b'{"type":"OrderRejected","order_id":%b,"reason":"%b","lines":[{"product_id":%b,'
            b'"quantity":%d,"reason":%b,"available":%b}]}'
            % (
                to_json(entry.order_id),
                reason,
                to_json(entry.product_id),
                entry.quantity,
                to_json(entry.refusal),
                to_json(entry.available),
            )
        )
    # pending, or confirmed/released since (a redelivery): it was reserved.
    return _ORDER_RESERVED % _held(
        entry.order_id, entry.product_id, entry.quantity, entry.expires_at_ms
    )


def encode_reserved(entry: Reservation) -> tuple[bytes, bytes]:
    """:func:`encode_entry_event` and :func:`encode_outcome` of a pending entry (a single-line
    order its writer just reserved), its ids and expiry encoded once for both (0.3 us of the
    order's ~22)."""
    fields = _held(entry.order_id, entry.product_id, entry.quantity, entry.expires_at_ms)
    return _PRODUCT_RESERVED % fields, _ORDER_RESERVED % fields


def encode_new_hold(
    order_id: str,
    product_id: str,
    quantity: int,
    seq: int,
    expires_at_ms: int,
    held_at: int,
    *,
    outcome: bool,
) -> tuple[bytes, bytes, bytes]:
    """:func:`encode_entry` of the pending :class:`Reservation` these values make and its
    ProductReserved, then its order's OrderReserved (``outcome``: a single-line order its
    writer decides) or else its saga's line answer (:func:`encode_answer`), without building
    the entry: a new hold, the product writer's usual Reserve, the ids encoded once for all
    three. Property tests hold them equal to what the entry's own encoders write."""
    fields = _held(order_id, product_id, quantity, expires_at_ms)
    order, product = fields[0], fields[1]
    return (
        b'[%b,%b,%d,%d,%d,"pending",null,null,null,null,%d]'
        % (order, product, quantity, seq, expires_at_ms, held_at),
        _PRODUCT_RESERVED % fields,
        _ORDER_RESERVED % fields if outcome else _LINE_RESERVED % (order, product, quantity),
    )


def _line_answer(entry: Reservation, status: bytes, reason: bytes, available: bytes) -> bytes:
    return (
        b'{"type":"LineAnswer","order_id":%b,"product_id":%b,"status":"%b","quantity":%d,'
        b'"reason":%b,"available":%b}'
        % (
            to_json(entry.order_id),
            to_json(entry.product_id),
            status,
            entry.quantity,
            reason,
            available,
        )
    )


def encode_answer(entry: Reservation) -> bytes:
    """The :class:`~stockflow.models.LineAnswer` for an entry (what ``StockDecision.answer``
    holds), encoded without building it."""
    if entry.status == "refused":
        return _line_answer(entry, b"refused", to_json(entry.refusal), to_json(entry.available))
    status = b"reserved" if entry.status == "pending" else entry.status.encode()
    return _line_answer(entry, status, _NULL, _NULL)


def encode_end(entry: Reservation) -> bytes | None:
    """How a single-line order the product writer decides (``Reserve.decides``) ended, as the
    :class:`~stockflow.models.LineAnswer` that reports it to its saga (status ``confirmed``,
    ``cancelled`` or ``expired``); ``None`` while it has not ended, or when it was refused
    (the refusal itself was the answer)."""
    end = line_end(entry)
    if end not in ("confirmed", "cancelled", "expired"):
        return None
    return _line_answer(entry, end.encode(), _NULL, _NULL)
