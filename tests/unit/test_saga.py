"""Every decision of ``stockflow.core.saga``: fan-out, answers in any order, all-or-nothing
compensation, partial fulfilment, timeouts, payment, cancellation, expiry, retention, and the
re-derivation a redelivered input must get."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import to_json

from stockflow.core import saga as decide
from stockflow.core import saga_answers as answers
from stockflow.core import saga_effects as effects
from stockflow.core.saga import LineState, SagaDecision
from stockflow.models import (
    Confirm,
    LineAnswer,
    LineRefusal,
    OrderCancelIgnored,
    OrderLine,
    OrderRejected,
    OrderReserved,
    Release,
    ReservationConfirmFailed,
    Reserve,
    ReservedLine,
    iso_from_ms,
)

from fixtures import SAGA_POLICY, SagaDriver, as_json

POLICY = SAGA_POLICY
T0 = 1_000_000
DEADLINE = T0 + POLICY.saga_timeout_ms
EXPIRES = T0 + POLICY.reservation_ttl_ms
NOTHING = SagaDecision()


def driver() -> SagaDriver:
    return SagaDriver(policy=POLICY, reply_partition=2)


def reserved_order(*lines: tuple[str, int], **kwargs) -> SagaDriver:
    """An order whose every line was reserved."""
    saga = driver()
    saga.place(*lines, now=T0, **kwargs)
    for product, quantity in lines:
        saga.answer(product, now=T0 + 10, quantity=quantity)
    assert saga.saga is not None and saga.saga.status == "reserved"
    return saga


def release(product: str, reason: str, order_id: str = "o-1") -> Release:
    return Release(order_id=order_id, product_id=product, reason=reason)


def confirm(product: str, order_id: str = "o-1") -> Confirm:
    return Confirm(order_id=order_id, product_id=product)


# --- place ----------------------------------------------------------------------------------


def test_merge_lines_sums_duplicate_products_in_first_appearance_order() -> None:
    lines = [
        OrderLine(product_id="b", quantity=1),
        OrderLine(product_id="a", quantity=2),
        OrderLine(product_id="b", quantity=3),
    ]
    assert decide.merge_lines(lines) == (
        LineState(product_id="b", quantity=4),
        LineState(product_id="a", quantity=2),
    )


def test_place_fans_out_one_reserve_per_product_with_merged_quantities() -> None:
    # Two lines for the same product are reserved as one (Medusa #16502: checking them
    # separately lets both pass against stock that only covers one).
    saga = driver()
    decision = saga.place(("sku-1", 2), ("sku-2", 1), ("sku-1", 3), now=T0)

    assert decision.events == ()
    assert decision.commands == (
        Reserve(
            order_id="o-1", product_id="sku-1", quantity=5, expires_at_ms=EXPIRES, reply_partition=2
        ),
        Reserve(
            order_id="o-1", product_id="sku-2", quantity=1, expires_at_ms=EXPIRES, reply_partition=2
        ),
    )
    assert decision.timers == ((DEADLINE, "deadline"),)
    assert saga.saga is not None
    assert saga.saga.status == "reserving"
    assert saga.saga.deadline_ms == DEADLINE
    assert saga.saga.expires_at_ms == EXPIRES


@pytest.mark.parametrize(
    ("ttl_ms", "expires"),
    [(10_000, T0 + 10_000), (60_000, EXPIRES), (600_000, EXPIRES), (None, EXPIRES)],
)
def test_an_order_ttl_can_only_shorten_the_configured_one(ttl_ms, expires) -> None:
    saga = driver()
    decision = saga.place(("p", 1), now=T0, ttl_ms=ttl_ms)

    assert saga.saga is not None and saga.saga.expires_at_ms == expires
    assert isinstance(decision.commands[0], Reserve)
    assert decision.commands[0].expires_at_ms == expires


def test_too_many_distinct_products_is_rejected_without_reserving_anything() -> None:
    saga = driver()
    decision = saga.place(("a", 1), ("b", 1), ("c", 1), ("d", 2), now=T0)

    assert decision.commands == ()
    assert decision.events == (
        OrderRejected(
            order_id="o-1",
            reason="invalid_order",
            lines=[
                LineRefusal(product_id=pid, quantity=qty, reason="invalid_order")
                for pid, qty in [("a", 1), ("b", 1), ("c", 1), ("d", 2)]
            ],
        ),
    )
    assert decision.timers == ((T0 + POLICY.retention_ms, "forget"),)
    assert saga.saga is not None and saga.saga.status == "rejected"


def test_max_lines_counts_products_after_merging() -> None:
    saga = driver()
    decision = saga.place(("a", 1), ("a", 1), ("b", 1), ("b", 1), ("c", 1), now=T0)

    assert saga.saga is not None and saga.saga.status == "reserving"
    assert len(decision.commands) == 3


def test_duplicate_place_re_sends_the_reserves_still_unanswered() -> None:
    saga = driver()
    first = saga.place(("a", 1), ("b", 2), now=T0)
    saga.answer("a", now=T0 + 1)

    again = saga.decide("place", T0, lines=[OrderLine(product_id="x", quantity=9)])

    assert again.saga is None  # unchanged, and the duplicate's own lines are ignored
    assert again.commands == first.commands[1:]
    assert again.events == ()


def test_duplicate_place_after_the_outcome_re_emits_the_same_outcome() -> None:
    saga = reserved_order(("a", 1))

    again = saga.decide("place", T0, lines=[OrderLine(product_id="a", quantity=1)])

    assert again.saga is None
    assert as_json(again.events) == as_json(saga.events)


def test_duplicate_place_of_an_order_its_writer_decides_arms_its_expiry_again() -> None:
    # After a crash that lost its Reserve, the expiry timer the first placement armed can fire
    # before the redelivered placement sends the Reserve again: armed again, it fires after.
    policy = replace(POLICY, forward_single_line=True)
    place = {
        "order_id": "o-1",
        "lines": [OrderLine(product_id="a", quantity=2)],
        "fulfilment": "all_or_nothing",
        "ttl_ms": None,
        "now_ms": T0,
        "reply_partition": 0,
        "policy": policy,
    }
    first = decide.place(None, **place)
    assert first.saga is not None and first.saga.forwards

    again = decide.place(first.saga, **place)

    assert again.saga == first.saga  # written again, unchanged
    assert as_json(again.commands) == as_json(first.commands)
    assert again.events == ()
    assert again.timers == first.timers == ((first.saga.expires_at_ms, "expiry"),)

    # Once its writer's answer is known, a duplicate arms nothing.
    ended = replace(first.saga, status="expired", finished_at_ms=T0 + 1)
    assert decide.place(ended, **place).timers == ()


# --- answers --------------------------------------------------------------------------------


@pytest.mark.parametrize("order", list(itertools.permutations(["a", "b", "c"])))
def test_the_order_is_reserved_once_every_line_is_whatever_the_answer_order(order) -> None:
    saga = driver()
    saga.place(("a", 1), ("b", 2), ("c", 3), now=T0)
    quantities = {"a": 1, "b": 2, "c": 3}

    decisions = [
        saga.answer(pid, now=T0 + n, quantity=quantities[pid]) for n, pid in enumerate(order)
    ]

    assert all(decision.events == () for decision in decisions[:-1])
    assert decisions[-1].events == (
        OrderReserved(
            order_id="o-1",
            lines=[ReservedLine(product_id=pid, quantity=quantities[pid]) for pid in "abc"],
            expires_at=iso_from_ms(EXPIRES),
        ),
    )
    assert decisions[-1].commands == ()
    assert decisions[-1].timers == ((EXPIRES, "expiry"),)
    assert saga.saga is not None and saga.saga.status == "reserved"


@pytest.mark.parametrize("order", list(itertools.permutations(["a", "b", "c"])))
def test_one_refusal_rejects_all_or_nothing_and_compensates_every_other_line(order) -> None:
    saga = driver()
    saga.place(("a", 1), ("b", 2), ("c", 3), now=T0)
    answers = {"a": "reserved", "b": "refused", "c": "reserved"}

    for n, pid in enumerate(order):
        saga.answer(pid, answers[pid], now=T0 + n, available=1 if pid == "b" else None)

    # Lines answered before the refusal were reserved, lines after it still pending: both are
    # released, so nothing stays held whatever the answer order.
    assert saga.outcomes() == {
        OrderRejected(
            order_id="o-1",
            reason="insufficient_stock",
            lines=[
                LineRefusal(product_id="a", quantity=1, reason="compensated"),
                LineRefusal(product_id="b", quantity=2, reason="insufficient_stock", available=1),
                LineRefusal(product_id="c", quantity=3, reason="compensated"),
            ],
        ).model_dump_json()
    }
    releases = [command for command in saga.commands if isinstance(command, Release)]
    assert sorted(command.product_id for command in releases) == ["a", "c"]
    assert {command.reason for command in releases} == {"compensation"}
    assert saga.saga is not None and saga.saga.status == "rejected"
    assert not any(isinstance(command, Confirm) for command in saga.commands)


def test_rejection_releases_lines_that_are_still_pending() -> None:
    saga = driver()
    saga.place(("a", 1), ("b", 1), now=T0)

    decision = saga.answer("a", "refused", now=T0 + 1, available=0)

    assert decision.commands == (release("b", "compensation"),)
    assert saga.saga is not None
    assert [line.answer for line in saga.saga.lines] == ["refused", "pending"]
    # The late answer for the pending line changes nothing: its release was already sent.
    late = saga.answer("b", now=T0 + 2)
    assert late == NOTHING


def test_unknown_product_is_the_rejection_reason_when_it_is_the_first_refused_line() -> None:
    saga = driver()
    saga.place(("a", 1), ("b", 1), now=T0)

    decision = saga.answer("a", "refused", now=T0 + 1, reason="unknown_product", available=0)

    rejected = decision.events[0]
    assert isinstance(rejected, OrderRejected)
    assert rejected.reason == "unknown_product"


def test_answers_for_products_not_in_the_order_or_acknowledgements_change_nothing() -> None:
    saga = driver()
    saga.place(("a", 1), now=T0)

    assert saga.answer("zzz", now=T0 + 1) == NOTHING
    assert saga.answer("a", "confirmed", now=T0 + 1) == NOTHING
    assert saga.answer("a", "released", now=T0 + 1) == NOTHING
    assert saga.saga is not None and saga.saga.lines[0].answer == "pending"


def test_an_answer_for_an_order_with_no_saga_is_left_to_the_redelivered_order() -> None:
    # After a crash a line answer can be read before the redelivered OrderPlaced that recreates
    # the saga; compensating it released units the order then reported reserved (chaos suite).
    reply = LineAnswer(order_id="gone", product_id="p", status="reserved", quantity=2)
    assert decide.answer(None, reply, now_ms=T0, policy=POLICY) == NOTHING

    refused = reply.model_copy(update={"status": "refused", "reason": "insufficient_stock"})
    assert decide.answer(None, refused, now_ms=T0, policy=POLICY) == NOTHING


# --- partial fulfilment ---------------------------------------------------------------------


def test_partial_order_holds_what_fits_and_lists_what_did_not() -> None:
    saga = driver()
    saga.place(("a", 1), ("b", 2), ("c", 3), now=T0, fulfilment="partial")

    saga.answer("b", "refused", now=T0 + 1, quantity=2, available=1)
    assert saga.events == []  # no early rejection: the other lines may still be held
    saga.answer("a", now=T0 + 2)
    decision = saga.answer("c", now=T0 + 3, quantity=3)

    assert decision.events == (
        OrderReserved(
            order_id="o-1",
            lines=[
                ReservedLine(product_id="a", quantity=1),
                ReservedLine(product_id="c", quantity=3),
            ],
            expires_at=iso_from_ms(EXPIRES),
            partial=True,
            refused=[
                LineRefusal(product_id="b", quantity=2, reason="insufficient_stock", available=1)
            ],
        ),
    )
    paid = saga.pay(now=T0 + 4)
    assert paid.commands == (confirm("a"), confirm("c"))


def test_partial_order_expiry_releases_only_the_held_lines() -> None:
    saga = driver()
    saga.place(("a", 1), ("b", 2), now=T0, fulfilment="partial")
    saga.answer("a", now=T0 + 1)
    saga.answer("b", "refused", now=T0 + 2, quantity=2)

    decision = saga.fire("expiry", now=EXPIRES)

    assert decision.commands == (release("a", "expired"),)


def test_partial_order_with_nothing_held_is_rejected() -> None:
    saga = driver()
    saga.place(("a", 1), ("b", 2), now=T0, fulfilment="partial")
    saga.answer("a", "refused", now=T0 + 1, reason="unknown_product")
    decision = saga.answer("b", "refused", now=T0 + 2, quantity=2)

    assert decision.commands == ()
    rejected = decision.events[0]
    assert isinstance(rejected, OrderRejected)
    assert rejected.reason == "unknown_product"


# --- deadline -------------------------------------------------------------------------------


def test_deadline_rejects_with_timeout_and_compensates_reserved_and_pending_lines() -> None:
    saga = driver()
    saga.place(("a", 1), ("b", 2), now=T0)
    saga.answer("a", now=T0 + 1)

    assert saga.fire("deadline", now=DEADLINE - 1) == NOTHING
    decision = saga.fire("deadline", now=DEADLINE)

    assert decision.events == (
        OrderRejected(
            order_id="o-1",
            reason="timeout",
            lines=[
                LineRefusal(product_id="a", quantity=1, reason="compensated"),
                LineRefusal(product_id="b", quantity=2, reason="timeout"),
            ],
        ),
    )
    assert decision.commands == (release("a", "compensation"), release("b", "compensation"))
    assert decision.timers == ((DEADLINE + POLICY.retention_ms, "forget"),)


def test_a_late_reserved_answer_after_the_timeout_changes_nothing() -> None:
    saga = driver()
    saga.place(("a", 1), ("b", 2), now=T0)
    timed_out = saga.fire("deadline", now=DEADLINE)
    state = saga.saga

    late = saga.answer("b", now=DEADLINE + 5, quantity=2)

    assert late.saga is None and saga.saga == state
    # Only what the timeout already sent is re-derived: the same outcome, the same releases.
    assert as_json(late.events) == as_json(timed_out.events)
    assert late.commands == timed_out.commands


def test_deadline_replayed_in_the_same_tick_re_derives_and_any_later_tick_does_nothing() -> None:
    saga = driver()
    saga.place(("a", 1), now=T0)
    first = saga.fire("deadline", now=DEADLINE)

    assert saga.decide("timer", DEADLINE, timer="deadline") == SagaDecision(
        events=first.events, commands=first.commands
    )
    assert saga.decide("timer", DEADLINE + 1, timer="deadline") == NOTHING


def test_deadline_after_the_outcome_does_nothing() -> None:
    saga = reserved_order(("a", 1))
    assert saga.fire("deadline", now=DEADLINE) == NOTHING


# --- pay ------------------------------------------------------------------------------------


def test_pay_while_reserving_is_deferred_until_every_line_is_held() -> None:
    saga = driver()
    saga.place(("a", 1), ("b", 2), now=T0)
    saga.answer("a", now=T0 + 1)

    deferred = saga.pay(now=T0 + 2)
    assert deferred.events == () and deferred.commands == ()
    assert saga.saga is not None and saga.saga.pay_requested

    decision = saga.answer("b", now=T0 + 3, quantity=2)

    assert [type(event) for event in decision.events] == [OrderReserved]
    assert decision.commands == (confirm("a"), confirm("b"))
    assert saga.saga.status == "confirmed"


def test_pay_deferred_then_rejected_says_the_payment_failed() -> None:
    saga = driver()
    saga.place(("a", 1), now=T0)
    saga.pay(now=T0 + 1)

    decision = saga.answer("a", "refused", now=T0 + 2)

    # A single-line order: the product writer published OrderRejected with the answer; the
    # saga publishes what the deferred payment is owed, after it.
    assert [type(event) for event in saga.events] == [OrderRejected, ReservationConfirmFailed]
    assert decision.events == (ReservationConfirmFailed(order_id="o-1", reason="rejected"),)


def test_pay_confirms_every_held_line_at_once() -> None:
    saga = reserved_order(("a", 1), ("b", 2))

    decision = saga.pay(now=T0 + 100)

    assert decision.events == ()
    assert decision.commands == (confirm("a"), confirm("b"))
    assert decision.timers == ((T0 + 100 + POLICY.retention_ms, "forget"),)
    assert saga.saga is not None and saga.saga.status == "confirmed"


def test_duplicate_pay_re_sends_the_same_confirms() -> None:
    saga = reserved_order(("a", 1), ("b", 2))
    first = saga.pay(now=T0 + 100)

    again = saga.decide("pay", T0 + 100)

    assert again == SagaDecision(commands=first.commands)


def test_pay_stamped_after_expiry_fails_and_releases_even_before_the_timer_ran() -> None:
    saga = reserved_order(("a", 1))

    decision = saga.pay(now=EXPIRES)

    assert decision.events == (ReservationConfirmFailed(order_id="o-1", reason="expired"),)
    assert decision.commands == (release("a", "expired"),)
    assert saga.saga is not None and saga.saga.status == "expired"
    # A later expiry tick finds it done.
    assert saga.fire("expiry", now=EXPIRES + 500) == NOTHING


def test_redelivered_pay_after_expiry_re_derives_the_releases() -> None:
    saga = reserved_order(("a", 1))
    first = saga.pay(now=EXPIRES + 7)

    again = saga.decide("pay", EXPIRES + 7)

    assert again.saga is None
    assert again.events == first.events
    assert again.commands == first.commands


@pytest.mark.parametrize(
    ("finish", "reason"),
    [("cancel", "cancelled"), ("expiry", "expired"), ("reject", "rejected"), ("none", "unknown")],
)
def test_pay_after_the_order_ended_says_why_it_failed(finish, reason) -> None:
    saga = driver()
    if finish == "reject":
        saga.place(("a", 1), now=T0)
        saga.answer("a", "refused", now=T0 + 1)
    elif finish != "none":
        saga = reserved_order(("a", 1))
        if finish == "cancel":
            saga.cancel(now=T0 + 20)
        else:
            saga.fire("expiry", now=EXPIRES)
    state = saga.saga

    decision = saga.pay(now=EXPIRES + 1)

    expected = "unknown_order" if reason == "unknown" else reason
    assert decision == SagaDecision(
        events=(ReservationConfirmFailed(order_id="o-1", reason=expected),)
    )
    assert saga.saga == state


# --- cancel ---------------------------------------------------------------------------------


def test_cancel_of_a_held_order_releases_every_line() -> None:
    saga = reserved_order(("a", 1), ("b", 2))

    decision = saga.cancel(now=T0 + 50)

    assert decision.events == ()
    assert decision.commands == (release("a", "cancelled"), release("b", "cancelled"))
    assert saga.saga is not None and saga.saga.status == "cancelled"
    # Redelivered: the same releases, nothing else.
    assert saga.decide("cancel", T0 + 50) == SagaDecision(commands=decision.commands)


def test_cancel_while_reserving_is_applied_once_the_order_is_held() -> None:
    saga = driver()
    saga.place(("a", 1), now=T0)
    deferred = saga.cancel(now=T0 + 1)
    assert deferred.events == () and deferred.commands == ()

    decision = saga.answer("a", now=T0 + 2)

    # The outcome is still announced (lines were held: by the product writer, for a single-line
    # order), then released at once.
    assert [type(event) for event in saga.events] == [OrderReserved]
    assert decision.events == ()
    assert decision.commands == (release("a", "cancelled"),)
    assert saga.saga is not None and saga.saga.status == "cancelled"


def test_cancel_while_reserving_of_an_order_that_is_then_rejected_stays_rejected() -> None:
    saga = driver()
    saga.place(("a", 1), ("b", 1), now=T0)
    saga.cancel(now=T0 + 1)
    saga.answer("a", now=T0 + 2)
    decision = saga.answer("b", "refused", now=T0 + 3)

    # The cancellation is told what it would be told after the rejection: nothing to release.
    assert [type(event) for event in decision.events] == [OrderRejected, OrderCancelIgnored]
    assert decision.events[1] == OrderCancelIgnored(order_id="o-1", reason="already_released")
    assert decision.commands == (release("a", "compensation"),)


def test_cancel_then_pay_both_deferred_never_swallow_the_payment() -> None:
    saga = driver()
    saga.place(("a", 1), now=T0)
    saga.cancel(now=T0 + 1)
    saga.pay(now=T0 + 2)

    decision = saga.answer("a", now=T0 + 3)

    assert saga.saga is not None and saga.saga.status == "cancelled"
    assert decision.commands == (release("a", "cancelled"),)
    # The payment was captured and cannot be applied: it must be refunded, so say so (after
    # the outcome, which the product writer published with the answer).
    assert [type(event) for event in saga.events] == [OrderReserved, ReservationConfirmFailed]
    assert decision.events == (ReservationConfirmFailed(order_id="o-1", reason="cancelled"),)
    # A redelivered last answer re-derives exactly that.
    again = saga.decide("answer", T0 + 3, reply=saga.inputs[-1][2]["reply"])
    assert as_json(again.events) == as_json(decision.events)
    assert again.commands == decision.commands


def test_pay_then_cancel_both_deferred_confirm_and_ignore_the_cancellation() -> None:
    saga = driver()
    saga.place(("a", 1), now=T0)
    saga.pay(now=T0 + 1)
    saga.cancel(now=T0 + 2)

    decision = saga.answer("a", now=T0 + 3)

    assert saga.saga is not None and saga.saga.status == "confirmed"
    assert decision.commands == (confirm("a"),)
    assert [type(event) for event in saga.events] == [OrderReserved, OrderCancelIgnored]
    assert decision.events == (OrderCancelIgnored(order_id="o-1", reason="already_confirmed"),)
    again = saga.decide("answer", T0 + 3, reply=saga.inputs[-1][2]["reply"])
    assert as_json(again.events) == as_json(decision.events)
    assert again.commands == decision.commands


@pytest.mark.parametrize("answer", ["reserved", "refused"])
@pytest.mark.parametrize("requests", [("pay", "cancel"), ("cancel", "pay"), ("cancel",), ("pay",)])
@pytest.mark.parametrize("answered_after", [0, 1, 2])
def test_where_the_outcome_falls_among_the_requests_changes_nothing(
    requests: tuple[str, ...], answered_after: int, answer: str
) -> None:
    # The line answers come on another topic than payments and cancellations, read beside it:
    # after a crash a replay may see the answer before, between or after the two requests.
    # Whatever it sees, the order ends the same way and the same things are said of it.
    def run(position: int) -> SagaDriver:
        saga = driver()
        saga.place(("a", 1), ("b", 1), now=T0)
        saga.answer("a", now=T0 + 1)
        steps: list[str] = list(requests)
        steps.insert(min(position, len(steps)), "answer")
        for offset, step in enumerate(steps, start=2):
            if step == "answer":
                saga.answer("b", answer, now=T0 + offset)
            else:
                getattr(saga, step)(now=T0 + offset)
        return saga

    reference, replay = run(len(requests)), run(answered_after)
    assert reference.saga is not None and replay.saga is not None
    assert replay.saga.status == reference.saga.status
    assert sorted(as_json(replay.events)) == sorted(as_json(reference.events))
    assert [c for c in replay.commands if not isinstance(c, Reserve)] == [
        c for c in reference.commands if not isinstance(c, Reserve)
    ]


@pytest.mark.parametrize(
    ("finish", "reason"),
    [
        ("pay", "already_confirmed"),
        ("expiry", "already_released"),
        ("reject", "already_released"),
        ("none", "unknown_order"),
    ],
)
def test_cancel_that_changes_nothing_says_why(finish, reason) -> None:
    saga = driver()
    if finish == "reject":
        saga.place(("a", 1), now=T0)
        saga.answer("a", "refused", now=T0 + 1)
    elif finish != "none":
        saga = reserved_order(("a", 1))
        if finish == "pay":
            saga.pay(now=T0 + 20)
        else:
            saga.fire("expiry", now=EXPIRES)
    state = saga.saga

    decision = saga.cancel(now=EXPIRES + 1)

    assert decision == SagaDecision(events=(OrderCancelIgnored(order_id="o-1", reason=reason),))
    assert saga.saga == state


# --- expiry and retention -------------------------------------------------------------------


def test_expiry_releases_a_held_order_that_was_not_paid() -> None:
    saga = reserved_order(("a", 1), ("b", 2))

    assert saga.fire("expiry", now=EXPIRES - 1) == NOTHING
    decision = saga.fire("expiry", now=EXPIRES)

    assert decision.events == ()
    assert decision.commands == (release("a", "expired"), release("b", "expired"))
    assert decision.timers == ((EXPIRES + POLICY.retention_ms, "forget"),)
    assert saga.saga is not None and saga.saga.status == "expired"
    # Replayed in the same tick: the same releases. Any later tick: nothing.
    assert saga.decide("timer", EXPIRES, timer="expiry") == SagaDecision(commands=decision.commands)
    assert saga.decide("timer", EXPIRES + 1, timer="expiry") == NOTHING


@pytest.mark.parametrize("finish", ["pay", "cancel"])
def test_expiry_of_an_order_that_already_ended_does_nothing(finish) -> None:
    saga = reserved_order(("a", 1))
    getattr(saga, finish)(now=T0 + 20)

    assert saga.fire("expiry", now=EXPIRES) == NOTHING


def test_a_finished_saga_is_forgotten_after_retention_and_not_before() -> None:
    saga = reserved_order(("a", 1))
    saga.pay(now=T0 + 20)
    forget_at = T0 + 20 + POLICY.retention_ms

    assert saga.fire("forget", now=forget_at - 1) == NOTHING
    assert saga.fire("forget", now=forget_at) == SagaDecision(forget=True)
    assert saga.saga is None
    assert decide.fire_timer(None, "forget", now_ms=forget_at, policy=POLICY) == NOTHING


def test_a_saga_still_holding_units_is_never_forgotten() -> None:
    saga = reserved_order(("a", 1))
    assert saga.fire("forget", now=T0 + 10 * POLICY.retention_ms) == NOTHING
    assert saga.saga is not None


# --- redelivery of every input --------------------------------------------------------------

SCENARIOS = {
    "reserved-paid": [
        ("place", T0, {"lines": [("a", 1), ("b", 2), ("a", 1)]}),
        ("answer", T0 + 1, {"product": "b", "status": "reserved", "quantity": 2}),
        ("answer", T0 + 2, {"product": "a", "status": "reserved", "quantity": 2}),
        ("pay", T0 + 3, {}),
        ("cancel", T0 + 4, {}),
        ("timer", EXPIRES, {"timer": "expiry"}),
    ],
    "refused-compensated": [
        ("place", T0, {"lines": [("a", 1), ("b", 2), ("c", 3)]}),
        ("answer", T0 + 1, {"product": "a", "status": "reserved", "quantity": 1}),
        ("pay", T0 + 2, {}),
        ("answer", T0 + 3, {"product": "b", "status": "refused", "quantity": 2}),
        ("answer", T0 + 4, {"product": "c", "status": "reserved", "quantity": 3}),
        ("cancel", T0 + 5, {}),
        ("timer", DEADLINE, {"timer": "deadline"}),
    ],
    "timeout": [
        ("place", T0, {"lines": [("a", 1), ("b", 2)]}),
        ("answer", T0 + 1, {"product": "a", "status": "reserved", "quantity": 1}),
        ("cancel", T0 + 2, {}),
        ("timer", DEADLINE, {"timer": "deadline"}),
        ("answer", DEADLINE + 1, {"product": "b", "status": "reserved", "quantity": 2}),
        ("pay", DEADLINE + 2, {}),
    ],
    "expired-then-paid": [
        ("place", T0, {"lines": [("a", 1)], "fulfilment": "partial"}),
        ("answer", T0 + 1, {"product": "a", "status": "reserved", "quantity": 1}),
        ("pay", EXPIRES, {}),
        ("timer", EXPIRES + 1, {"timer": "expiry"}),
        ("cancel", EXPIRES + 2, {}),
    ],
    "cancelled": [
        ("place", T0, {"lines": [("a", 1), ("b", 1)], "fulfilment": "partial"}),
        ("answer", T0 + 1, {"product": "a", "status": "refused", "quantity": 1}),
        ("pay", T0 + 2, {}),
        ("cancel", T0 + 3, {}),
        ("answer", T0 + 4, {"product": "b", "status": "reserved", "quantity": 1}),
        ("timer", T0 + 5, {"timer": "expiry"}),
    ],
}


def _run(saga: SagaDriver, kind: str, now: int, args: dict) -> SagaDecision:
    if kind == "place":
        lines = args["lines"]
        extra = {key: value for key, value in args.items() if key != "lines"}
        return saga.place(*lines, now=now, **extra)
    if kind == "answer":
        return saga.answer(args["product"], args["status"], now=now, quantity=args["quantity"])
    if kind == "timer":
        return saga.fire(args["timer"], now=now)
    return saga.do(kind, now)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_input_redelivered_at_any_later_point_derives_nothing_new(name) -> None:
    saga = driver()
    for kind, now, args in SCENARIOS[name]:
        _run(saga, kind, now, args)
        for old_kind, old_now, old_args in list(saga.inputs):
            again = saga.decide(old_kind, old_now, **old_args)
            assert again.saga is None or again.saga == saga.saga, (old_kind, old_now)
            assert not again.forget
            assert set(as_json(again.commands)) <= set(as_json(saga.commands)), (old_kind, old_now)
            new_events = set(as_json(again.events)) - set(as_json(saga.events))
            # A cancel that was absorbed while reserving got no answer of its own; its
            # redelivery may explain itself. Nothing else may appear for the first time.
            assert all('"OrderCancelIgnored"' in event for event in new_events), new_events
        assert len(saga.outcomes()) <= 1


def test_a_reserve_redelivered_after_a_refusal_that_succeeds_is_compensated() -> None:
    # Found on two real workers: a duplicate OrderPlaced re-sent the Reserve of a line still
    # waiting; the first Reserve was refused, the second found units freed in between.
    saga = driver()
    saga.place(("a", 1), ("b", 2), now=T0, fulfilment="partial")
    saga.answer("b", "refused", now=T0 + 1, quantity=2)
    saga.answer("a", now=T0 + 2)
    decided = saga.saga

    late = saga.answer("b", now=T0 + 3, quantity=2)

    assert late.saga is None and saga.saga == decided
    assert late.events == ()
    assert late.commands == (
        Release(order_id=decided.order_id, product_id="b", reason="compensation"),
    )


def test_a_payment_before_its_order_keeps_its_answer_when_redelivered() -> None:
    # Chaos suite, defect B: answered unknown_order at first, confirmed on redelivery.
    placed = decide.place(
        None,
        order_id="o",
        lines=[OrderLine(product_id="p", quantity=1)],
        fulfilment="all_or_nothing",
        ttl_ms=None,
        now_ms=T0,
        reply_partition=0,
        policy=POLICY,
        placed_at=(0, 10),
    )
    assert placed.saga is not None
    held = decide.answer(
        placed.saga,
        LineAnswer(order_id="o", product_id="p", status="reserved", quantity=1),
        now_ms=T0 + 1,
        policy=POLICY,
    ).saga
    early = decide.pay(None, order_id="o", now_ms=T0, policy=POLICY, command_at=(0, 7))
    again = decide.pay(held, order_id="o", now_ms=T0 + 2, policy=POLICY, command_at=(0, 7))
    assert again == early
    cancel_again = decide.cancel(held, order_id="o", now_ms=T0, policy=POLICY, command_at=(0, 8))
    assert cancel_again == decide.cancel(None, order_id="o", now_ms=T0, policy=POLICY)
    later = decide.pay(held, order_id="o", now_ms=T0 + 2, policy=POLICY, command_at=(0, 11))
    assert later.saga is not None and later.saga.status == "confirmed"


def test_the_answer_deadline_counts_from_when_the_saga_starts_waiting() -> None:
    # An order that queued while no worker ran is not timed out the moment one comes back.
    placed = decide.place(
        None,
        order_id="o",
        lines=[OrderLine(product_id="p", quantity=1), OrderLine(product_id="q", quantity=1)],
        fulfilment="all_or_nothing",
        ttl_ms=None,
        now_ms=T0,
        reply_partition=0,
        policy=POLICY,
        started_ms=T0 + 600_000,
    )
    assert placed.saga is not None
    assert placed.saga.deadline_ms == T0 + 600_000 + POLICY.saga_timeout_ms
    assert placed.saga.expires_at_ms == T0 + POLICY.reservation_ttl_ms
    assert placed.timers == ((placed.saga.deadline_ms, "deadline"),)


# --- single-line orders: the product writer decides and publishes ------------------------------


def test_a_single_line_order_asks_its_product_for_the_outcome_and_has_no_deadline() -> None:
    saga = driver()
    placed = saga.place(("a", 2), now=T0)

    assert placed.commands == (
        Reserve(
            order_id="o-1",
            product_id="a",
            quantity=2,
            expires_at_ms=EXPIRES,
            reply_partition=2,
            outcome=True,
        ),
    )
    assert placed.timers == ()  # no answer deadline: only the product's answer decides
    assert saga.saga is not None and saga.saga.product_decides
    # Even a deadline timer (from an older version) past due changes nothing.
    assert saga.fire("deadline", now=DEADLINE + 1) == NOTHING
    assert saga.saga.status == "reserving"

    answered = saga.answer("a", now=DEADLINE + 2, quantity=2)

    # The product writer published OrderReserved with its answer; the saga does not repeat it.
    assert answered.events == ()
    assert answered.timers == ((EXPIRES, "expiry"),)
    assert saga.saga.status == "reserved"
    assert [type(event) for event in saga.events] == [OrderReserved]


def test_a_single_line_saga_written_before_product_decides_still_publishes_its_outcome() -> None:
    saga = driver()
    saga.place(("a", 1), now=T0)
    assert saga.saga is not None
    saga.saga = replace(saga.saga, product_decides=False)  # as decoded from an older version

    decision = saga.answer("a", now=T0 + 1)

    assert [type(event) for event in decision.events] == [OrderReserved]


# --- the plain path for common answers --------------------------------------------------------

ANSWER_LINES = st.builds(
    LineState,
    product_id=st.sampled_from(["p", "q", "r"]),
    quantity=st.integers(1, 3),
    answer=st.sampled_from(["pending", "reserved", "refused"]),
    reason=st.none() | st.sampled_from(["insufficient_stock", "unknown_product", "timeout"]),
    available=st.none() | st.integers(0, 3),
    action=st.sampled_from(["reserve", "confirm", "release", "none"]),
    release_reason=st.none() | st.sampled_from(["cancelled", "expired", "compensation"]),
)
ANSWERED_SAGAS = st.builds(
    decide.Saga,
    order_id=st.just("o-1"),
    lines=st.lists(ANSWER_LINES, min_size=1, max_size=3).map(tuple),
    fulfilment=st.sampled_from(["all_or_nothing", "partial"]),
    status=st.sampled_from(["reserving", "reserving", "reserved"]),
    placed_at_ms=st.just(T0),
    deadline_ms=st.just(DEADLINE),
    expires_at_ms=st.just(EXPIRES),
    reply_partition=st.just(2),
    pay_requested=st.booleans(),
    cancel_requested=st.booleans(),
    first_request=st.none() | st.sampled_from(["pay", "cancel"]),
    product_decides=st.booleans(),
)


@settings(max_examples=600, deadline=None, derandomize=True, database=None)
@given(
    saga=ANSWERED_SAGAS,
    product=st.sampled_from(["p", "q", "r", "x"]),
    status=st.sampled_from(["reserved", "refused", "confirmed", "released"]),
    reason=st.none() | st.sampled_from(["insufficient_stock", "unknown_product"]),
    available=st.none() | st.integers(0, 3),
)
def test_common_answers_decide_exactly_as_the_general_path(
    saga, product, status, reason, available
) -> None:
    found = decide.answer_line(
        saga, product, status, reason, available, now_ms=T0 + 20, policy=POLICY
    )
    general = answers.answer_generally(saga, product, status, reason, available, T0 + 20, POLICY)
    assert found == general
    assert found.raw_events == general.raw_events  # the same objects, byte for byte encoded


def test_the_plain_path_takes_the_common_answers() -> None:
    single = driver()
    single.place(("p", 1), now=T0)
    assert single.saga is not None and single.saga.product_decides
    assert answers.answer_plainly(single.saga, "p", "reserved", None, None, T0, POLICY)
    assert answers.answer_plainly(single.saga, "p", "refused", "unknown_product", 0, T0, POLICY)
    multi = driver()
    multi.place(("p", 1), ("q", 2), now=T0)
    assert multi.saga is not None
    assert answers.answer_plainly(multi.saga, "q", "reserved", None, None, T0, POLICY)
    assert answers.answer_plainly(multi.saga, "q", "refused", "timeout", 0, T0, POLICY) is None


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(
    quantity=st.integers(1, 10**9),
    ttl_ms=st.none() | st.integers(1, 10**8),
    started_ms=st.none() | st.integers(0, 10**7),
)
def test_a_single_line_place_derives_exactly_its_effects(quantity, ttl_ms, started_ms) -> None:
    decision = decide.place(
        None,
        order_id="o-1",
        lines=[OrderLine(product_id="p", quantity=quantity)],
        fulfilment="all_or_nothing",
        ttl_ms=ttl_ms,
        now_ms=T0,
        reply_partition=2,
        policy=POLICY,
        placed_at=(2, 7),
        started_ms=started_ms,
    )
    assert decision.saga is not None and decision.saga.product_decides
    derived = effects.with_effects(decision.saga)
    assert decision == derived
    assert [to_json(c) for c in decision.raw_commands] == [to_json(c) for c in derived.raw_commands]


WAITING_ON_ITS_PRODUCT = ANSWERED_SAGAS.map(
    lambda saga: replace(
        saga,
        lines=(replace(saga.lines[0], answer="pending", action="reserve"),),
        status="reserving",
        pay_requested=False,
        cancel_requested=False,
        first_request=None,
        product_decides=True,
    )
)


@settings(max_examples=600, deadline=None, derandomize=True, database=None)
@given(saga=WAITING_ON_ITS_PRODUCT | ANSWERED_SAGAS, now=st.integers(T0, EXPIRES + 10))
def test_a_held_single_line_order_is_exactly_what_its_reserved_answer_decides(saga, now) -> None:
    # The order desk stores this answer as the expiry timer's value instead of the saga
    # (processing.held.HELD): reading it back must give what answer_line decided.
    held = answers.held_by_product(saga)
    if held is None:
        return
    product = saga.lines[0].product_id
    decision = decide.answer_line(saga, product, "reserved", None, None, now_ms=now, policy=POLICY)
    assert decision.saga == held
    assert decision.timers == ((saga.expires_at_ms, "expiry"),)
    assert decision.raw_events == () and decision.raw_commands == () and not decision.forget


@settings(max_examples=600, deadline=None, derandomize=True, database=None)
@given(saga=WAITING_ON_ITS_PRODUCT | ANSWERED_SAGAS)
def test_may_be_held_says_whether_held_by_product_gives_a_saga(saga) -> None:
    # The order desk asks the cheap question of every reply, the costly one never on that path.
    assert answers.may_be_held(saga) == (answers.held_by_product(saga) is not None)


def test_only_a_single_line_order_waiting_on_its_product_alone_can_be_held() -> None:
    single = driver()
    single.place(("p", 1), now=T0)
    assert single.saga is not None
    assert answers.held_by_product(single.saga) is not None
    paid = replace(single.saga, pay_requested=True, first_request="pay")
    assert answers.held_by_product(paid) is None
    multi = driver()
    multi.place(("p", 1), ("q", 2), now=T0)
    assert multi.saga is not None and answers.held_by_product(multi.saga) is None


@st.composite
def reserving_with_answers(draw):
    """A saga still reserving, nothing deferred, and the products of some pending lines."""
    names = draw(st.lists(st.sampled_from(["p", "q", "r", "s"]), min_size=1, unique=True))
    lines = tuple(
        LineState(name, draw(st.integers(1, 3)), draw(st.sampled_from(["pending", "reserved"])))
        for name in names
    )
    saga = replace(
        draw(ANSWERED_SAGAS),
        lines=lines,
        status="reserving",
        pay_requested=False,
        cancel_requested=False,
        first_request=None,
    )
    pending = [line.product_id for line in lines if line.answer == "pending"]
    products = draw(st.permutations(pending)) if pending else ["p"]
    return saga, products[: draw(st.integers(1, max(len(products), 1)))]


@settings(max_examples=800, deadline=None, derandomize=True, database=None)
@given(
    case=reserving_with_answers()
    | st.tuples(
        ANSWERED_SAGAS, st.lists(st.sampled_from(["p", "q", "r", "x"]), min_size=1, max_size=4)
    )
)
def test_lines_reserved_together_decide_as_one_answer_after_another(case) -> None:
    # The order desk takes an order's reserved answers of one record together when it can.
    saga, products = case
    together = answers.answer_reserved(saga, products)
    if together is None:
        return
    state, events, commands, timers = saga, [], [], []
    for product in products:
        step = decide.answer_line(
            state, product, "reserved", None, None, now_ms=T0 + 20, policy=POLICY
        )
        assert not step.forget
        state = step.saga if step.saga is not None else state
        events.extend(step.raw_events)
        commands.extend(step.raw_commands)
        timers.extend(step.timers)
    assert together.saga == state
    assert list(together.raw_events) == events
    assert list(together.raw_commands) == commands
    assert list(together.timers) == timers


def test_a_multi_line_order_answered_in_one_record_is_decided_together() -> None:
    multi = driver()
    multi.place(("p", 1), ("q", 2), ("r", 1), now=T0)
    assert multi.saga is not None
    both = answers.answer_reserved(multi.saga, ["q", "p"])
    assert both is not None and both.saga is not None and both.saga.status == "reserving"
    every = answers.answer_reserved(multi.saga, ["r", "q", "p"])
    assert every is not None and every.saga is not None and every.saga.status == "reserved"
    assert [type(event) for event in every.events] == [OrderReserved]
    assert answers.answer_reserved(multi.saga, ["p", "p"]) is None
    assert answers.answer_reserved(multi.saga, ["p", "x"]) is None
