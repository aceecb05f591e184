"""State keys. Product ids and order ids are arbitrary strings, so variable parts are
length-prefixed: no separator can make two different ids collide, and all of one product's
ledger entries share a prefix that a range scan can find."""

from __future__ import annotations

from functools import lru_cache

__all__ = [
    "entry_key",
    "ledger_prefix",
    "marker_key",
    "saga_key",
    "stock_key",
    "timer_key",
    "timer_prefix",
]


def _part(value: str) -> str:
    return f"{len(value)}:{value}"


def stock_key(product_id: str) -> str:
    return f"s:{_part(product_id)}"


def ledger_prefix(product_id: str) -> str:
    return f"r:{_part(product_id)}:"


def entry_key(product_id: str, order_id: str) -> str:
    return ledger_prefix(product_id) + order_id


def marker_key(product_id: str, source: str) -> str:
    """Marks a stock command (adjustment id or recount record) as applied."""
    return f"m:{_part(product_id)}:{source}"


def saga_key(order_id: str) -> str:
    return f"o:{order_id}"


@lru_cache(maxsize=4096)
def timer_prefix(partition: int) -> str:
    return f"t:{partition:05d}:"


def timer_key(partition: int, due_ms: int, kind: str, ref: str) -> str:
    """Timers sort by due time within their partition (13 digits last until the year 2286)."""
    return f"{timer_prefix(partition)}{max(due_ms, 0):013d}:{kind}:{ref}"
