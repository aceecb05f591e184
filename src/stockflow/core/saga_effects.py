"""What a saga's state implies downstream: the commands for its lines, the order-level
outcome, the answers owed to deferred payments and cancellations, and the steps that finish a
saga (reject, confirm, cancel or expire) with those effects.

Every effect is derived from the state alone, so a redelivered input re-derives exactly what
the first delivery emitted (the product writer is idempotent, so re-sending is safe).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from stockflow.core.policy import Policy
from stockflow.core.saga_state import (
    LineState,
    Plain,
    Saga,
    SagaDecision,
    SagaEvent,
    TimerKind,
)
from stockflow.models import (
    OrderCancelIgnored,
    OrderRejected,
    OrderReserved,
    ReservationConfirmFailed,
    iso_from_ms,
)
from stockflow.reasons import RefusalReason, RejectionReason, ReleaseReason

__all__ = [
    "confirm_all",
    "deferred_answers",
    "derive_effects",
    "finish_holding",
    "is_outcome",
    "line_refusal",
    "outcome_events",
    "payment_failure",
    "reject",
    "with_effects",
]


def reject(saga: Saga, reason: RejectionReason, *, now_ms: int, policy: Policy) -> SagaDecision:
    lines = tuple(
        replace(line, action="release", release_reason="compensation")
        if line.action == "reserve"
        else line
        for line in saga.lines
    )
    done = replace(saga, lines=lines, status="rejected", rejection=reason, finished_at_ms=now_ms)
    # A deferred payment's ReservationConfirmFailed comes with the outcome (see derive_effects).
    return with_effects(done, timers=((now_ms + policy.retention_ms, "forget"),))


def confirm_all(
    saga: Saga, *, now_ms: int, policy: Policy, extra: tuple[SagaEvent, ...] = ()
) -> SagaDecision:
    lines = tuple(
        replace(line, action="confirm") if line.answer == "reserved" else line
        for line in saga.lines
    )
    done = replace(saga, lines=lines, status="confirmed", finished_at_ms=now_ms)
    return with_effects(
        done, timers=((now_ms + policy.retention_ms, "forget"),), extra=extra, outcome=False
    )


def finish_holding(
    saga: Saga,
    status: Literal["cancelled", "expired"],
    *,
    now_ms: int,
    policy: Policy,
    extra: tuple[SagaEvent | Plain, ...] = (),
) -> SagaDecision:
    reason: ReleaseReason = "cancelled" if status == "cancelled" else "expired"
    lines = tuple(
        replace(line, action="release", release_reason=reason)
        if line.answer == "reserved" and line.action == "reserve"
        else line
        for line in saga.lines
    )
    done = replace(saga, lines=lines, status=status, finished_at_ms=now_ms)
    return with_effects(
        done, timers=((now_ms + policy.retention_ms, "forget"),), extra=extra, outcome=False
    )


def with_effects(
    saga: Saga,
    *,
    timers: tuple[tuple[int, TimerKind], ...] = (),
    extra: tuple[SagaEvent | Plain, ...] = (),
    outcome: bool = True,
) -> SagaDecision:
    effects = derive_effects(saga, outcome=outcome)
    return SagaDecision(saga, effects.raw_events + extra, effects.raw_commands, timers)


def derive_effects(saga: Saga, *, outcome: bool = True) -> SagaDecision:
    """Everything the current state implies downstream: the outcome once decided, and the
    command for every line. Used for first emissions and, identically, for redeliveries."""
    commands: list[Plain] = []
    for line in saga.lines:
        if line.action == "reserve" and saga.status == "reserving" and line.answer == "pending":
            commands.append(
                {
                    "type": "Reserve",
                    "order_id": saga.order_id,
                    "product_id": line.product_id,
                    "quantity": line.quantity,
                    "expires_at_ms": saga.expires_at_ms,
                    "reply_partition": saga.reply_partition,
                    "outcome": saga.product_decides,
                }
            )
            if saga.forwards:
                commands[-1]["decides"] = True
        elif line.action == "confirm":
            commands.append(
                {"type": "Confirm", "order_id": saga.order_id, "product_id": line.product_id}
            )
        elif line.action == "release" and line.release_reason is not None:
            commands.append(
                {
                    "type": "Release",
                    "order_id": saga.order_id,
                    "product_id": line.product_id,
                    "reason": line.release_reason,
                }
            )
    event = (*outcome_events(saga), *deferred_answers(saga)) if outcome else ()
    return SagaDecision(events=event, commands=tuple(commands))


def deferred_answers(saga: Saga) -> tuple[SagaEvent | Plain, ...]:
    """What payments and cancellations deferred while reserving were told when the outcome
    came, in log order, exactly what each would have been told had it come after the outcome:
    a payment that was never applied fails; a cancellation of a confirmed or rejected order is
    ignored."""
    cancelled: tuple[SagaEvent | Plain, ...] = ()
    if saga.cancel_requested and saga.status in ("confirmed", "rejected"):
        reason: Literal["already_confirmed", "already_released"] = (
            "already_confirmed" if saga.status == "confirmed" else "already_released"
        )
        cancelled = (OrderCancelIgnored(order_id=saga.order_id, reason=reason),)
    paid = payment_failure(saga)
    return (*cancelled, *paid) if saga.first_request == "cancel" else (*paid, *cancelled)


def payment_failure(saga: Saga) -> tuple[SagaEvent | Plain, ...]:
    """The refund signal owed to a payment that arrived while reserving and was never applied
    because the order was then rejected or cancelled."""
    if not saga.pay_requested or saga.status not in ("rejected", "cancelled"):
        return ()
    reason: Literal["rejected", "cancelled"] = (
        "rejected" if saga.status == "rejected" else "cancelled"
    )
    return (ReservationConfirmFailed(order_id=saga.order_id, reason=reason),)


def outcome_events(saga: Saga) -> tuple[Plain, ...]:
    """The order-level outcome as :class:`OrderReserved`/:class:`OrderRejected` objects."""
    if saga.status == "reserving":
        return ()
    if saga.status == "rejected":
        assert saga.rejection is not None
        return (
            {
                "type": "OrderRejected",
                "order_id": saga.order_id,
                "reason": saga.rejection,
                "lines": [line_refusal(line, saga.rejection) for line in saga.lines],
            },
        )
    held = [
        {"product_id": line.product_id, "quantity": line.quantity}
        for line in saga.lines
        if line.answer == "reserved"
    ]
    refused = [line_refusal(line, None) for line in saga.lines if line.answer == "refused"]
    return (
        {
            "type": "OrderReserved",
            "order_id": saga.order_id,
            "lines": held,
            "expires_at": iso_from_ms(saga.expires_at_ms),
            "partial": bool(refused),
            "refused": refused,
        },
    )


def line_refusal(line: LineState, rejection: RejectionReason | None) -> Plain:
    """A :class:`LineRefusal` object."""
    if line.answer == "refused" and line.reason is not None:
        return {
            "product_id": line.product_id,
            "quantity": line.quantity,
            "reason": line.reason,
            "available": line.available,
        }
    reason: RefusalReason = "invalid_order" if rejection == "invalid_order" else "compensated"
    return {
        "product_id": line.product_id,
        "quantity": line.quantity,
        "reason": reason,
        "available": None,
    }


def is_outcome(event: SagaEvent | Plain) -> bool:
    if isinstance(event, dict):
        return event["type"] in ("OrderReserved", "OrderRejected")
    return isinstance(event, OrderReserved | OrderRejected)
