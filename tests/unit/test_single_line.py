"""A single-line order decided on its ledger entry (stockflow.core.single_line) against the
saga that decides it today (stockflow.core.saga, then the writer's stock decisions for the
commands it sends): over any history of payments, cancellations and expiry ticks, redeliveries
included, the same public events (first occurrences, in order: at-least-once delivery repeats
events, never reorders an order's distinct answers), the same counters, the same end state.

The reference is the saga that learnt the writer's answer before any payment or cancellation
came (the usual case). The new decisions meet the Reserve first by construction (one
partition's log), so this is the history they replace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from stockflow.core import saga as saga_steps
from stockflow.core import stock as stock_steps
from stockflow.core.policy import Policy
from stockflow.core.saga import Saga, SagaDecision
from stockflow.core.single_line import (
    LineDecision,
    cancel_line,
    expire_line,
    line_end,
    pay_line,
)
from stockflow.core.stock import Reservation, Stock, StockDecision
from stockflow.models import OrderLine

ORDER, PRODUCT = "o-1", "p-1"
TTL = 100
POLICY = Policy(reservation_ttl_ms=TTL, retention_ms=10_000, forward_single_line=False)

Input = tuple[str, int, bool]
"""("pay" | "cancel" | "tick", its timestamp, whether a crash loses what it published: its
state changes are kept, its events and commands lost, and it is delivered again)."""


def _plain(event: Any) -> dict[str, Any]:
    return event if isinstance(event, dict) else event.model_dump(mode="json")


@dataclass
class Writer:
    """The product writer's state for the one product."""

    stock: Stock | None
    entry: Reservation | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def apply(self, decision: StockDecision) -> None:
        if decision.stock is not None:
            self.stock = decision.stock
        if decision.entry is not None:
            self.entry = decision.entry
        self.events.extend(_plain(event) for event in decision.events)

    def pending(self) -> list[Reservation]:
        return [] if self.entry is None else [self.entry]


def _reserve(on_hand: int | None, quantity: int) -> Writer:
    writer = Writer(None if on_hand is None else Stock(on_hand))
    writer.apply(
        stock_steps.reserve(
            writer.stock,
            None,
            order_id=ORDER,
            product_id=PRODUCT,
            quantity=quantity,
            expires_at_ms=TTL,
            now_ms=0,
        )
    )
    return writer


class Timer:
    """An expiry timer as both shells keep it: armed when the units are held, fired by the
    first tick at or after its due time, deleted once fired; a tick redelivered after a crash
    (the same ``now_ms``) finds it again (it is deleted only after what it caused is durable)."""

    def __init__(self, armed: bool) -> None:
        self.armed = armed
        self.fired_at: int | None = None

    def fires(self, now: int) -> bool:
        if now == self.fired_at or (self.armed and now >= TTL):
            self.armed = False
            self.fired_at = now
            return True
        return False


def saga_history(on_hand: int | None, quantity: int, inputs: list[Input]) -> tuple[Any, ...]:
    """Today: the saga decides, the writer applies its commands."""
    placed = saga_steps.place(
        None,
        order_id=ORDER,
        lines=[OrderLine(product_id=PRODUCT, quantity=quantity)],
        fulfilment="all_or_nothing",
        ttl_ms=TTL,
        now_ms=0,
        reply_partition=0,
        policy=POLICY,
    )
    saga = placed.saga
    assert saga is not None and saga.product_decides
    writer = _reserve(on_hand, quantity)
    entry = writer.entry
    assert entry is not None
    answer = saga_steps.answer_line(
        saga,
        PRODUCT,
        "refused" if entry.status == "refused" else "reserved",
        entry.refusal,
        entry.available,
        now_ms=0,
        policy=POLICY,
    )
    saga = _step(saga, answer, writer, 0)
    timer = Timer(any(kind == "expiry" for _due, kind in answer.timers))
    for kind, at, lost in inputs:
        if kind == "pay":
            decision = saga_steps.pay(saga, order_id=ORDER, now_ms=at, policy=POLICY)
        elif kind == "cancel":
            decision = saga_steps.cancel(saga, order_id=ORDER, now_ms=at, policy=POLICY)
        elif timer.fires(at):
            decision = saga_steps.fire_timer(saga, "expiry", now_ms=at, policy=POLICY)
        else:
            continue
        saga = _step(saga, decision, writer, at, lost)
    assert saga is not None
    return _dedup(writer.events), writer.stock, writer.entry, saga.status


def _step(
    saga: Saga | None, decision: SagaDecision, writer: Writer, at: int, lost: bool = False
) -> Saga | None:
    if decision.forget:
        return None
    saga = saga if decision.saga is None else decision.saga
    if lost:
        return saga
    writer.events.extend(_plain(event) for event in decision.raw_events)
    for command in decision.raw_commands:
        assert command["product_id"] == PRODUCT
        if command["type"] == "Confirm":
            writer.apply(
                stock_steps.confirm(writer.stock, writer.entry, now_ms=at, pending=writer.pending)
            )
        elif command["type"] == "Release":
            writer.apply(
                stock_steps.release(writer.stock, writer.entry, reason=command["reason"], now_ms=at)
            )
        else:
            raise AssertionError(f"unexpected command {command}")
    return saga


def entry_history(on_hand: int | None, quantity: int, inputs: list[Input]) -> tuple[Any, ...]:
    """The proposal: the writer decides on the entry."""
    writer = _reserve(on_hand, quantity)
    assert writer.entry is not None
    timer = Timer(writer.entry.status == "pending")
    for kind, at, lost in inputs:
        decision: LineDecision
        if kind == "pay":
            decision = pay_line(
                writer.stock, writer.entry, order_id=ORDER, at_ms=at, pending=writer.pending
            )
        elif kind == "cancel":
            decision = cancel_line(writer.stock, writer.entry, order_id=ORDER, at_ms=at)
        elif timer.fires(at):
            decision = expire_line(writer.stock, writer.entry, now_ms=at)
        else:
            continue
        published = len(writer.events)
        writer.events.extend(_plain(answer) for answer in decision.answers)
        writer.apply(decision.stock)
        if lost:
            del writer.events[published:]
    return _dedup(writer.events), writer.stock, writer.entry, line_end(writer.entry)


def _dedup(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    for event in events:
        if event not in seen:
            seen.append(event)
    return seen


# Times near the expiry (TTL) and repeated often, so that payments land on both sides of it,
# ticks on it, and inputs are redelivered with the same timestamp.
times = st.sampled_from([1, 50, TTL - 1, TTL, TTL + 1, 150])
inputs = st.lists(
    st.tuples(st.sampled_from(["pay", "cancel", "tick"]), times, st.just(False)), max_size=8
)


@settings(max_examples=600, deadline=None)
@given(
    on_hand=st.one_of(st.none(), st.integers(0, 4)),
    quantity=st.integers(1, 3),
    history=inputs,
    redeliver=st.lists(st.integers(0, 7), max_size=3),
    lose=st.lists(st.integers(0, 7), max_size=2, unique=True),
)
@example(
    on_hand=3, quantity=1, history=[("pay", TTL, False), ("pay", TTL, False)], redeliver=[], lose=[]
)
@example(
    on_hand=3,
    quantity=1,
    history=[("tick", TTL, False), ("tick", TTL, False), ("pay", 1, False)],
    redeliver=[],
    lose=[],
)
@example(
    on_hand=3,
    quantity=1,
    history=[("cancel", 1, False), ("cancel", 1, False), ("pay", 1, False)],
    redeliver=[],
    lose=[],
)
@example(
    on_hand=0, quantity=1, history=[("pay", 1, False), ("cancel", 1, False)], redeliver=[], lose=[]
)
def test_entry_decides_as_the_saga_does(
    on_hand: int | None, quantity: int, history: list[Input], redeliver: list[int], lose: list[int]
) -> None:
    # A redelivery: an input processed again right after itself (a crash before its commit),
    # with what it published the first time lost or not.
    for index in sorted(set(redeliver) | set(lose), reverse=True):
        if index < len(history):
            kind, at, _lost = history[index]
            history[index] = (kind, at, index in lose)
            history.insert(index + 1, (kind, at, False))
    events, stock, entry, status = saga_history(on_hand, quantity, history)
    new_events, new_stock, new_entry, new_status = entry_history(on_hand, quantity, history)
    assert new_events == events
    assert new_stock == stock
    assert new_status == status
    assert entry is not None and new_entry is not None
    assert (new_entry.status, new_entry.release_reason) == (entry.status, entry.release_reason)


def test_a_payment_before_the_expiry_confirms() -> None:
    writer = _reserve(2, 1)
    decision = pay_line(writer.stock, writer.entry, order_id=ORDER, at_ms=TTL - 1, pending=list)
    assert decision.answers == ()
    assert [e.type for e in decision.stock.events] == ["ReservationConfirmed"]
    assert decision.stock.stock == Stock(1, 0, 1)


def test_a_payment_after_the_expiry_fails_and_releases() -> None:
    writer = _reserve(2, 1)
    decision = pay_line(writer.stock, writer.entry, order_id=ORDER, at_ms=TTL, pending=list)
    assert [(a.type, a.reason) for a in decision.answers] == [
        ("ReservationConfirmFailed", "expired")
    ]
    assert [e.model_dump()["reason"] for e in decision.stock.events] == ["expired"]
    assert decision.stock.stock == Stock(2, 0, 1)


def test_a_refused_order_answers_without_touching_stock() -> None:
    writer = _reserve(0, 1)
    paid = pay_line(writer.stock, writer.entry, order_id=ORDER, at_ms=1, pending=list)
    cancelled = cancel_line(writer.stock, writer.entry, order_id=ORDER, at_ms=1)
    assert [(a.type, a.reason) for a in paid.answers] == [("ReservationConfirmFailed", "rejected")]
    assert [(a.type, a.reason) for a in cancelled.answers] == [
        ("OrderCancelIgnored", "already_released")
    ]
    assert not paid.stock.changed and not cancelled.stock.changed
    assert line_end(writer.entry) == "rejected"


def test_an_early_tick_leaves_the_hold() -> None:
    writer = _reserve(2, 1)
    assert expire_line(writer.stock, writer.entry, now_ms=TTL - 1).stock is stock_steps.NOTHING
    assert line_end(writer.entry) == "reserved"
