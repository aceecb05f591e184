"""Decisions for one order: the saga that reserves every line all-or-nothing (or partially).

The saga is the single decision point for everything that happens to an order after it is
placed: the order-level outcome, payment, cancellation, expiry and compensation. One exception
saves a hop: a single-line order's outcome is its one product writer's answer, so that writer
publishes it (``Reserve.outcome``) and the saga, learning the same answer from the reply, takes
the same decision without publishing it again and without an answer deadline that could
contradict it (``Saga.product_decides``). Because all of
an order's commands and timeouts reach the saga through one partition of one stream, races (a
payment against an expiry, a late line answer against a timeout) are decided by log order and
by the records' own timestamps, never by which thread wins.

State per line::

    answer   pending -> reserved | refused          what the product writer said
    action   reserve -> confirm | release | none    the last command the saga sent for it

Every step returns the full set of commands and events implied by the new state when the input
was a duplicate; the product writer is idempotent, so re-sending is always safe, and it is what
repairs a crash that lost the first emission.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Literal

from stockflow.core.policy import Policy
from stockflow.core.saga_answers import (
    answer,
    answer_line,
    answer_reserved,
    held_by_product,
    may_be_held,
)
from stockflow.core.saga_effects import (
    confirm_all,
    derive_effects,
    finish_holding,
    reject,
    with_effects,
)
from stockflow.core.saga_state import (
    FINISHED,
    NOTHING,
    LineState,
    ListedLine,
    Plain,
    Saga,
    SagaDecision,
    SagaStatus,
    TimerKind,
    merge_lines,
)
from stockflow.models import (
    Fulfilment,
    OrderCancelIgnored,
    ReservationConfirmFailed,
)

__all__ = [
    "LineState",
    "Plain",
    "Saga",
    "SagaDecision",
    "SagaStatus",
    "TimerKind",
    "answer",
    "answer_line",
    "answer_reserved",
    "cancel",
    "fire_timer",
    "forwarded",
    "held_by_product",
    "may_be_held",
    "merge_lines",
    "pay",
    "place",
    "placement_times",
]


def placement_times(
    policy: Policy, now_ms: int, ttl_ms: int | None, started_ms: int | None
) -> tuple[int, int]:
    """The answer deadline and the reservation expiry of an order placed at ``now_ms`` (see
    :func:`place`): the order desk's usual single-line order takes them alone."""
    ttl = policy.reservation_ttl_ms if ttl_ms is None else min(ttl_ms, policy.reservation_ttl_ms)
    return (now_ms if started_ms is None else started_ms) + policy.saga_timeout_ms, now_ms + ttl


def place(
    saga: Saga | None,
    *,
    order_id: str,
    lines: Iterable[ListedLine],
    fulfilment: Fulfilment,
    ttl_ms: int | None,
    now_ms: int,
    reply_partition: int,
    policy: Policy,
    placed_at: tuple[int, int] | None = None,
    started_ms: int | None = None,
) -> SagaDecision:
    """A new order fans out one Reserve per product; a duplicate re-derives what it caused.

    ``now_ms`` is the order's own timestamp (the reservation TTL counts from it);
    ``started_ms`` is when the saga starts waiting for its lines (the worker's clock; default
    ``now_ms``): the answer deadline counts from there, so orders that queued up while no worker
    ran are not rejected as ``timeout`` the moment one comes back.
    """
    if saga is not None:
        effects = derive_effects(saga)
        if saga.forwards and saga.status == "reserving":
            # Its Reserve again, and its expiry timer, as the first placement armed them. After a
            # crash that lost the Reserve, that timer can fire before the redelivered placement
            # sends it again: its writer expired nothing, then held the units with no expiry to
            # come (found by the interleavings property test). Armed again, it fires after.
            timers: tuple[tuple[int, TimerKind], ...] = ((saga.expires_at_ms, "expiry"),)
            return SagaDecision(saga, effects.raw_events, effects.raw_commands, timers)
        return effects
    merged = merge_lines(lines)
    single = len(merged) == 1 and policy.max_lines >= 1
    deadline_ms, expires_at_ms = placement_times(policy, now_ms, ttl_ms, started_ms)
    new = Saga(
        order_id,
        merged,
        fulfilment,
        "reserving",
        now_ms,
        deadline_ms,
        expires_at_ms,
        reply_partition,
        None,
        False,
        False,
        None,
        placed_at,
        None,
        single,
        single and policy.forward_single_line,
    )
    if single:
        # The product writer's answer is the outcome: a deadline here could only contradict
        # it (a "timeout" rejection racing a "reserved" the product already published), so a
        # single-line order waits for its product, however long (STOCKFLOW_SAGA_TIMEOUT applies
        # to multi-line orders only). Its one Reserve is all with_effects would derive.
        line = merged[0]
        reserve: Plain = {
            "type": "Reserve",
            "order_id": order_id,
            "product_id": line.product_id,
            "quantity": line.quantity,
            "expires_at_ms": new.expires_at_ms,
            "reply_partition": reply_partition,
            "outcome": True,
        }
        if not new.forwards:
            return SagaDecision(new, (), (reserve,))
        reserve["decides"] = True
        # The expiry timer is armed now: no answer comes to arm it when the units are held.
        return SagaDecision(new, (), (reserve,), ((new.expires_at_ms, "expiry"),))
    if len(merged) > policy.max_lines:
        rejected = replace(
            new,
            status="rejected",
            rejection="invalid_order",
            lines=tuple(replace(line, action="none") for line in merged),
            finished_at_ms=now_ms,
        )
        return with_effects(rejected, timers=((now_ms + policy.retention_ms, "forget"),))
    return with_effects(new, timers=((new.deadline_ms, "deadline"),))


def _placed_after(saga: Saga | None, command_at: tuple[int, int] | None) -> bool:
    """True when the command's record precedes the saga's ``OrderPlaced`` in the same partition:
    the command was processed before the saga existed. Deciding by log position (not by what
    the state holds when the command is redelivered) keeps its answer the same on replay."""
    if saga is None or saga.placed_at is None or command_at is None:
        return False
    return saga.placed_at[0] == command_at[0] and command_at[1] < saga.placed_at[1]


def pay(
    saga: Saga | None,
    *,
    order_id: str,
    now_ms: int,
    policy: Policy,
    command_at: tuple[int, int] | None = None,
) -> SagaDecision:
    """Payment confirms every line at once, so an order is never half-confirmed.

    ``command_at`` is the (partition, offset) of the payment record."""
    if _placed_after(saga, command_at):
        saga = None
    if saga is None:
        return SagaDecision(
            events=(ReservationConfirmFailed(order_id=order_id, reason="unknown_order"),)
        )
    if saga.forwards and saga.status == "reserving":
        return SagaDecision(commands=(forwarded(saga, "Confirm", now_ms),))
    if saga.status == "reserving":
        first = saga.first_request or "pay"
        return SagaDecision(saga=replace(saga, pay_requested=True, first_request=first))
    if saga.status == "reserved" and now_ms >= saga.expires_at_ms:
        # The payment is stamped after the deadline: the reservation had already expired,
        # whether or not the expiry timer has run yet.
        # pay_requested records that this payment, not the timer, ended it (see below).
        paid = replace(saga, pay_requested=True)
        expired = finish_holding(paid, "expired", now_ms=now_ms, policy=policy)
        assert expired.saga is not None
        return expired.with_events(
            (*expired.raw_events, ReservationConfirmFailed(order_id=order_id, reason="expired"))
        )
    if saga.status == "reserved":
        return confirm_all(saga, now_ms=now_ms, policy=policy)
    if saga.status == "confirmed":
        return derive_effects(saga, outcome=False)
    if saga.status == "expired" and saga.pay_requested and saga.finished_at_ms == now_ms:
        # This very payment expired it (above) and is being redelivered: re-derive the
        # releases it sent too, which a crash may have lost (no expiry tick will re-send them).
        return SagaDecision(
            events=(ReservationConfirmFailed(order_id=order_id, reason="expired"),),
            commands=derive_effects(saga, outcome=False).raw_commands,
        )
    failure: Literal["expired", "cancelled", "rejected"] = (
        "expired"
        if saga.status == "expired"
        else "cancelled"
        if saga.status == "cancelled"
        else "rejected"
    )
    return SagaDecision(events=(ReservationConfirmFailed(order_id=order_id, reason=failure),))


def cancel(
    saga: Saga | None,
    *,
    order_id: str,
    now_ms: int,
    policy: Policy,
    command_at: tuple[int, int] | None = None,
) -> SagaDecision:
    """The customer walked away: release every held line; after payment it changes nothing."""
    if _placed_after(saga, command_at):
        saga = None
    if saga is None:
        return SagaDecision(events=(OrderCancelIgnored(order_id=order_id, reason="unknown_order"),))
    if saga.forwards and saga.status == "reserving":
        return SagaDecision(commands=(forwarded(saga, "cancelled", now_ms),))
    if saga.status == "reserving":
        first = saga.first_request or "cancel"
        return SagaDecision(saga=replace(saga, cancel_requested=True, first_request=first))
    if saga.status == "reserved":
        return finish_holding(saga, "cancelled", now_ms=now_ms, policy=policy)
    if saga.status == "confirmed":
        return SagaDecision(
            events=(OrderCancelIgnored(order_id=order_id, reason="already_confirmed"),)
        )
    if saga.status == "cancelled":
        return derive_effects(saga, outcome=False)
    return SagaDecision(events=(OrderCancelIgnored(order_id=order_id, reason="already_released"),))


def fire_timer(saga: Saga | None, kind: TimerKind, *, now_ms: int, policy: Policy) -> SagaDecision:
    """A due timer: answer deadline, reservation expiry, or the end of retention."""
    if saga is None:
        return NOTHING
    # A timer that already fired in this very tick (same now_ms) is being replayed after a
    # crash: re-derive its effects. Any other tick finding a moved-on saga does nothing.
    replayed = saga.finished_at_ms == now_ms
    if kind == "deadline":
        if saga.product_decides:
            return NOTHING  # never armed for these (see place); kept safe if one is found
        if saga.status != "reserving" or now_ms < saga.deadline_ms:
            timed_out = saga.status == "rejected" and saga.rejection == "timeout"
            return derive_effects(saga) if timed_out and replayed else NOTHING
        lines = tuple(
            replace(line, answer="refused", reason="timeout") if line.answer == "pending" else line
            for line in saga.lines
        )
        return reject(replace(saga, lines=lines), "timeout", now_ms=now_ms, policy=policy)
    if kind == "expiry":
        if saga.forwards and saga.status == "reserving":
            # Held or not, only the product writer knows: it decides (and a redelivered tick
            # forwards the same now_ms again, which it re-derives).
            return SagaDecision(commands=(forwarded(saga, "expired", now_ms),))
        if saga.status == "reserved" and now_ms >= saga.expires_at_ms:
            return finish_holding(saga, "expired", now_ms=now_ms, policy=policy)
        return (
            derive_effects(saga, outcome=False)
            if saga.status == "expired" and replayed
            else NOTHING
        )
    finished = saga.finished_at_ms
    if (
        saga.status in FINISHED
        and finished is not None
        and now_ms >= finished + policy.retention_ms
    ):
        return SagaDecision(forget=True)
    return NOTHING


def forwarded(saga: Saga, what: Literal["Confirm", "cancelled", "expired"], at_ms: int) -> Plain:
    """The payment (``Confirm``), cancellation or expiry of a saga that ``forwards`` them, as
    the command its product writer decides it by (:mod:`stockflow.core.single_line`)."""
    line = saga.lines[0]
    if what == "Confirm":
        return {
            "type": "Confirm",
            "order_id": saga.order_id,
            "product_id": line.product_id,
            "at_ms": at_ms,
            "reply_partition": saga.reply_partition,
        }
    return {
        "type": "Release",
        "order_id": saga.order_id,
        "product_id": line.product_id,
        "reason": what,
        "at_ms": at_ms,
        "reply_partition": saga.reply_partition,
    }
