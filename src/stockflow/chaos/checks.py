"""The chaos run's own checks, beside the independent auditor: computed from the topics and the
table state folded from the changelog, after the run has settled.

* every order placed has exactly one distinct outcome, and no outcome lacks an order;
* no product has more units reserved-or-confirmed than were stocked (initial count plus every
  distinct adjustment), and the table agrees with the decisions: ``reserved == pending_sum ==``
  units pending according to the events, ``on_hand == stocked - confirmed``;
* every bad input (keyed ``bad-<n>``) is dead-lettered, and nothing else is;
* every lifecycle command got the answer its position in the order's partition implies: a
  payment or cancellation before the order is answered ``unknown_order`` (and only those are),
  and after it, payment confirms and cancellation releases every held line (see
  :func:`lifecycle_problems`);
* every abandoned order (a TTL of its own, reserved, never paid or cancelled) expired within
  :data:`EXPIRY_GRACE_MS` of its TTL (:func:`awaiting_expiry`);
* each table's changelog says the same read whole and as a compacting broker would keep it
  (each key's last record; the embedded broker does not compact): a lost writer's late
  record is never a key's last word (:func:`compaction_problems`).

It also measures the input mix from the topics themselves (duplicates, bad inputs, lifecycle
commands before/after/twice): the report states what was on the broker, not what was intended.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stockflow.chaos.lifecycle import lifecycle_problems
from stockflow.chaos.records import COMMANDS, OUTCOMES, is_bad, json_value
from stockflow.kafka import Record
from stockflow.testing.harness import compact_changelog, fold_changelog

__all__ = [
    "EXPIRY_GRACE_MS",
    "CheckReport",
    "Topics",
    "awaiting_expiry",
    "check_run",
    "compaction_problems",
]

EXPIRY_GRACE_MS = 30_000
"""How long past its TTL an abandoned order may take to expire before the run reports it: a
worker restarted after a kill takes up to ~15 s to decide again (docs/reliability.md)."""


@dataclass(frozen=True, slots=True)
class Topics:
    orders: list[Record]
    inventory: list[Record]
    reservations: list[Record]
    dead_letters: list[Record]


@dataclass
class CheckReport:
    """Problems found (must be empty) and what the topics held."""

    problems: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, problem: str) -> None:
        if len(self.problems) < 200:
            self.problems.append(problem)
        self.counts["problems"] += 1


def compaction_problems(
    changelog: Callable[[str], list[Record]], tables: tuple[str, ...]
) -> list[str]:
    """Keys whose state differs between each table's changelog (``changelog(table)``: its
    records, read once) folded whole and as a compacting broker keeps it."""
    problems = []
    for table in tables:
        records = changelog(table)  # one read: records may still land between two
        whole, compacted = fold_changelog(records), fold_changelog(compact_changelog(records))
        differing = sorted(
            key for key in whole.keys() | compacted.keys() if whole.get(key) != compacted.get(key)
        )
        if differing:
            problems.append(
                f"the {table} changelog, compacted, differs from the whole at {len(differing)} "
                f"key(s), e.g. {differing[:3]}: a late record is a key's last word"
            )
    return problems


def check_run(
    topics: Topics,
    initial: Mapping[str, int],
    stock_state: Callable[[], dict[str, dict[str, int]]],
    *,
    settle: float = 20.0,
    reservations: Callable[[], list[Record]] | None = None,
    changelog: Callable[[str], list[Record]] | None = None,
) -> CheckReport:
    """All checks; ``stock_state`` is re-read for up to ``settle`` seconds while the table has
    not caught up with the events yet (the changelog is written after the decision), and with
    it ``reservations``, the reservations topic read again: reservations still expire after
    ``topics`` was read (orders with a TTL of seconds), and their events are as late as the
    tables' changes. ``changelog`` reads a table's changelog records for the compaction
    check."""
    report = CheckReport()
    _measure_inputs(topics, report)
    decisions = _decisions(topics.reservations)
    outcomes = _check_outcomes(topics, decisions, report)
    _check_dead_letters(topics, report)
    for problem in lifecycle_problems(topics.orders, decisions, outcomes):
        report.add(problem)
    supply = dict(initial)
    seen_adjustments: set[str] = set()
    for record in topics.inventory:
        value = json_value(record)
        if is_bad(record) or not isinstance(value, dict) or value.get("type") != "StockAdjusted":
            continue
        if value["adjustment_id"] not in seen_adjustments:
            seen_adjustments.add(value["adjustment_id"])
            supply[value["product_id"]] = supply.get(value["product_id"], 0) + value["delta"]
    pending, confirmed = _holdings(decisions)
    for product, units in supply.items():
        held = pending[product] + confirmed[product]
        if held > units:
            report.add(f"oversold {product!r}: {held} units reserved or confirmed, {units} stocked")
    deadline = time.monotonic() + settle
    while True:
        state = stock_state()
        mismatches = []
        for product, units in supply.items():
            row = state.get(product, {})
            expected = {
                "on_hand": units - confirmed[product],
                "reserved": pending[product],
                "pending_sum": pending[product],
            }
            actual = {name: row.get(name) for name in expected}
            if actual != expected:
                mismatches.append(f"table for {product!r} is {actual}, events say {expected}")
        if not mismatches or time.monotonic() > deadline:
            break
        time.sleep(0.5)
        if reservations is not None:
            decisions = _decisions(reservations())
            pending, confirmed = _holdings(decisions)
    for mismatch in mismatches:
        report.add(mismatch)
    if changelog is not None:
        for problem in compaction_problems(changelog, ("products", "orders")):
            report.add(problem)
    # Liveness of expiry, on the reservations as last read: an abandoned order must expire.
    now_ms = int(time.time() * 1000)
    due, expired = _abandoned(topics.orders, decisions)
    report.counts["orders_abandoned"] = len(due)
    for order, at in sorted(due.items()):
        if order not in expired and at + EXPIRY_GRACE_MS <= now_ms:
            report.add(
                f"order {order!r} was reserved with a TTL of its own, never paid or cancelled, "
                f"and had not expired {(now_ms - at) / 1000:.1f}s after its TTL"
            )
    report.counts["products"] = len(supply)
    report.counts["units_stocked"] = sum(supply.values())
    report.counts["units_confirmed"] = sum(confirmed.values())
    report.counts["units_pending"] = sum(pending.values())
    return report


def _measure_inputs(topics: Topics, report: CheckReport) -> None:
    seen: set[tuple[str, bytes | None, bytes | None]] = set()
    for record in [*topics.orders, *topics.inventory]:
        fingerprint = (record.topic, record.key, record.value)
        if fingerprint in seen:
            report.counts["duplicate_inputs"] += 1
        seen.add(fingerprint)
        if is_bad(record):
            report.counts["bad_inputs"] += 1
            continue
        value = json_value(record)
        kind = value.get("type") if isinstance(value, dict) else "?"
        report.counts[f"input:{kind}"] += 1
    report.counts["input_records"] = len(topics.orders) + len(topics.inventory)
    placed_at: dict[str, int] = {}
    commands: list[tuple[str, int, str]] = []
    for record in topics.orders:
        value = json_value(record)
        if is_bad(record) or not isinstance(value, dict):
            continue
        kind, order = str(value.get("type")), str(value.get("order_id"))
        if kind == "OrderPlaced":
            placed_at[order] = min(placed_at.get(order, record.offset), record.offset)
        elif kind in COMMANDS:
            commands.append((order, record.offset, kind))
    per_order: Counter[tuple[str, str]] = Counter()
    for order, offset, kind in commands:
        before = order in placed_at and offset < placed_at[order]
        report.counts["lifecycle_before" if before else "lifecycle_after"] += 1
        per_order[(order, kind)] += 1
    report.counts["lifecycle_twice"] = sum(1 for n in per_order.values() if n > 1)


def _check_outcomes(
    topics: Topics, decisions: list[tuple[Record, dict[str, Any]]], report: CheckReport
) -> dict[str, dict[str, Any]]:
    placed: set[str] = set()
    short_ttl: set[str] = set()
    for record in topics.orders:
        value = json_value(record)
        if not is_bad(record) and isinstance(value, dict) and value.get("type") == "OrderPlaced":
            placed.add(value["order_id"])
            if value.get("reservation_ttl") is not None:
                short_ttl.add(value["order_id"])
    distinct: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for _, value in decisions:
        if value.get("type") in OUTCOMES:
            canon = json.dumps(value, sort_keys=True)
            distinct[value["order_id"]].setdefault(canon, value)
    report.counts["orders"] = len(placed)
    report.counts["orders_decided"] = len(placed & set(distinct))
    for order in sorted(placed - set(distinct))[:20]:
        report.add(f"order {order!r} has no outcome")
    report.counts["orders_without_outcome"] = len(placed - set(distinct))
    for order, seen in distinct.items():
        if len(seen) > 1:
            report.add(f"order {order!r} has {len(seen)} different outcomes: {list(seen)}")
        if order not in placed:
            report.add(f"outcome for {order!r}, which was never placed")
    report.counts["outcome_records"] = sum(1 for _, v in decisions if v.get("type") in OUTCOMES)
    # How much of the run exercised expiry (lifecycle_problems judges each expired order).
    report.counts["orders_short_ttl"] = len(short_ttl)
    report.counts["orders_expired"] = len(_expired(decisions))
    return {order: next(iter(seen.values())) for order, seen in distinct.items()}


def _check_dead_letters(topics: Topics, report: CheckReport) -> None:
    bad = {
        (r.topic, r.partition, r.offset) for r in [*topics.orders, *topics.inventory] if is_bad(r)
    }
    lettered: set[tuple[str, int, int]] = set()
    for record in topics.dead_letters:
        value = json_value(record)
        if not isinstance(value, dict):
            report.add(f"dead letter at offset {record.offset} is not JSON")
            continue
        lettered.add((value["topic"], value["partition"], value["offset"]))
    report.counts["dead_letter_records"] = len(topics.dead_letters)
    report.counts["dead_lettered_inputs"] = len(lettered)
    for position in sorted(bad - lettered)[:20]:
        report.add(f"bad input {position} was not dead-lettered")
    for position in sorted(lettered - bad)[:20]:
        report.add(f"input {position} was dead-lettered but is not a bad input")
    report.counts["bad_not_dead_lettered"] = len(bad - lettered)
    report.counts["valid_dead_lettered"] = len(lettered - bad)


def _holdings(
    decisions: list[tuple[Record, dict[str, Any]]],
) -> tuple[Counter[str], Counter[str]]:
    """Units pending and confirmed per product, from the distinct product events."""
    reserved: dict[tuple[str, str], int] = {}
    closed: dict[tuple[str, str], str] = {}
    for _, value in decisions:
        kind = value.get("type")
        if kind not in ("ProductReserved", "ReservationConfirmed", "ReservationReleased"):
            continue
        key = (value["order_id"], value["product_id"])
        if kind == "ProductReserved":
            reserved.setdefault(key, value["quantity"])
        else:
            closed.setdefault(key, kind)
    pending: Counter[str] = Counter()
    confirmed: Counter[str] = Counter()
    for (order, product), quantity in reserved.items():
        state = closed.get((order, product))
        if state is None:
            pending[product] += quantity
        elif state == "ReservationConfirmed":
            confirmed[product] += quantity
    return pending, confirmed


def awaiting_expiry(orders: list[Record], reservations: list[Record]) -> dict[str, int]:
    """Orders that must expire and have not yet, with the time their TTL ends (ms): placed with
    a TTL of their own, reserved, and neither paid nor cancelled by any record (an abandoned
    cart, :attr:`stockflow.chaos.load.LoadMix.abandon`); expired means a
    ``ReservationReleased`` with reason ``expired``."""
    decisions = _decisions(reservations)
    due, expired = _abandoned(orders, decisions)
    return {order: at for order, at in due.items() if order not in expired}


def _decisions(reservations: list[Record]) -> list[tuple[Record, dict[str, Any]]]:
    """Each reservations record that is a JSON object, with its value."""
    return [(r, v) for r in reservations if isinstance(v := json_value(r), dict)]


def _abandoned(
    orders: list[Record], decisions: list[tuple[Record, dict[str, Any]]]
) -> tuple[dict[str, int], set[str]]:
    placed: dict[str, int] = {}
    commanded: set[str] = set()
    for record in orders:
        value = json_value(record)
        if is_bad(record) or not isinstance(value, dict):
            continue
        kind = value.get("type")
        if kind in COMMANDS:
            commanded.add(str(value.get("order_id")))
        elif kind == "OrderPlaced" and value.get("reservation_ttl") is not None:
            order = str(value["order_id"])
            # The first copy in the partition is the one the worker holds the order from.
            ends = record.timestamp_ms + int(float(value["reservation_ttl"]) * 1000)
            placed[order] = min(placed.get(order, ends), ends)
    reserved = {str(v.get("order_id")) for _, v in decisions if v.get("type") == "OrderReserved"}
    abandoned = {o: at for o, at in placed.items() if o in reserved and o not in commanded}
    return abandoned, _expired(decisions)


def _expired(decisions: list[tuple[Record, dict[str, Any]]]) -> set[str]:
    """The orders released ``expired`` (every held line is, when an order expires)."""
    return {
        str(v.get("order_id"))
        for _, v in decisions
        if v.get("type") == "ReservationReleased" and v.get("reason") == "expired"
    }
