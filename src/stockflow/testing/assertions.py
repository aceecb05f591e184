"""Assertions on stockflow's decisions, for your own tests (also used by stockflow's)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["OUTCOME_TYPES", "assert_one_outcome_each", "distinct_outcomes", "outcome_of"]

OUTCOME_TYPES = frozenset({"OrderReserved", "OrderRejected"})


def distinct_outcomes(decisions: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """order id -> the distinct outcome payloads seen for it (canonical JSON). Identical
    re-emissions (a duplicated input, a crash) count once."""
    result: dict[str, set[str]] = defaultdict(set)
    for decision in decisions:
        if decision.get("type") in OUTCOME_TYPES:
            result[str(decision["order_id"])].add(json.dumps(decision, sort_keys=True))
    return dict(result)


def assert_one_outcome_each(
    decisions: Iterable[Mapping[str, Any]], order_ids: Iterable[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Every order in ``order_ids`` (default: every order seen) has exactly one distinct
    outcome; returns ``{order id: outcome}``."""
    seen = distinct_outcomes(decisions)
    wanted = list(order_ids) if order_ids is not None else list(seen)
    missing = [order for order in wanted if order not in seen]
    doubled = {order: sorted(payloads) for order, payloads in seen.items() if len(payloads) > 1}
    assert not missing, f"orders without an outcome: {missing[:10]}"
    assert not doubled, f"orders with two different outcomes: {list(doubled.items())[:3]}"
    return {order: json.loads(next(iter(seen[order]))) for order in wanted}


def outcome_of(decisions: Iterable[Mapping[str, Any]], order_id: str) -> dict[str, Any] | None:
    """The order's outcome, or ``None`` if it has none yet."""
    for decision in decisions:
        if decision.get("type") in OUTCOME_TYPES and decision.get("order_id") == order_id:
            return dict(decision)
    return None
