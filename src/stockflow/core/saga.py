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
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

from stockflow.core.policy import Policy
from stockflow.models import (
    OUTPUT_EVENT_ADAPTER,
    PRODUCT_COMMAND_ADAPTER,
    AnswerStatus,
    Confirm,
    Fulfilment,
    LineAnswer,
    OrderCancelIgnored,
    OrderLine,
    OrderRejected,
    OrderReserved,
    RefusalReason,
    RejectionReason,
    Release,
    ReleaseReason,
    ReservationConfirmFailed,
    Reserve,
    iso_from_ms,
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
    "cancel",
    "fire_timer",
    "merge_lines",
    "pay",
    "place",
]

SagaStatus = Literal["reserving", "reserved", "rejected", "confirmed", "cancelled", "expired"]
TimerKind = Literal["deadline", "expiry", "forget"]
Action = Literal["reserve", "confirm", "release", "none"]
SagaEvent = OrderReserved | OrderRejected | ReservationConfirmFailed | OrderCancelIgnored
ProductCommand = Reserve | Confirm | Release

FINISHED: frozenset[str] = frozenset({"rejected", "confirmed", "cancelled", "expired"})


# Saga and LineState are not frozen: a frozen dataclass sets each field through
# object.__setattr__ when it is built, 2-3x the cost, and every answered order builds one. The
# core never changes a saga in place; each decision builds the new one (LocalPipeline, same
# session: 17,431 -> 20,253 single-line orders/s).
@dataclass(slots=True)
class LineState:
    product_id: str
    quantity: int
    answer: Literal["pending", "reserved", "refused"] = "pending"
    reason: RefusalReason | None = None
    available: int | None = None
    action: Action = "reserve"
    release_reason: ReleaseReason | None = None


@dataclass(slots=True)
class Saga:
    order_id: str
    lines: tuple[LineState, ...]
    fulfilment: Fulfilment
    status: SagaStatus
    placed_at_ms: int
    deadline_ms: int
    expires_at_ms: int
    reply_partition: int
    rejection: RejectionReason | None = None
    pay_requested: bool = False
    cancel_requested: bool = False
    finished_at_ms: int | None = None
    placed_at: tuple[int, int] | None = None
    """(partition, offset) of the ``OrderPlaced`` record that started the saga."""
    first_request: Literal["pay", "cancel"] | None = None
    """Which of a payment and a cancellation deferred while reserving came first in the log."""
    product_decides: bool = False
    """A single-line order: its one product writer decides and publishes the outcome (one hop
    fewer); this saga learns it from the line answer, never publishes an outcome itself and has
    no answer deadline (see :func:`place`). ``False`` for multi-line orders and for sagas
    written by versions before it existed, which keep deciding their outcome here."""


Plain = dict[str, Any]
"""An event or command as its JSON object (field order as the model dumps it): what the hot
paths build instead of a model, encoded with ``to_json`` and validated only on demand."""


class SagaDecision:
    """``saga`` is the new state (``None``: unchanged), ``forget`` deletes it. ``timers`` are
    (due, kind) pairs to arm; a timer that fires for a saga that moved on is ignored.

    Events and commands are held as given: models, or :data:`Plain` objects built on the hot
    paths (an order's Reserve and its outcome). :attr:`events` and :attr:`commands` return
    models either way (tests, the public API); the order desk encodes :attr:`raw_events` and
    :attr:`raw_commands` directly."""

    __slots__ = ("_commands", "_events", "forget", "saga", "timers")

    def __init__(
        self,
        saga: Saga | None = None,
        events: tuple[SagaEvent | Plain, ...] = (),
        commands: tuple[ProductCommand | Plain, ...] = (),
        timers: tuple[tuple[int, TimerKind], ...] = (),
        forget: bool = False,
    ) -> None:
        self.saga = saga
        self._events = events
        self._commands = commands
        self.timers = timers
        self.forget = forget

    @property
    def raw_events(self) -> tuple[SagaEvent | Plain, ...]:
        return self._events

    @property
    def raw_commands(self) -> tuple[ProductCommand | Plain, ...]:
        return self._commands

    @property
    def events(self) -> tuple[SagaEvent, ...]:
        return tuple(
            cast(SagaEvent, OUTPUT_EVENT_ADAPTER.validate_python(e)) if isinstance(e, dict) else e
            for e in self._events
        )

    @property
    def commands(self) -> tuple[ProductCommand, ...]:
        return tuple(
            cast(ProductCommand, PRODUCT_COMMAND_ADAPTER.validate_python(c))
            if isinstance(c, dict)
            else c
            for c in self._commands
        )

    def with_events(self, events: tuple[SagaEvent | Plain, ...]) -> SagaDecision:
        return SagaDecision(self.saga, events, self._commands, self.timers, self.forget)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SagaDecision):
            return NotImplemented
        return (
            self.saga == other.saga
            and self.timers == other.timers
            and self.forget == other.forget
            and self.events == other.events
            and self.commands == other.commands
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"SagaDecision(saga={self.saga!r}, events={self.events!r}, "
            f"commands={self.commands!r}, timers={self.timers!r}, forget={self.forget!r})"
        )


NOTHING = SagaDecision()


def merge_lines(lines: Iterable[OrderLine]) -> tuple[LineState, ...]:
    """One line per product, quantities summed, in first-appearance order. Two lines for the
    same product are checked as one (checking them separately oversells: Medusa #16502)."""
    if isinstance(lines, list | tuple) and len(lines) == 1:
        only = lines[0]
        return (LineState(only.product_id, only.quantity),)
    totals: dict[str, int] = {}
    for line in lines:
        totals[line.product_id] = totals.get(line.product_id, 0) + line.quantity
    return tuple(LineState(product_id=pid, quantity=qty) for pid, qty in totals.items())


def place(
    saga: Saga | None,
    *,
    order_id: str,
    lines: Iterable[OrderLine],
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
        return _effects(saga)
    merged = merge_lines(lines)
    single = len(merged) == 1 and policy.max_lines >= 1
    ttl = policy.reservation_ttl_ms if ttl_ms is None else min(ttl_ms, policy.reservation_ttl_ms)
    new = Saga(
        order_id,
        merged,
        fulfilment,
        "reserving",
        now_ms,
        (now_ms if started_ms is None else started_ms) + policy.saga_timeout_ms,
        now_ms + ttl,
        reply_partition,
        None,
        False,
        False,
        None,
        placed_at,
        None,
        single,
    )
    if single:
        # The product writer's answer is the outcome: a deadline here could only contradict
        # it (a "timeout" rejection racing a "reserved" the product already published), so a
        # single-line order waits for its product, however long (STOCKFLOW_SAGA_TIMEOUT applies
        # to multi-line orders only). Its one Reserve is all _with_effects would derive.
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
        return SagaDecision(new, (), (reserve,))
    if len(merged) > policy.max_lines:
        rejected = replace(
            new,
            status="rejected",
            rejection="invalid_order",
            lines=tuple(replace(line, action="none") for line in merged),
            finished_at_ms=now_ms,
        )
        return _with_effects(rejected, timers=((now_ms + policy.retention_ms, "forget"),))
    return _with_effects(new, timers=((new.deadline_ms, "deadline"),))


def answer(saga: Saga | None, reply: LineAnswer, *, now_ms: int, policy: Policy) -> SagaDecision:
    """A product writer answered a Reserve (or acknowledged a Confirm/Release).

    For a single-line order (``product_decides``) the product writer published the outcome
    with this answer (and again with the answer to every Reserve sent again): the saga takes
    the same decision from it, and publishes everything else it implies (deferred payment and
    cancellation answers, Confirm/Release), but not the outcome a second time."""
    return answer_line(
        saga,
        reply.product_id,
        reply.status,
        reply.reason,
        reply.available,
        now_ms=now_ms,
        policy=policy,
    )


def answer_line(
    saga: Saga | None,
    product_id: str,
    status: AnswerStatus,
    reason: RefusalReason | None,
    available: int | None,
    *,
    now_ms: int,
    policy: Policy,
) -> SagaDecision:
    """:func:`answer` from the :class:`LineAnswer`'s fields (the order desk's hot path reads
    answers as plain values)."""
    if saga is not None and saga.status == "reserving":
        fast = _answer_plainly(saga, product_id, status, reason, available, now_ms, policy)
        if fast is not None:
            return fast
    return _answer_generally(saga, product_id, status, reason, available, now_ms, policy)


def _answer_generally(
    saga: Saga | None,
    product_id: str,
    status: AnswerStatus,
    reason: RefusalReason | None,
    available: int | None,
    now_ms: int,
    policy: Policy,
) -> SagaDecision:
    decision = _answer(saga, product_id, status, reason, available, now_ms=now_ms, policy=policy)
    if saga is not None and saga.product_decides and decision.raw_events:
        return decision.with_events(
            tuple(event for event in decision.raw_events if not _is_outcome(event))
        )
    return decision


def _answer_plainly(
    saga: Saga,
    product_id: str,
    status: AnswerStatus,
    reason: RefusalReason | None,
    available: int | None,
    now_ms: int,
    policy: Policy,
) -> SagaDecision | None:
    """The common answers, decided without the general path's intermediate states: a line
    reserved while nothing was deferred (the order is then held, or still waits for other
    lines), and a single-line order refused by its product. ``None`` for everything else.
    Each result is exactly what :func:`_answer` (then :func:`answer_line`'s filter) gives;
    tests/unit/test_saga.py checks that for every saga state."""
    if saga.pay_requested or saga.cancel_requested:
        return None
    lines = saga.lines
    if len(lines) == 1:
        line = lines[0]
        if line.product_id != product_id or line.answer != "pending" or line.action != "reserve":
            return None
        if status == "reserved":
            updated = LineState(
                product_id, line.quantity, "reserved", line.reason, line.available, line.action
            )
            held = _saga_with(saga, (updated,), "reserved")
            events = () if saga.product_decides else _outcome(held)
            return SagaDecision(held, events, (), ((held.expires_at_ms, "expiry"),))
        if status != "refused" or not saga.product_decides:
            return None
        refused = LineState(product_id, line.quantity, "refused", reason, available, "none")
        rejection: RejectionReason = (
            "unknown_product" if reason == "unknown_product" else "insufficient_stock"
        )
        done = Saga(
            saga.order_id,
            (refused,),
            saga.fulfilment,
            "rejected",
            saga.placed_at_ms,
            saga.deadline_ms,
            saga.expires_at_ms,
            saga.reply_partition,
            rejection,
            False,
            False,
            now_ms,
            saga.placed_at,
            saga.first_request,
            True,
        )
        return SagaDecision(done, (), (), ((now_ms + policy.retention_ms, "forget"),))
    if status != "reserved":
        return None
    index = None
    waiting = False
    for position, line in enumerate(lines):
        if line.action != "reserve":
            return None
        if line.product_id == product_id:
            if index is not None or line.answer != "pending":
                return None
            index = position
        elif line.answer == "pending":
            waiting = True
        elif line.answer != "reserved":
            return None  # a refusal (partial orders): the general path lists it
    if index is None:
        return None
    line = lines[index]
    updated = LineState(
        product_id, line.quantity, "reserved", line.reason, line.available, line.action
    )
    new_lines = (*lines[:index], updated, *lines[index + 1 :])
    if waiting:
        return SagaDecision(saga=_saga_with(saga, new_lines, "reserving"))
    held = _saga_with(saga, new_lines, "reserved")
    events = () if saga.product_decides else _outcome(held)
    return SagaDecision(held, events, (), ((held.expires_at_ms, "expiry"),))


def _is_outcome(event: SagaEvent | Plain) -> bool:
    if isinstance(event, dict):
        return event["type"] in ("OrderReserved", "OrderRejected")
    return isinstance(event, OrderReserved | OrderRejected)


def _answer(
    saga: Saga | None,
    product_id: str,
    status: AnswerStatus,
    reason: RefusalReason | None,
    available: int | None,
    *,
    now_ms: int,
    policy: Policy,
) -> SagaDecision:
    if saga is None:
        # After a crash a line answer of the previous run can be read before the redelivered
        # OrderPlaced that recreates the saga (the two topics are read side by side).
        # Compensating it then released units the replayed order went on to report reserved
        # (found by the chaos suite). The redelivered OrderPlaced sends its Reserve again and
        # gets this same answer from the ledger, so an answer without a saga is ignored. (A
        # saga is only forgotten a retention period after it finished: no Reserve of it can
        # still be in flight.)
        return NOTHING
    index = _line_index(saga, product_id)
    if index is None or status not in ("reserved", "refused"):
        return NOTHING
    line = saga.lines[index]
    if status == "reserved" and line.answer == "refused" and line.action == "none":
        # A Reserve sent again for a line still waiting (a duplicate OrderPlaced or a replay
        # re-sends them) was answered after the first one was refused, and found stock freed in
        # between. The saga counts this line as refused, so the units must not stay held. (A line
        # refused by a timeout was released already, after every Reserve sent for it.)
        return SagaDecision(
            commands=(
                Release(order_id=saga.order_id, product_id=line.product_id, reason="compensation"),
            )
        )
    if line.answer != "pending" or saga.status != "reserving":
        # Already known, or decided without it (a timeout released it): nothing new happens.
        return _effects(saga) if line.answer != "pending" else NOTHING
    if status == "reserved":
        updated = LineState(
            line.product_id, line.quantity, "reserved", line.reason, line.available, line.action
        )
    else:
        updated = LineState(line.product_id, line.quantity, "refused", reason, available, "none")
    lines = (*saga.lines[:index], updated, *saga.lines[index + 1 :])
    return _decide(_saga_with(saga, lines, saga.status), now_ms=now_ms, policy=policy)


def _saga_with(saga: Saga, lines: tuple[LineState, ...], status: SagaStatus) -> Saga:
    """``replace(saga, lines=..., status=...)`` without its per-field introspection (the one
    change every answered order makes)."""
    return Saga(
        saga.order_id,
        lines,
        saga.fulfilment,
        status,
        saga.placed_at_ms,
        saga.deadline_ms,
        saga.expires_at_ms,
        saga.reply_partition,
        saga.rejection,
        saga.pay_requested,
        saga.cancel_requested,
        saga.finished_at_ms,
        saga.placed_at,
        saga.first_request,
        saga.product_decides,
    )


def _decide(saga: Saga, *, now_ms: int, policy: Policy) -> SagaDecision:
    refused = [line for line in saga.lines if line.answer == "refused"]
    waiting = any(line.answer == "pending" for line in saga.lines)
    if refused and saga.fulfilment == "all_or_nothing":
        first = refused[0].reason
        reason: RejectionReason = (
            "unknown_product" if first == "unknown_product" else ("insufficient_stock")
        )
        return _reject(saga, reason, now_ms=now_ms, policy=policy)
    if waiting:
        return SagaDecision(saga=saga)
    if not any(line.answer == "reserved" for line in saga.lines):
        first_reason = refused[0].reason if refused else None
        reason = "unknown_product" if first_reason == "unknown_product" else "insufficient_stock"
        return _reject(saga, reason, now_ms=now_ms, policy=policy)
    held = _saga_with(saga, saga.lines, "reserved")
    # Deferred requests apply in log order, as if the order had been held when they came: the
    # outcome may reach the saga before, between or after them (the replies are read beside
    # the orders topic, in an order a replay does not repeat), and the decision must not
    # depend on that (found by the chaos suite: a replay cancelled an order whose payment had
    # been confirmed before the crash).
    if held.cancel_requested and held.first_request != "pay":
        # A payment deferred after the cancellation cannot be applied: say so, or nobody
        # refunds it (re-derived by _effects from pay_requested).
        refund = _payment_failure(replace(held, status="cancelled"))
        return _finish_holding(
            held, "cancelled", now_ms=now_ms, policy=policy, extra=(*_outcome(held), *refund)
        )
    if held.pay_requested:
        confirmed = _confirm_all(held, now_ms=now_ms, policy=policy)
        assert confirmed.saga is not None
        # The outcome, then what a cancellation after the payment is told (_deferred_answers).
        return confirmed.with_events((*_outcome(held), *_deferred_answers(confirmed.saga)))
    return _with_effects(held, timers=((held.expires_at_ms, "expiry"),))


def _reject(saga: Saga, reason: RejectionReason, *, now_ms: int, policy: Policy) -> SagaDecision:
    lines = tuple(
        replace(line, action="release", release_reason="compensation")
        if line.action == "reserve"
        else line
        for line in saga.lines
    )
    done = replace(saga, lines=lines, status="rejected", rejection=reason, finished_at_ms=now_ms)
    # A deferred payment's ReservationConfirmFailed comes with the outcome (see _effects).
    return _with_effects(done, timers=((now_ms + policy.retention_ms, "forget"),))


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
    if saga.status == "reserving":
        first = saga.first_request or "pay"
        return SagaDecision(saga=replace(saga, pay_requested=True, first_request=first))
    if saga.status == "reserved" and now_ms >= saga.expires_at_ms:
        # The payment is stamped after the deadline: the reservation had already expired,
        # whether or not the expiry timer has run yet.
        # pay_requested records that this payment, not the timer, ended it (see below).
        paid = replace(saga, pay_requested=True)
        expired = _finish_holding(paid, "expired", now_ms=now_ms, policy=policy)
        assert expired.saga is not None
        return expired.with_events(
            (*expired.raw_events, ReservationConfirmFailed(order_id=order_id, reason="expired"))
        )
    if saga.status == "reserved":
        return _confirm_all(saga, now_ms=now_ms, policy=policy)
    if saga.status == "confirmed":
        return _effects(saga, outcome=False)
    if saga.status == "expired" and saga.pay_requested and saga.finished_at_ms == now_ms:
        # This very payment expired it (above) and is being redelivered: re-derive the
        # releases it sent too, which a crash may have lost (no expiry tick will re-send them).
        return SagaDecision(
            events=(ReservationConfirmFailed(order_id=order_id, reason="expired"),),
            commands=_effects(saga, outcome=False).raw_commands,
        )
    failure: Literal["expired", "cancelled", "rejected"] = (
        "expired"
        if saga.status == "expired"
        else "cancelled"
        if saga.status == "cancelled"
        else "rejected"
    )
    return SagaDecision(events=(ReservationConfirmFailed(order_id=order_id, reason=failure),))


def _confirm_all(
    saga: Saga, *, now_ms: int, policy: Policy, extra: tuple[SagaEvent, ...] = ()
) -> SagaDecision:
    lines = tuple(
        replace(line, action="confirm") if line.answer == "reserved" else line
        for line in saga.lines
    )
    done = replace(saga, lines=lines, status="confirmed", finished_at_ms=now_ms)
    return _with_effects(
        done, timers=((now_ms + policy.retention_ms, "forget"),), extra=extra, outcome=False
    )


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
    if saga.status == "reserving":
        first = saga.first_request or "cancel"
        return SagaDecision(saga=replace(saga, cancel_requested=True, first_request=first))
    if saga.status == "reserved":
        return _finish_holding(saga, "cancelled", now_ms=now_ms, policy=policy)
    if saga.status == "confirmed":
        return SagaDecision(
            events=(OrderCancelIgnored(order_id=order_id, reason="already_confirmed"),)
        )
    if saga.status == "cancelled":
        return _effects(saga, outcome=False)
    return SagaDecision(events=(OrderCancelIgnored(order_id=order_id, reason="already_released"),))


def _finish_holding(
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
    return _with_effects(
        done, timers=((now_ms + policy.retention_ms, "forget"),), extra=extra, outcome=False
    )


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
            return _effects(saga) if timed_out and replayed else NOTHING
        lines = tuple(
            replace(line, answer="refused", reason="timeout") if line.answer == "pending" else line
            for line in saga.lines
        )
        return _reject(replace(saga, lines=lines), "timeout", now_ms=now_ms, policy=policy)
    if kind == "expiry":
        if saga.status == "reserved" and now_ms >= saga.expires_at_ms:
            return _finish_holding(saga, "expired", now_ms=now_ms, policy=policy)
        return _effects(saga, outcome=False) if saga.status == "expired" and replayed else NOTHING
    finished = saga.finished_at_ms
    if (
        saga.status in FINISHED
        and finished is not None
        and now_ms >= finished + policy.retention_ms
    ):
        return SagaDecision(forget=True)
    return NOTHING


def _line_index(saga: Saga, product_id: str) -> int | None:
    for index, line in enumerate(saga.lines):
        if line.product_id == product_id:
            return index
    return None


def _with_effects(
    saga: Saga,
    *,
    timers: tuple[tuple[int, TimerKind], ...] = (),
    extra: tuple[SagaEvent | Plain, ...] = (),
    outcome: bool = True,
) -> SagaDecision:
    effects = _effects(saga, outcome=outcome)
    return SagaDecision(saga, effects.raw_events + extra, effects.raw_commands, timers)


def _effects(saga: Saga, *, outcome: bool = True) -> SagaDecision:
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
    event = (*_outcome(saga), *_deferred_answers(saga)) if outcome else ()
    return SagaDecision(events=event, commands=tuple(commands))


def _deferred_answers(saga: Saga) -> tuple[SagaEvent | Plain, ...]:
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
    paid = _payment_failure(saga)
    return (*cancelled, *paid) if saga.first_request == "cancel" else (*paid, *cancelled)


def _payment_failure(saga: Saga) -> tuple[SagaEvent | Plain, ...]:
    """The refund signal owed to a payment that arrived while reserving and was never applied
    because the order was then rejected or cancelled."""
    if not saga.pay_requested or saga.status not in ("rejected", "cancelled"):
        return ()
    reason: Literal["rejected", "cancelled"] = (
        "rejected" if saga.status == "rejected" else "cancelled"
    )
    return (ReservationConfirmFailed(order_id=saga.order_id, reason=reason),)


def _outcome(saga: Saga) -> tuple[Plain, ...]:
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
                "lines": [_refusal(line, saga.rejection) for line in saga.lines],
            },
        )
    held = [
        {"product_id": line.product_id, "quantity": line.quantity}
        for line in saga.lines
        if line.answer == "reserved"
    ]
    refused = [_refusal(line, None) for line in saga.lines if line.answer == "refused"]
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


def _refusal(line: LineState, rejection: RejectionReason | None) -> Plain:
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
