"""Every decision of ``stockflow.core.stock``: check-and-reserve, confirm, release, recount,
adjustment and shortfall, including the re-answers a redelivered command must get."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockflow.core import recount
from stockflow.core import stock as decide
from stockflow.core.stock import Reservation, Stock, StockDecision, entry_as_of, forgettable
from stockflow.errors import InvariantViolation
from stockflow.models import (
    LineAnswer,
    ProductReserved,
    ReservationConfirmed,
    ReservationReleased,
    StockShortfall,
    iso_from_ms,
)

EXPIRES = 1_764_061_200_000  # 2025-11-25T09:00:00.000Z
NOW = EXPIRES - 900_000


def reserve(stock: Stock | None, order_id: str, quantity: int, entry=None) -> StockDecision:
    return decide.reserve(
        stock,
        entry,
        order_id=order_id,
        product_id="p",
        quantity=quantity,
        expires_at_ms=EXPIRES,
        now_ms=NOW,
    )


def no_pending() -> Iterable[Reservation]:
    return ()


class Ledger:
    """One product's counters and ledger, applied the way the product writer applies them."""

    def __init__(self, on_hand: int) -> None:
        self.stock = Stock(on_hand=on_hand)
        self.entries: dict[str, Reservation] = {}

    def pending(self) -> list[Reservation]:
        return list(self.entries.values())

    def apply(self, decision: StockDecision) -> StockDecision:
        if decision.stock is not None:
            self.stock = decision.stock
        if decision.entry is not None:
            self.entries[decision.entry.order_id] = decision.entry
        return decision

    def reserve(self, order_id: str, quantity: int) -> StockDecision:
        return self.apply(reserve(self.stock, order_id, quantity, self.entries.get(order_id)))

    def confirm(self, order_id: str, now_ms: int = 5) -> StockDecision:
        return self.apply(
            decide.confirm(
                self.stock, self.entries.get(order_id), now_ms=now_ms, pending=self.pending
            )
        )

    def release(self, order_id: str, reason="cancelled", now_ms: int = 5) -> StockDecision:
        return self.apply(
            decide.release(self.stock, self.entries.get(order_id), reason=reason, now_ms=now_ms)
        )

    def set_stock(self, on_hand: int) -> StockDecision:
        return self.apply(
            recount.set_stock(self.stock, product_id="p", on_hand=on_hand, pending=self.pending)
        )

    def adjust(self, delta: int) -> StockDecision:
        return self.apply(
            recount.adjust_stock(self.stock, product_id="p", delta=delta, pending=self.pending)
        )


# --- reserve --------------------------------------------------------------------------------


def test_reserve_that_fits_holds_the_units_and_says_so() -> None:
    decision = reserve(Stock(on_hand=10, reserved=2, next_seq=7), "o-1", 3)

    assert decision.stock == Stock(on_hand=10, reserved=5, next_seq=8)
    assert decision.entry == Reservation(
        order_id="o-1", product_id="p", quantity=3, seq=7, expires_at_ms=EXPIRES
    )
    assert decision.events == (
        ProductReserved(
            order_id="o-1", product_id="p", quantity=3, expires_at="2025-11-25T09:00:00.000Z"
        ),
    )
    assert decision.answer == LineAnswer(
        order_id="o-1", product_id="p", status="reserved", quantity=3
    )
    assert decision.changed


def test_reserve_of_exactly_what_is_available_fits() -> None:
    decision = reserve(Stock(on_hand=5, reserved=2), "o-1", 3)

    assert decision.stock is not None
    assert decision.stock.available == 0
    assert decision.answer is not None and decision.answer.status == "reserved"


def test_reserve_that_does_not_fit_holds_nothing_and_records_the_refusal() -> None:
    decision = reserve(Stock(on_hand=5, reserved=3), "o-1", 3)

    assert decision.stock is None  # counters unchanged
    assert decision.events == ()
    assert decision.entry == Reservation(
        order_id="o-1",
        product_id="p",
        quantity=3,
        seq=-1,
        expires_at_ms=EXPIRES,
        status="refused",
        finished_at_ms=NOW,
        refusal="insufficient_stock",
        available=2,
    )
    assert decision.answer == LineAnswer(
        order_id="o-1",
        product_id="p",
        status="refused",
        quantity=3,
        reason="insufficient_stock",
        available=2,
    )


def test_a_redelivered_refusal_stays_refused_whatever_the_stock_is_now() -> None:
    # After a crash the table can hold changes of commands that came after this one (a receipt
    # here): deciding the refusal again would reserve, and shift every later decision.
    first = reserve(Stock(on_hand=5, reserved=5), "o-1", 2)
    assert first.answer is not None and first.answer.status == "refused"

    again = reserve(Stock(on_hand=50, reserved=5), "o-1", 2, entry=first.entry)

    assert not again.changed
    assert again.events == ()
    assert again.answer == first.answer


def test_reserve_during_a_shortfall_is_refused_with_zero_available_never_negative() -> None:
    decision = reserve(Stock(on_hand=1, reserved=4), "o-1", 1)

    assert decision.answer is not None
    assert decision.answer.reason == "insufficient_stock"
    assert decision.answer.available == 0


def test_reserve_of_an_unknown_product_is_refused() -> None:
    decision = reserve(None, "o-1", 1)

    assert decision.stock is None
    assert decision.entry is not None and decision.entry.refusal == "unknown_product"
    assert decision.answer == LineAnswer(
        order_id="o-1",
        product_id="p",
        status="refused",
        quantity=1,
        reason="unknown_product",
        available=0,
    )


def test_duplicate_reserve_re_answers_identically_without_reserving_twice() -> None:
    first = reserve(Stock(on_hand=3), "o-1", 3)
    assert first.stock is not None and first.entry is not None

    # Redelivered after the stock ran out: still the first answer, from the ledger entry.
    again = reserve(first.stock, "o-1", 3, entry=first.entry)

    assert not again.changed
    assert again.events == first.events
    assert again.answer == first.answer


def test_duplicate_reserve_answers_from_the_entry_even_if_the_command_differs() -> None:
    first = reserve(Stock(on_hand=10), "o-1", 3)
    assert first.stock is not None

    again = reserve(first.stock, "o-1", 9, entry=first.entry)

    assert not again.changed
    assert again.answer == first.answer


@pytest.mark.parametrize("finish", ["confirm", "release"])
def test_duplicate_reserve_after_the_entry_finished_answers_its_final_status(finish: str) -> None:
    ledger = Ledger(on_hand=5)
    first = ledger.reserve("o-1", 2)
    getattr(ledger, finish)("o-1")
    before = ledger.stock

    again = ledger.reserve("o-1", 2)

    assert not again.changed
    # Its ProductReserved again, as the first time: a crash may have lost that one while the
    # entry's confirmation or release was kept (an identical repeat, counted as a duplicate).
    assert again.events == first.events
    assert isinstance(again.events[0], ProductReserved)
    assert again.answer is not None
    assert again.answer.status == ("confirmed" if finish == "confirm" else "released")
    assert ledger.stock == before


# --- confirm --------------------------------------------------------------------------------


def test_confirm_takes_the_units_out_of_stock() -> None:
    ledger = Ledger(on_hand=10)
    ledger.reserve("o-1", 4)

    decision = ledger.confirm("o-1", now_ms=77)

    assert ledger.stock == Stock(on_hand=6, reserved=0, next_seq=1)
    assert decision.entry is not None
    assert decision.entry.status == "confirmed"
    assert decision.entry.finished_at_ms == 77
    assert decision.events == (ReservationConfirmed(order_id="o-1", product_id="p", quantity=4),)
    assert decision.answer is not None and decision.answer.status == "confirmed"


def test_duplicate_confirm_re_emits_the_event_and_changes_nothing() -> None:
    ledger = Ledger(on_hand=10)
    ledger.reserve("o-1", 4)
    first = ledger.confirm("o-1")
    stock = ledger.stock

    again = ledger.confirm("o-1", now_ms=99)

    assert not again.changed
    assert again.events == first.events
    assert again.answer == first.answer
    assert ledger.stock == stock


def test_confirm_without_a_reservation_or_after_release_does_nothing() -> None:
    ledger = Ledger(on_hand=10)
    assert ledger.confirm("nobody") == StockDecision()

    ledger.reserve("o-1", 4)
    ledger.release("o-1")
    stock = ledger.stock
    assert ledger.confirm("o-1") == StockDecision()
    assert ledger.stock == stock


def test_confirm_of_an_unknown_product_does_nothing() -> None:
    entry = Reservation(order_id="o", product_id="p", quantity=1, seq=0, expires_at_ms=EXPIRES)
    assert decide.confirm(None, entry, now_ms=1, pending=no_pending) == StockDecision()


def test_confirm_after_a_recount_below_the_reservation_stops_on_hand_at_zero() -> None:
    ledger = Ledger(on_hand=5)
    ledger.reserve("old", 2)
    ledger.reserve("new", 3)
    ledger.set_stock(1)  # shortfall: 1 on hand, 5 promised

    decision = ledger.confirm("new")

    assert ledger.stock.on_hand == 0
    assert ledger.stock.reserved == 2
    assert decision.events[0] == ReservationConfirmed(order_id="new", product_id="p", quantity=3)
    # The warning names what is still at risk: the other pending order, not the one that just
    # left stock.
    assert decision.events[1:] == (
        StockShortfall(product_id="p", on_hand=0, reserved=2, at_risk=["old"]),
    )


def test_confirm_that_empties_stock_exactly_is_not_a_shortfall() -> None:
    ledger = Ledger(on_hand=3)
    ledger.reserve("o-1", 3)

    decision = ledger.confirm("o-1")

    assert ledger.stock == Stock(on_hand=0, reserved=0, next_seq=1)
    assert [type(event) for event in decision.events] == [ReservationConfirmed]


# --- release --------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["cancelled", "expired", "compensation"])
def test_release_makes_the_units_available_again(reason) -> None:
    ledger = Ledger(on_hand=5)
    ledger.reserve("o-1", 5)

    decision = ledger.release("o-1", reason=reason, now_ms=42)

    assert ledger.stock == Stock(on_hand=5, reserved=0, next_seq=1)
    assert ledger.stock.available == 5
    assert decision.entry is not None
    assert decision.entry.status == "released"
    assert decision.entry.release_reason == reason
    assert decision.entry.finished_at_ms == 42
    assert decision.events == (
        ReservationReleased(order_id="o-1", product_id="p", quantity=5, reason=reason),
    )
    assert decision.answer is not None and decision.answer.status == "released"


def test_duplicate_release_keeps_the_first_reason_and_never_releases_twice() -> None:
    ledger = Ledger(on_hand=5)
    ledger.reserve("o-1", 2)
    ledger.reserve("o-2", 2)
    first = ledger.release("o-1", reason="cancelled")

    again = ledger.release("o-1", reason="expired")

    assert not again.changed
    assert again.events == first.events
    assert ledger.stock.reserved == 2  # o-2's hold is untouched


def test_release_of_a_reservation_that_does_not_exist_is_a_no_op() -> None:
    ledger = Ledger(on_hand=5)
    before = ledger.stock

    assert ledger.release("never-reserved") == StockDecision()
    assert ledger.stock == before
    assert ledger.stock.reserved == 0
    assert decide.release(None, None, reason="cancelled", now_ms=1) == StockDecision()


def test_release_of_a_confirmed_reservation_changes_nothing() -> None:
    ledger = Ledger(on_hand=5)
    ledger.reserve("o-1", 2)
    ledger.confirm("o-1")
    before = ledger.stock

    assert ledger.release("o-1") == StockDecision()
    assert ledger.stock == before == Stock(on_hand=3, reserved=0, next_seq=1)


def test_counters_that_would_go_negative_are_an_invariant_violation() -> None:
    entry = Reservation(order_id="o", product_id="p", quantity=3, seq=0, expires_at_ms=EXPIRES)
    with pytest.raises(InvariantViolation):
        decide.release(Stock(on_hand=5, reserved=1), entry, reason="cancelled", now_ms=1)


# --- recount and adjustment -----------------------------------------------------------------


def test_recount_of_a_new_product_creates_it() -> None:
    decision = recount.set_stock(None, product_id="p", on_hand=7, pending=no_pending)

    assert decision.stock == Stock(on_hand=7)
    assert decision.events == ()


def test_recount_keeps_reservations_and_sequence() -> None:
    ledger = Ledger(on_hand=5)
    ledger.reserve("o-1", 2)

    decision = ledger.set_stock(9)

    assert ledger.stock == Stock(on_hand=9, reserved=2, next_seq=1)
    assert decision.events == ()


def test_recount_to_exactly_what_is_reserved_is_no_shortfall() -> None:
    ledger = Ledger(on_hand=5)
    ledger.reserve("o-1", 2)

    assert ledger.set_stock(2).events == ()
    assert ledger.stock.available == 0


def test_recount_below_reservations_reports_a_shortfall() -> None:
    ledger = Ledger(on_hand=10)
    ledger.reserve("o-1", 4)
    ledger.reserve("o-2", 4)

    decision = ledger.set_stock(5)

    assert ledger.stock == Stock(on_hand=5, reserved=8, next_seq=2)
    assert decision.events == (
        StockShortfall(product_id="p", on_hand=5, reserved=8, at_risk=["o-2"]),
    )
    # New orders are refused until the shortfall is covered.
    refused = ledger.reserve("o-3", 1)
    assert refused.answer is not None and refused.answer.status == "refused"


@pytest.mark.parametrize(("delta", "on_hand"), [(5, 15), (-4, 6), (-10, 0), (-25, 0), (0, 10)])
def test_adjustment_changes_on_hand_and_never_below_zero(delta: int, on_hand: int) -> None:
    ledger = Ledger(on_hand=10)

    decision = ledger.adjust(delta)

    assert ledger.stock.on_hand == on_hand
    assert decision.events == ()


def test_adjustment_of_a_new_product_starts_from_zero() -> None:
    assert recount.adjust_stock(None, product_id="p", delta=3, pending=no_pending).stock == Stock(
        on_hand=3
    )
    assert recount.adjust_stock(None, product_id="p", delta=-3, pending=no_pending).stock == Stock(
        on_hand=0
    )


def test_negative_adjustment_below_reservations_reports_a_shortfall() -> None:
    ledger = Ledger(on_hand=10)
    ledger.reserve("o-1", 6)

    decision = ledger.adjust(-7)

    assert decision.events == (
        StockShortfall(product_id="p", on_hand=3, reserved=6, at_risk=["o-1"]),
    )


# --- shortfall ------------------------------------------------------------------------------


def _entry(order_id: str, quantity: int, seq: int, status="pending") -> Reservation:
    return Reservation(
        order_id=order_id,
        product_id="p",
        quantity=quantity,
        seq=seq,
        expires_at_ms=EXPIRES,
        status=status,
    )


def test_shortfall_names_the_newest_pending_reservations_that_cover_the_deficit() -> None:
    entries = [
        _entry("a", 2, 0),
        _entry("b", 1, 1),
        _entry("gone", 9, 2, status="released"),
        _entry("paid", 9, 3, status="confirmed"),
        _entry("c", 1, 4),
    ]
    stock = Stock(on_hand=2, reserved=4, next_seq=5)  # deficit 2

    warning = decide.shortfall(stock, product_id="p", pending=lambda: entries)

    assert warning == StockShortfall(product_id="p", on_hand=2, reserved=4, at_risk=["c", "b"])


def test_shortfall_stops_as_soon_as_the_deficit_is_covered() -> None:
    entries = [_entry("a", 5, 0), _entry("b", 5, 1)]

    warning = decide.shortfall(
        Stock(on_hand=9, reserved=10), product_id="p", pending=lambda: entries
    )

    assert warning is not None and warning.at_risk == ["b"]


def test_no_shortfall_while_stock_covers_every_reservation() -> None:
    entries = [_entry("a", 5, 0)]
    stock = Stock(on_hand=5, reserved=5)
    assert decide.shortfall(stock, product_id="p", pending=lambda: entries) is None


def test_forced_shortfall_with_nothing_missing_names_nobody() -> None:
    warning = decide.shortfall(
        Stock(on_hand=0, reserved=0), product_id="p", pending=no_pending, force=True
    )
    assert warning == StockShortfall(product_id="p", on_hand=0, reserved=0, at_risk=[])


def test_expires_at_is_utc_iso_with_milliseconds() -> None:
    assert iso_from_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_from_ms(1_764_061_200_123) == "2025-11-25T09:00:00.123Z"


# --- property: any sequence of commands on one product ---------------------------------------

ORDERS = st.sampled_from([f"o-{n}" for n in range(6)])
COMMANDS = st.one_of(
    st.tuples(st.just("reserve"), ORDERS, st.integers(1, 6)),
    st.tuples(st.just("confirm"), ORDERS, st.just(0)),
    st.tuples(st.just("release"), ORDERS, st.just(0)),
    st.tuples(st.just("set"), st.just(""), st.integers(0, 12)),
    st.tuples(st.just("adjust"), st.just(""), st.integers(-8, 8)),
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(on_hand=st.integers(0, 12), commands=st.lists(COMMANDS, max_size=30))
def test_counters_always_match_the_ledger(on_hand: int, commands) -> None:
    ledger = Ledger(on_hand=on_hand)
    for kind, order_id, number in commands:
        before = ledger.stock
        if kind == "reserve":
            decision = ledger.reserve(order_id, number)
            if decision.stock is not None:  # a new hold is only ever taken if it fits
                assert number <= before.available
                assert ledger.stock.reserved <= ledger.stock.on_hand
        elif kind == "confirm":
            ledger.confirm(order_id)
        elif kind == "release":
            ledger.release(order_id)
        elif kind == "set":
            ledger.set_stock(number)
        else:
            ledger.adjust(number)
        pending = [entry for entry in ledger.entries.values() if entry.status == "pending"]
        assert ledger.stock.reserved == sum(entry.quantity for entry in pending)
        assert ledger.stock.on_hand >= 0
        assert ledger.stock.reserved >= 0
        held = [entry for entry in ledger.entries.values() if entry.status != "refused"]
        assert ledger.stock.next_seq == len(held)


@given(
    on_hand=st.integers(0, 100),
    reserved=st.integers(0, 100),
    next_seq=st.integers(0, 1000),
    quantity=st.integers(0, 120),
)
def test_hold_is_reserves_check_and_counters(
    on_hand: int, reserved: int, next_seq: int, quantity: int
) -> None:
    # The product writer's usual Reserve calls hold() alone: it must decide as reserve() does.
    stock = Stock(on_hand, reserved, next_seq)
    held = decide.hold(stock, quantity, "o")
    decision = decide.reserve(
        stock, None, order_id="o", product_id="p", quantity=quantity, expires_at_ms=9, now_ms=1
    )
    assert held == decision.stock
    assert (held is None) == (decision.source is not None and decision.source.status == "refused")


def test_hold_refuses_a_negative_quantity_as_a_bug() -> None:
    with pytest.raises(InvariantViolation):
        decide.hold(Stock(5), -1, "o")


def test_an_entry_is_seen_only_by_commands_after_the_reserve_that_made_it() -> None:
    entry = Reservation("o-1", "p", 1, 0, EXPIRES, held_at=5 << 20 | 1)
    assert entry_as_of(entry, 5 << 20) is None  # before it in the same record
    assert entry_as_of(entry, 4 << 20 | 9) is None  # an earlier record
    assert entry_as_of(entry, 5 << 20 | 1) is entry  # the Reserve itself, redelivered
    assert entry_as_of(entry, 6 << 20) is entry
    unplaced = Reservation("o-1", "p", 1, 0, EXPIRES)  # written before positions were kept
    assert entry_as_of(unplaced, 0) is unplaced
    assert entry_as_of(None, 7) is None


def test_an_entry_is_forgettable_once_finished_for_the_retention_period() -> None:
    entry = Reservation("o", "p", 1, 0, 9_000, "pending")
    assert not forgettable(entry, 10**12, 1_000)  # never while pending
    done = Reservation("o", "p", 1, 0, 9_000, "confirmed", None, 5_000)
    assert not forgettable(done, 5_999, 1_000)
    assert forgettable(done, 6_000, 1_000)
