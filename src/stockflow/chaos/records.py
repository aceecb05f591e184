"""How the chaos checks read the records they fetched from the topics: the JSON value, whether a
record is one of the run's deliberately bad inputs, and the event types they sort by."""

from __future__ import annotations

import json
from typing import Any

from stockflow.chaos.garbage import BAD_KEY_PREFIX
from stockflow.kafka import Record

__all__ = ["COMMANDS", "OUTCOMES", "is_bad", "json_value"]

OUTCOMES = ("OrderReserved", "OrderRejected")
"""An order's outcome events: exactly one distinct one per order."""

COMMANDS = ("OrderPaid", "OrderCancelled")
"""The lifecycle commands a load sends after (or before) placing an order."""

_BAD_KEY = BAD_KEY_PREFIX.encode()


def json_value(record: Record) -> Any:
    """The record's value parsed as JSON, or ``None`` if it is absent or not JSON."""
    try:
        return json.loads(record.value) if record.value is not None else None
    except ValueError:
        return None


def is_bad(record: Record) -> bool:
    """Whether the record is a bad input the run produced on purpose (keyed ``bad-<n>``)."""
    return record.key is not None and record.key.startswith(_BAD_KEY)
