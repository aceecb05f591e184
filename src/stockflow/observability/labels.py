"""Label values of stockflow's metrics, read from records without parsing them.

Every label is bounded: a ``type`` or ``reason`` stockflow does not know becomes ``other``, so
no producer can grow the label space. The readers rely on stockflow's own compact encoding of
what it produces (pydantic, fields in declaration order, ``type`` first); inputs from other
producers go through the slower, general :func:`event_type`.
"""

from __future__ import annotations

from typing import get_args

from stockflow.models import OrderCancelIgnored, ReservationConfirmFailed
from stockflow.reasons import RefusalReason, RejectionReason, ReleaseReason

__all__ = [
    "EVENT_TYPES",
    "EXPIRED",
    "LATENCY_BUCKETS",
    "NONE",
    "NOT_REFUSED",
    "OTHER",
    "OUTCOMES",
    "OUTCOME_BY_NAME",
    "PARTIAL",
    "PREFIX",
    "START",
    "TYPE_BY_NAME",
    "event_type",
    "reason_of",
]

EVENT_TYPES: tuple[str, ...] = (
    # public inputs
    "OrderPlaced",
    "OrderPaid",
    "OrderCancelled",
    "StockSet",
    "StockAdjusted",
    # public outputs
    "ProductReserved",
    "OrderReserved",
    "OrderRejected",
    "ReservationConfirmed",
    "ReservationReleased",
    "ReservationConfirmFailed",
    "OrderCancelIgnored",
    "StockShortfall",
    "DeadLetter",
    # internal commands
    "Reserve",
    "Confirm",
    "Release",
    "SetStock",
    "AdjustStock",
    "FireTimers",
    "LineAnswer",
)
"""Every ``type`` stockflow reads or writes; anything else is labelled ``other``."""

OUTCOMES: dict[str, str] = {
    "OrderReserved": "reserved",
    "OrderRejected": "rejected",
    "ProductReserved": "line_reserved",
    "ReservationConfirmed": "confirmed",
    "ReservationReleased": "released",
    "ReservationConfirmFailed": "confirm_failed",
    "OrderCancelIgnored": "cancel_ignored",
    "StockShortfall": "shortfall",
}
"""``outcome`` label of each decision event on the reservations topic; a product writer's refusal
of a line (a ``LineAnswer`` with status ``refused``) is ``line_refused``. ``OrderReserved`` has
reason ``partial`` or ``none``."""

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
"""Upper bounds (seconds) of ``stockflow_processing_seconds``; ``+Inf`` is added."""

OTHER = "other"
NONE = "none"

_REASONS: frozenset[str] = frozenset(
    [
        *get_args(RejectionReason),
        *get_args(RefusalReason),
        *get_args(ReleaseReason),
        *get_args(ReservationConfirmFailed.model_fields["reason"].annotation),
        *get_args(OrderCancelIgnored.model_fields["reason"].annotation),
    ]
)
TYPE_BY_NAME: dict[bytes, str] = {name.encode(): name for name in EVENT_TYPES}
OUTCOME_BY_NAME: dict[bytes, str] = {name.encode(): label for name, label in OUTCOMES.items()}
_REASON_BY_NAME: dict[bytes, str] = {reason.encode(): reason for reason in _REASONS}
PREFIX = b'{"type":"'
"""How every record stockflow encodes starts; its type name begins at :data:`START`."""
START = len(PREFIX)
_SPACED_PREFIX = b'{"type": "'
_SPACED_START = len(_SPACED_PREFIX)
_REASON_KEY = b'"reason":"'
NOT_REFUSED = b'"reason":null,"available":null}'
"""How every ``LineAnswer`` ends that is not a refusal (fields in declaration order)."""
PARTIAL = b'"partial":'
"""The key of ``OrderReserved.partial`` (after the reserved lines, before the refused ones)."""
EXPIRED = "expired"


def event_type(raw: bytes | None) -> str:
    """The ``type`` of a JSON record without parsing it: one of :data:`EVENT_TYPES` or
    ``other``. Fast for stockflow's own encoding (``type`` first); otherwise it looks for the
    first ``"type"`` key, which is a label, not a validation (invalid records are counted as
    ``invalid`` by their dead letter)."""
    if not raw:
        return OTHER
    if raw.startswith(PREFIX):
        return TYPE_BY_NAME.get(raw[START : raw.find(b'"', START)], OTHER)
    if raw.startswith(_SPACED_PREFIX):  # Python's json.dumps
        return TYPE_BY_NAME.get(raw[_SPACED_START : raw.find(b'"', _SPACED_START)], OTHER)
    at = raw.find(b'"type"')
    if at < 0:
        return OTHER
    start = raw.find(b'"', at + 6)
    if start < 0 or raw[at + 6 : start].strip() != b":":
        return OTHER
    return TYPE_BY_NAME.get(raw[start + 1 : raw.find(b'"', start + 1)], OTHER)


def reason_of(value: bytes) -> str:
    """The first ``"reason":"..."`` of a stockflow record (top-level: it precedes any list)."""
    at = value.find(_REASON_KEY)
    if at < 0:
        return NONE
    start = at + len(_REASON_KEY)
    return _REASON_BY_NAME.get(value[start : value.find(b'"', start)], OTHER)
