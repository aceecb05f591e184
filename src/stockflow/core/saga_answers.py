"""A saga learns a line's answer: the common answers decided directly, the rest through the
general path that re-decides the order from all of its lines."""

from __future__ import annotations

from dataclasses import replace

from stockflow.commands import AnswerStatus, LineAnswer, Release
from stockflow.core.policy import Policy
from stockflow.core.saga_effects import (
    confirm_all,
    deferred_answers,
    derive_effects,
    finish_holding,
    is_outcome,
    outcome_events,
    payment_failure,
    reject,
    with_effects,
)
from stockflow.core.saga_state import (
    NOTHING,
    LineState,
    Saga,
    SagaDecision,
    saga_with,
)
from stockflow.core.single_line import ended_saga
from stockflow.reasons import RefusalReason, RejectionReason

__all__ = [
    "answer",
    "answer_forwarded",
    "answer_generally",
    "answer_line",
    "answer_plainly",
    "answer_reserved",
    "held_by_product",
    "line_index",
    "may_be_held",
]


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
    if saga is not None and saga.forwards and status != "refused":
        return answer_forwarded(saga, product_id, status, now_ms=now_ms, policy=policy)
    if saga is not None and saga.status == "reserving":
        fast = answer_plainly(saga, product_id, status, reason, available, now_ms, policy)
        if fast is not None:
            return fast
    return answer_generally(saga, product_id, status, reason, available, now_ms, policy)


def answer_forwarded(
    saga: Saga, product_id: str, status: AnswerStatus, *, now_ms: int, policy: Policy
) -> SagaDecision:
    """A saga that ``forwards`` its order's payment, cancellation and expiry learns how the
    order ended (``confirmed``, ``cancelled`` or ``expired``, reported by the product writer
    that decided it and published what it implied): it finishes, publishing nothing. Its
    refusal is answered as any single-line order's; anything else changes nothing (a report
    again, or a ``reserved`` answer, which a writer never sends for these)."""
    if saga.status != "reserving" or saga.lines[0].product_id != product_id:
        return NOTHING
    if status != "confirmed" and status != "cancelled" and status != "expired":
        return NOTHING
    done = ended_saga(saga, status)
    done.finished_at_ms = now_ms  # a new record, built just above: not a change in place
    return SagaDecision(done, (), (), ((now_ms + policy.retention_ms, "forget"),))


def answer_generally(
    saga: Saga | None,
    product_id: str,
    status: AnswerStatus,
    reason: RefusalReason | None,
    available: int | None,
    now_ms: int,
    policy: Policy,
) -> SagaDecision:
    """Any answer through the general path (:func:`answer_plainly` takes the common ones the
    same way, faster; a property test holds the two to the same decisions)."""
    decision = _answer(saga, product_id, status, reason, available, now_ms=now_ms, policy=policy)
    if saga is not None and saga.product_decides and decision.raw_events:
        return decision.with_events(
            tuple(event for event in decision.raw_events if not is_outcome(event))
        )
    return decision


def answer_plainly(
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
    Each result is exactly what :func:`answer_generally` gives;
    tests/unit/test_saga.py checks that for every saga state."""
    if saga.pay_requested or saga.cancel_requested:
        return None
    if status == "reserved":
        return answer_reserved(saga, [product_id])
    if status != "refused" or not saga.product_decides or len(saga.lines) != 1:
        return None
    line = saga.lines[0]
    if line.product_id != product_id or line.answer != "pending" or line.action != "reserve":
        return None
    refused = LineState(product_id, line.quantity, "refused", reason, available, "none")
    rejection: RejectionReason = (
        "unknown_product" if reason == "unknown_product" else "insufficient_stock"
    )
    done = saga_with(saga, (refused,), "rejected")
    done.rejection = rejection  # a new record, built just above: not a change in place
    done.finished_at_ms = now_ms
    return SagaDecision(done, (), (), ((now_ms + policy.retention_ms, "forget"),))


def answer_reserved(saga: Saga, product_ids: list[str]) -> SagaDecision | None:
    """Lines of one order reserved by answers of one reply record, decided at once: exactly
    what :func:`answer_line` decides for them one after the other (a property test holds the
    two equal), while nothing was deferred and no line was refused. ``None`` for anything
    else: the caller then answers them one by one. :func:`answer_plainly` takes a single
    reserved answer this way.

    A multi-line order's answers usually come in one record (its Reserves leave together and
    are answered in the same fetch): the saga is rebuilt once instead of once per line."""
    if saga.status != "reserving" or saga.pay_requested or saga.cancel_requested:
        return None
    asked = set(product_ids)
    if len(asked) != len(product_ids):
        return None  # the same line answered twice: the general path says what that means
    wanted = set(asked)
    updated: list[LineState] = []
    waiting = False
    for line in saga.lines:
        if line.action != "reserve":
            return None
        if line.product_id in asked:
            if line.product_id not in wanted or line.answer != "pending":
                return None  # answered already, or a second line of the product
            wanted.discard(line.product_id)
            line = LineState(
                line.product_id, line.quantity, "reserved", line.reason, line.available, "reserve"
            )
        elif line.answer == "pending":
            waiting = True
        elif line.answer != "reserved":
            return None  # a refusal (partial orders): the general path lists it
        updated.append(line)
    if wanted:
        return None  # an answer for a product the order does not hold
    if waiting:
        return SagaDecision(saga=saga_with(saga, tuple(updated), "reserving"))
    held = saga_with(saga, tuple(updated), "reserved")
    events = () if saga.product_decides else outcome_events(held)
    return SagaDecision(held, events, (), ((held.expires_at_ms, "expiry"),))


def held_by_product(saga: Saga) -> Saga | None:
    """What a single-line order becomes when its product writer reserves it while nothing else
    happened to it (no payment or cancellation waiting): :func:`answer_line` then decides
    exactly this saga, an expiry timer at ``expires_at_ms`` and nothing else (a property test
    holds the two equal). ``None`` for a saga in any other state.

    The order desk stores that answer as the expiry timer's value instead of writing the saga
    again: the saga is this function of what it wrote at placement, so the common answer costs
    one changelog record instead of two."""
    if not may_be_held(saga):
        return None
    decision = answer_reserved(saga, [saga.lines[0].product_id])
    return None if decision is None else decision.saga


def may_be_held(saga: Saga) -> bool:
    """Whether :func:`held_by_product` gives a saga for ``saga`` (a property test holds the
    two together), without building it: the order desk asks this of every reply."""
    if not saga.product_decides or saga.forwards or len(saga.lines) != 1:
        return False
    if saga.status != "reserving" or saga.pay_requested or saga.cancel_requested:
        return False
    line = saga.lines[0]
    return line.action == "reserve" and line.answer == "pending"


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
    index = line_index(saga, product_id)
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
        return derive_effects(saga) if line.answer != "pending" else NOTHING
    if status == "reserved":
        updated = LineState(
            line.product_id, line.quantity, "reserved", line.reason, line.available, line.action
        )
    else:
        updated = LineState(line.product_id, line.quantity, "refused", reason, available, "none")
    lines = (*saga.lines[:index], updated, *saga.lines[index + 1 :])
    return _decide(saga_with(saga, lines, saga.status), now_ms=now_ms, policy=policy)


def _decide(saga: Saga, *, now_ms: int, policy: Policy) -> SagaDecision:
    refused = [line for line in saga.lines if line.answer == "refused"]
    waiting = any(line.answer == "pending" for line in saga.lines)
    if refused and saga.fulfilment == "all_or_nothing":
        first = refused[0].reason
        reason: RejectionReason = (
            "unknown_product" if first == "unknown_product" else ("insufficient_stock")
        )
        return reject(saga, reason, now_ms=now_ms, policy=policy)
    if waiting:
        return SagaDecision(saga=saga)
    if not any(line.answer == "reserved" for line in saga.lines):
        first_reason = refused[0].reason if refused else None
        reason = "unknown_product" if first_reason == "unknown_product" else "insufficient_stock"
        return reject(saga, reason, now_ms=now_ms, policy=policy)
    held = saga_with(saga, saga.lines, "reserved")
    # Deferred requests apply in log order, as if the order had been held when they came: the
    # outcome may reach the saga before, between or after them (the replies are read beside
    # the orders topic, in an order a replay does not repeat), and the decision must not
    # depend on that (found by the chaos suite: a replay cancelled an order whose payment had
    # been confirmed before the crash).
    if held.cancel_requested and held.first_request != "pay":
        # A payment deferred after the cancellation cannot be applied: say so, or nobody
        # refunds it (re-derived by derive_effects from pay_requested).
        refund = payment_failure(replace(held, status="cancelled"))
        return finish_holding(
            held, "cancelled", now_ms=now_ms, policy=policy, extra=(*outcome_events(held), *refund)
        )
    if held.pay_requested:
        confirmed = confirm_all(held, now_ms=now_ms, policy=policy)
        assert confirmed.saga is not None
        # The outcome, then what a cancellation after the payment is told (deferred_answers).
        return confirmed.with_events((*outcome_events(held), *deferred_answers(confirmed.saga)))
    return with_effects(held, timers=((held.expires_at_ms, "expiry"),))


def line_index(saga: Saga, product_id: str) -> int | None:
    for index, line in enumerate(saga.lines):
        if line.product_id == product_id:
            return index
    return None
