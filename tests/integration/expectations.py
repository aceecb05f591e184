"""Assertions shared by the integration tests: outcomes, product events, order builders."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "OUTCOMES",
    "assert_one_outcome_each",
    "distinct_outcomes",
    "order_placed",
    "types",
    "unique_product_events",
]

OUTCOMES = ("OrderReserved", "OrderRejected")


def distinct_outcomes(decisions: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """order id -> the set of distinct outcome payloads (as canonical JSON) seen for it."""
    result: dict[str, set[str]] = defaultdict(set)
    for decision in decisions:
        if decision["type"] in OUTCOMES:
            result[decision["order_id"]].add(json.dumps(decision, sort_keys=True))
    return result


def assert_one_outcome_each(
    decisions: Iterable[Mapping[str, Any]], order_ids: Iterable[str]
) -> None:
    outcomes = distinct_outcomes(decisions)
    missing = [order for order in order_ids if order not in outcomes]
    doubled = {order: seen for order, seen in outcomes.items() if len(seen) > 1}
    assert not missing, f"orders without an outcome: {missing[:10]}"
    assert not doubled, f"orders with two different outcomes: {list(doubled.items())[:3]}"


def types(decisions: Iterable[Mapping[str, Any]]) -> Counter[str]:
    return Counter(decision["type"] for decision in decisions)


def unique_product_events(
    decisions: Iterable[Mapping[str, Any]], kind: str
) -> set[tuple[str, str]]:
    """(order id, product id) of each distinct product-level event of ``kind`` (identical
    re-emissions after a crash or duplicate count once)."""
    return {(d["order_id"], d["product_id"]) for d in decisions if d["type"] == kind}


def order_placed(
    order_id: str, *lines: tuple[str, int], **extra: Any
) -> tuple[str, str, dict[str, Any]]:
    event = {
        "type": "OrderPlaced",
        "order_id": order_id,
        "lines": [{"product_id": p, "quantity": q} for p, q in lines],
        **extra,
    }
    return ("orders", order_id, event)
