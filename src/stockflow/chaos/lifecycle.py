"""The chaos run's lifecycle check: each order's answers against the positions of its payment
and cancellation commands in its partition (see :func:`lifecycle_problems`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from stockflow.chaos.records import COMMANDS, is_bad, json_value
from stockflow.kafka import Record

__all__ = ["lifecycle_problems"]


def lifecycle_problems(
    orders: list[Record],
    decisions: list[tuple[Record, dict[str, Any]]],
    outcomes: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """Each order's answers against its commands' positions in its partition (offset order).

    Before the first ``OrderPlaced``: a payment must be answered ``ReservationConfirmFailed
    unknown_order`` and a cancellation ``OrderCancelIgnored unknown_order``; no other command
    may get ``unknown_order``. After it, with an ``OrderReserved`` outcome: payments only ->
    every held line confirmed; cancellations only -> every held line released ``cancelled``;
    both -> exactly one of the two (released if the cancellation came first), with the other
    command answered ``already_confirmed`` / ``cancelled``. An order with a TTL of its own may
    instead expire, every held line released ``expired`` (and none confirmed or cancelled),
    each later payment answered ``expired`` and cancellation ``already_released``; no other
    order expires within a run. With ``OrderRejected``: nothing confirmed or released, a
    payment answered ``rejected``.
    """
    commands: dict[str, list[tuple[int, str]]] = defaultdict(list)
    short_ttl: set[str] = set()
    for record in orders:
        value = json_value(record)
        if is_bad(record) or not isinstance(value, dict):
            continue
        if value.get("type") in (*COMMANDS, "OrderPlaced"):
            commands[value["order_id"]].append((record.offset, value["type"]))
            if value.get("reservation_ttl") is not None:
                short_ttl.add(value["order_id"])
    answers: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for _, value in decisions:
        kind = value.get("type")
        order = str(value.get("order_id"))
        if kind in ("ReservationConfirmed", "ReservationReleased"):
            tag = kind if kind == "ReservationConfirmed" else f"released:{value['reason']}"
            answers[order][tag].add(value["product_id"])
        elif kind == "ReservationConfirmFailed":
            answers[order]["failed"].add(value["reason"])
        elif kind == "OrderCancelIgnored":
            answers[order]["ignored"].add(value["reason"])
    problems = []
    for order, sequence in commands.items():
        sequence.sort()
        kinds = [kind for _, kind in sequence]
        if "OrderPlaced" not in kinds:
            continue
        first = kinds.index("OrderPlaced")
        before, after = set(kinds[:first]), [k for k in kinds[first:] if k in COMMANDS]
        seen = answers.get(order, {})
        problem = _order_problem(outcomes.get(order), before, after, seen, order in short_ttl)
        if problem:
            problems.append(f"lifecycle of {order!r} ({' '.join(kinds)}): {problem}")
    return problems


def _order_problem(
    outcome: Mapping[str, Any] | None,
    before: set[str],
    after: list[str],
    seen: Mapping[str, set[str]],
    may_expire: bool = False,
) -> str | None:
    """``may_expire``: the order carries a TTL of its own, short enough to end in the run."""
    if outcome is None:
        return None  # reported as an order without outcome
    expired = set(seen.get("released:expired", ()))
    if expired and not may_expire:
        return f"released {sorted(expired)} as expired, yet its TTL outlives the run"
    failed, ignored = set(seen.get("failed", ())), set(seen.get("ignored", ()))
    need_failed = {"unknown_order"} if "OrderPaid" in before else set()
    need_ignored = {"unknown_order"} if "OrderCancelled" in before else set()
    allow_failed, allow_ignored = set(need_failed), set(need_ignored)

    def expect_failed(reason: str) -> None:  # the payment must be, and may be, refused so
        need_failed.add(reason)
        allow_failed.add(reason)

    def expect_ignored(reason: str) -> None:  # the cancellation must be, and may be, ignored so
        need_ignored.add(reason)
        allow_ignored.add(reason)

    confirmed = set(seen.get("ReservationConfirmed", ()))
    cancelled = set(seen.get("released:cancelled", ()))
    pays, cancels = "OrderPaid" in after, "OrderCancelled" in after
    if outcome["type"] == "OrderRejected":
        if confirmed or cancelled or expired:
            return (
                f"rejected, yet confirmed {sorted(confirmed)} / released {sorted(cancelled)}"
                f" / expired {sorted(expired)}"
            )
        if pays:
            expect_failed("rejected")
        if cancels:
            allow_ignored.add("already_released")
    else:
        held = {line["product_id"] for line in outcome["lines"]}
        compensated = set(seen.get("released:compensation", ())) & held
        if compensated:
            return f"held lines {sorted(compensated)} released as compensation"
        if expired:
            # The whole order expired before any payment or cancellation reached it (either
            # would have ended it first): each is answered as coming too late.
            if expired != held:
                return f"expired {sorted(expired)}, but held {sorted(held)}"
            if confirmed or cancelled:
                return f"expired, yet confirmed {sorted(confirmed)} / released {sorted(cancelled)}"
            if pays:
                expect_failed("expired")
            if cancels:
                expect_ignored("already_released")
        else:
            if pays and cancels:
                if confirmed and cancelled:
                    return "both confirmed and released as cancelled"
                if after[0] == "OrderCancelled" and not cancelled:
                    return "cancelled first, but not released"
                if confirmed:
                    expect_ignored("already_confirmed")
                elif cancelled:
                    expect_failed("cancelled")
                else:
                    return "paid and cancelled, but neither confirmed nor released"
            expected_confirmed = held if pays and not cancelled else set()
            expected_cancelled = held if cancels and not confirmed else set()
            if confirmed != expected_confirmed:
                return f"confirmed {sorted(confirmed)}, expected {sorted(expected_confirmed)}"
            if cancelled != expected_cancelled:
                return f"released {sorted(cancelled)}, expected {sorted(expected_cancelled)}"
    if not need_failed <= failed or not failed <= allow_failed:
        return f"payment answers {sorted(failed)}, expected {sorted(need_failed)}"
    if not need_ignored <= ignored or not ignored <= allow_ignored:
        return f"cancellation answers {sorted(ignored)}, expected {sorted(need_ignored)}"
    return None
