"""The saga state machine in isolation, driven by hypothesis through any interleaving of line
answers (and their duplicates), timers, payment, cancellation and redeliveries.

The product side is modelled the way the product writer behaves: each line has one fate
(reserved or refused) decided by stock, and every answer for that line repeats it.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from stockflow.core import saga as decide
from stockflow.models import (
    Confirm,
    LineAnswer,
    OrderCancelIgnored,
    OrderRejected,
    OrderReserved,
    Release,
    ReservationConfirmFailed,
)

from fixtures import SAGA_POLICY, SagaDriver, as_json

POLICY = SAGA_POLICY
T0 = 1_000_000
PRODUCTS = ["a", "b", "c"]

LINES = st.lists(st.tuples(st.sampled_from(PRODUCTS), st.integers(1, 5)), min_size=1, max_size=4)
FATES = st.fixed_dictionaries(
    {
        pid: st.sampled_from(
            [
                ("reserved", None),
                ("reserved", None),
                ("reserved", None),
                ("refused", "insufficient_stock"),
                ("refused", "unknown_product"),
            ]
        )
        for pid in PRODUCTS
    }
)
# Mostly short steps, sometimes past the answer deadline, the reservation TTL or retention.
STEPS = st.sampled_from([1, 10, 100, 1_000, 2_000, 1, 10, 100, 5_000, 30_000, 60_000, 100_000])


class SagaMachine(RuleBasedStateMachine):
    @initialize(
        lines=LINES,
        fates=FATES,
        fulfilment=st.sampled_from(["all_or_nothing", "partial"]),
        ttl_ms=st.sampled_from([None, 2_000, 30_000]),
    )
    def place(self, lines, fates, fulfilment, ttl_ms) -> None:
        self.driver = SagaDriver(policy=POLICY)
        self.now = T0
        self.fates = fates
        self.fired: set[tuple[int, str]] = set()
        self.paid = False
        self.forgotten = False
        self.products = list(dict.fromkeys(pid for pid, _qty in lines))
        self.quantities = {pid: sum(qty for p, qty in lines if p == pid) for pid in self.products}
        self.driver.place(*lines, now=self.now, fulfilment=fulfilment, ttl_ms=ttl_ms)

    # --- inputs ---------------------------------------------------------------------------

    @precondition(lambda self: not self.forgotten)
    @rule(index=st.integers(0, 2), later=st.integers(0, 50))
    def answer(self, index: int, later: int) -> None:
        """The product writer's answer for one line (any order; repeats are duplicates)."""
        self.now += later
        pid = self.products[index % len(self.products)]
        status, reason = self.fates[pid]
        self.driver.answer(
            pid,
            status,
            now=self.now,
            quantity=self.quantities[pid],
            reason=reason,
            available=0 if status == "refused" else None,
        )

    @precondition(lambda self: not self.forgotten)
    @rule(later=st.integers(0, 50))
    def answer_all(self, later: int) -> None:
        """Every line answered in order (the common case: all products answer promptly)."""
        for index in range(len(self.products)):
            self.answer(index, later)

    @precondition(lambda self: not self.forgotten)
    @rule(index=st.integers(0, 2), status=st.sampled_from(["confirmed", "released"]))
    def acknowledgement(self, index: int, status: str) -> None:
        """The product writer's re-answer to a re-sent Reserve after a Confirm/Release."""
        pid = self.products[index % len(self.products)]
        reply = LineAnswer(
            order_id="o-1", product_id=pid, status=status, quantity=self.quantities[pid]
        )
        assert decide.answer(self.driver.saga, reply, now_ms=self.now, policy=POLICY) == (
            decide.SagaDecision()
        )

    @precondition(lambda self: not self.forgotten)
    @rule()
    def pay(self) -> None:
        self.paid = True
        self.driver.pay(now=self.now)

    @precondition(
        lambda self: self.driver.saga is not None and self.driver.saga.status == "reserved"
    )
    @rule(late=st.integers(0, 2_000))
    def pay_after_ttl_before_the_tick(self, late: int) -> None:
        """A payment stamped after the reservation expired, while the expiry tick lags."""
        saga = self.driver.saga
        assert saga is not None
        self.now = max(self.now, saga.expires_at_ms + late)
        self.pay()

    @precondition(lambda self: not self.forgotten)
    @rule()
    def cancel(self) -> None:
        self.driver.cancel(now=self.now)

    @precondition(lambda self: not self.forgotten)
    @rule(step=STEPS)
    def advance(self, step: int) -> None:
        """Time passes: every armed timer that became due fires, earliest first."""
        self.now += step
        while not self.forgotten:
            due = sorted(
                timer for timer in set(self.driver.timers) - self.fired if timer[0] <= self.now
            )
            if not due:
                break
            self.fired.add(due[0])
            decision = self.driver.fire(due[0][1], now=self.now)
            self.forgotten = decision.forget

    @precondition(lambda self: not self.forgotten)
    @rule(step=STEPS)
    def lagging_scheduler(self, step: int) -> None:
        """Time passes but no tick arrives yet (a backlog): inputs carry the later time."""
        self.now += step

    @precondition(lambda self: not self.forgotten)
    @rule(kind=st.sampled_from(["deadline", "expiry", "forget"]))
    def stray_timer(self, kind: str) -> None:
        """Timers are never cancelled: one may fire for a saga that moved on (or too early)."""
        self.forgotten = self.driver.fire(kind, now=self.now).forget

    @precondition(lambda self: not self.forgotten)
    @rule(data=st.data())
    def redelivery(self, data: st.DataObject) -> None:
        """Any earlier input again, with its own timestamp: nothing new may come of it."""
        kind, now, args = data.draw(st.sampled_from(self.driver.inputs))
        again = self.driver.decide(kind, now, **args)
        assert again.saga is None or again.saga == self.driver.saga
        assert not again.forget
        assert set(as_json(again.commands)) <= set(as_json(self.driver.commands))
        new_events = set(as_json(again.events)) - set(as_json(self.driver.events))
        # A cancel absorbed while reserving got no answer of its own; its redelivery may
        # explain itself. Nothing else may appear for the first time.
        assert all('"OrderCancelIgnored"' in event for event in new_events), new_events
        self.driver.apply(again)

    @precondition(lambda self: not self.forgotten)
    @rule()
    def crash_then_redeliver_the_last_input(self) -> None:
        """A crash after the last input's state was written lost what it emitted: its
        redelivery must re-derive at least all of that (more is fine: re-sends are safe)."""
        kind, now, args = self.driver.inputs[-1]
        first = self.driver.decisions[-1]
        again = self.driver.decide(kind, now, **args)
        assert again.saga is None or again.saga == self.driver.saga
        assert set(as_json(first.commands)) <= set(as_json(again.commands)), (kind, now)
        assert set(as_json(first.events)) <= set(as_json(again.events)), (kind, now)
        self.driver.apply(again)

    @precondition(lambda self: self.forgotten)
    @rule(index=st.integers(0, 2))
    def after_retention(self, index: int) -> None:
        """Once forgotten, stray commands are answered explicitly; a stray line answer is
        ignored (no Reserve of a saga can still be in flight a retention period after it
        finished)."""
        pid = self.products[index % len(self.products)]
        reply = LineAnswer(
            order_id="o-1", product_id=pid, status="reserved", quantity=self.quantities[pid]
        )
        late = decide.answer(None, reply, now_ms=self.now, policy=POLICY)
        assert late == decide.SagaDecision()
        paid = decide.pay(None, order_id="o-1", now_ms=self.now, policy=POLICY)
        assert paid.events == (ReservationConfirmFailed(order_id="o-1", reason="unknown_order"),)
        cancelled = decide.cancel(None, order_id="o-1", now_ms=self.now, policy=POLICY)
        assert cancelled.events == (OrderCancelIgnored(order_id="o-1", reason="unknown_order"),)

    # --- invariants -----------------------------------------------------------------------

    def _commands(self, kind: type) -> dict[str, list[int]]:
        """Positions of each product's commands of one kind in emission order."""
        found: dict[str, list[int]] = {}
        for position, command in enumerate(self.driver.commands):
            if isinstance(command, kind):
                found.setdefault(command.product_id, []).append(position)
        return found

    @invariant()
    def at_most_one_outcome(self) -> None:
        assert len(self.driver.outcomes()) <= 1

    @invariant()
    def never_both_confirmed_and_released(self) -> None:
        confirms = self._commands(Confirm)
        releases = self._commands(Release)
        assert not set(confirms) & set(releases), (confirms, releases)

    @invariant()
    def confirms_only_after_payment(self) -> None:
        if not self.paid:
            assert not self._commands(Confirm)
            assert not any(isinstance(e, ReservationConfirmFailed) for e in self.driver.events)

    @invariant()
    def every_held_line_ends_released_or_confirmed(self) -> None:
        saga = self.driver.saga
        if saga is None:
            return
        confirms = self._commands(Confirm)
        releases = self._commands(Release)
        if saga.status in ("reserving", "reserved"):
            # Still (possibly) held: nothing was confirmed or released yet.
            assert not confirms and not releases
            return
        if saga.status == "confirmed":
            held = {line.product_id for line in saga.lines if line.answer == "reserved"}
            assert set(confirms) == held
            assert all(self.fates[pid][0] == "reserved" for pid in held)
            return
        # rejected / cancelled / expired: every line that is or may yet be held is released.
        for line in saga.lines:
            refused_by_stock = line.answer == "refused" and line.reason != "timeout"
            if self.fates[line.product_id][0] == "reserved" or not refused_by_stock:
                assert line.product_id in releases, (saga.status, line)
        if saga.status != "rejected":
            assert set(releases) == {
                line.product_id for line in saga.lines if line.answer == "reserved"
            }

    @invariant()
    def outcome_matches_the_state(self) -> None:
        saga = self.driver.saga
        if saga is None:
            return
        outcomes = [e for e in self.driver.events if isinstance(e, OrderReserved | OrderRejected)]
        if saga.status == "reserving":
            assert not outcomes
            return
        if saga.status == "reserved":
            assert all(line.answer != "pending" for line in saga.lines)
            assert outcomes
        if not outcomes:
            return
        outcome = outcomes[0]
        if isinstance(outcome, OrderReserved):
            assert saga.status in ("reserved", "confirmed", "cancelled", "expired")
            assert {line.product_id for line in outcome.lines} == {
                line.product_id for line in saga.lines if line.answer == "reserved"
            }
            assert outcome.partial == bool(outcome.refused)
            if saga.fulfilment == "all_or_nothing":
                assert not outcome.partial
        else:
            assert saga.status == "rejected"

    @invariant()
    def every_payment_is_applied_or_refused(self) -> None:
        saga = self.driver.saga
        if not self.paid or saga is None:
            return
        failures = [e for e in self.driver.events if isinstance(e, ReservationConfirmFailed)]
        assert saga.status != "reserved"  # a payment never leaves an order merely held
        if saga.status == "confirmed":
            assert not failures
        elif saga.status == "reserving":
            assert saga.pay_requested and not failures
        else:
            assert failures, saga.status


SagaMachine.TestCase.settings = settings(
    max_examples=250,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    database=None,
)
TestSagaMachine = SagaMachine.TestCase
