"""The stock check keeps only the counts of applied inventory events that no other count
stands in for (``_ProductAudit._prune``) and chains its closure from count to count: its
findings are those of the whole dynamic programme, which keeps every count and walks every
inventory event per decision (the check as it was, quadratic in a long run's history).

Histories are random: recounts, receipts and removals, reservations that may not fit,
confirmations and releases, shortfall marks, clock skew and a lag bound."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockflow.audit import stock
from stockflow.audit.findings import Finding, Position
from stockflow.audit.movements import Movement
from stockflow.audit.stock import ShortfallMark, StockInput, check_stock


class _WholeProgramme(stock._ProductAudit):
    """Every count kept, every inventory event walked for every decision."""

    def _prune(self, row: stock.Row, pending: int) -> stock.Row:
        return row

    def _closure(
        self, row: stock.Row, pending: int, limit_ts: int, *, require_shortfall: bool
    ) -> stock.Row:
        result = dict(row)
        for k, event in enumerate(self.events):
            on_hand = result.get(k)
            if on_hand is None or event.ts > limit_ts:
                continue
            after = event.amount if event.kind == "set" else max(on_hand + event.amount, 0)
            if require_shortfall and after < pending and not self._allowed_short(event):
                continue
            best = result.get(k + 1)
            if best is None or after > best:
                result[k + 1] = after
        return result


_inventory = st.lists(
    st.tuples(
        st.integers(0, 40),  # timestamp
        st.sampled_from(["set", "receipt", "receipt", "receipt", "removal"]),
        st.integers(0, 6),
    ),
    max_size=25,
)
_decisions = st.lists(
    st.tuples(
        st.integers(0, 40),  # timestamp
        st.sampled_from(["reserve", "reserve", "confirm", "release"]),
        st.integers(1, 4),  # a reservation's quantity; which one a closing closes
    ),
    max_size=30,
)


def _history(
    inventory: list[tuple[int, str, int]], decisions: list[tuple[int, str, int]]
) -> tuple[list[StockInput], list[Movement]]:
    inputs = []
    for offset, (ts, kind, amount) in enumerate(inventory):
        at = Position("inventory", 0, offset)
        if kind == "set":
            inputs.append(StockInput(at, ts, "p", "set", amount))
        else:
            delta = amount if kind == "receipt" else -amount
            inputs.append(StockInput(at, ts, "p", "adjust", delta, f"a{offset}"))
    moves: list[Movement] = []
    open_: list[Movement] = []
    for offset, (ts, kind, n) in enumerate(sorted(decisions)):
        at = Position("reservations", offset % 2, offset)
        if kind == "reserve" or not open_:
            move = Movement(at, ts, "p", f"o{offset}", "reserve", n, ts)
            open_.append(move)
        else:
            reserved = open_.pop(n % len(open_))
            move = Movement(
                at,
                ts,
                "p",
                reserved.order_id,
                kind,
                reserved.quantity,
                reserved.ts,  # type: ignore[arg-type]
            )
        moves.append(move)
    return inputs, moves


def _findings(report: stock.StockReport) -> list[tuple[Any, ...]]:
    def key(finding: Finding) -> tuple[Any, ...]:
        return (finding.kind, finding.order_id, str(finding.at), finding.message)

    return [key(finding) for finding in report.findings]


@settings(max_examples=600, deadline=None, derandomize=True, database=None)
@given(
    inventory=_inventory,
    decisions=_decisions,
    shortfalls=st.lists(st.integers(0, 40), max_size=2),
    skew=st.sampled_from([0, 0, 3]),
    max_lag=st.sampled_from([None, None, 10]),
)
def test_the_pruned_check_finds_what_the_whole_programme_finds(
    inventory: list[tuple[int, str, int]],
    decisions: list[tuple[int, str, int]],
    shortfalls: list[int],
    skew: int,
    max_lag: int | None,
) -> None:
    inputs, moves = _history(inventory, decisions)
    marks = [ShortfallMark(Position("reservations", 0, 999), ts, "p") for ts in shortfalls]
    options: dict[str, Any] = {"clock_skew_ms": skew, "max_lag_ms": max_lag}
    pruned = check_stock(inputs, moves, marks, **options)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stock, "_ProductAudit", _WholeProgramme)
        whole = check_stock(inputs, moves, marks, **options)
    assert _findings(pruned) == _findings(whole)


def test_a_long_history_of_a_growing_stock_costs_linear_time() -> None:
    # A product restocked faster than it sells, as a chaos run's: every count of applied
    # receipts stayed reachable, and the whole programme's cost grew with the square of the
    # history (a soak's audit, 1,500 orders/s on 6 products, did not finish in 330 s).
    inputs = [StockInput(Position("inventory", 0, 0), 0, "p", "set", 10)]
    moves = []
    for i in range(20_000):
        ts = 1 + i
        inputs.append(StockInput(Position("inventory", 0, i + 1), ts, "p", "adjust", 1, f"a{i}"))
        at = Position("reservations", 0, 2 * i)
        moves.append(Movement(at, ts, "p", f"o{i}", "reserve", 1, ts))
        closing = "confirm" if i % 2 else "release"
        at = Position("reservations", 0, 2 * i + 1)
        moves.append(Movement(at, ts, "p", f"o{i}", closing, 1, ts))  # type: ignore[arg-type]
    started = time.process_time()
    report = check_stock(inputs, moves, [])
    assert report.findings == []
    assert time.process_time() - started < 10.0  # ~0.3 s; the whole programme took minutes


def _inv(offset: int, ts: int, kind: str, amount: int) -> StockInput:
    at = Position("inventory", 0, offset)
    if kind == "set":
        return StockInput(at, ts, "p", "set", amount)
    return StockInput(at, ts, "p", "adjust", amount, f"a{offset}")


def _move(offset: int, ts: int, order: str, kind: str, quantity: int, reserved: int) -> Movement:
    at = Position("reservations", 0, offset)
    return Movement(at, ts, "p", order, kind, quantity, reserved)  # type: ignore[arg-type]


def test_a_count_before_a_recount_is_kept_though_a_later_count_holds_as_much() -> None:
    # A recount applied late, after a confirmation, restores what the confirmation took;
    # applied early, it does not. Nothing may stand in for a count across a recount.
    inputs = [_inv(0, 0, "adjust", 4), _inv(1, 0, "set", 4)]
    moves = [
        _move(0, 1, "o1", "reserve", 4, 1),
        _move(1, 2, "o1", "confirm", 4, 1),
        _move(2, 3, "o2", "reserve", 4, 3),  # explained: the recount applied only now
    ]
    assert check_stock(inputs, moves, []).findings == []


def test_a_count_below_what_is_held_is_kept_though_a_later_count_holds_its_receipts() -> None:
    # Below what is held (a recount to 1 under 5 held, reported short), a confirmation
    # clamps the count at zero, and receipts applied after it then leave more than they
    # leave applied before it: no count may stand in for one below what is held.
    inputs = [_inv(0, 0, "set", 5), _inv(1, 2, "set", 1), _inv(2, 4, "adjust", 3)]
    moves = [
        _move(0, 1, "o1", "reserve", 2, 1),
        _move(1, 1, "o2", "reserve", 2, 1),
        _move(2, 1, "o3", "reserve", 1, 1),
        _move(3, 3, "o2", "release", 2, 1),
        _move(4, 4, "o3", "release", 1, 1),
        _move(5, 5, "o1", "confirm", 2, 1),
        _move(6, 5, "o4", "reserve", 3, 5),  # explained: the receipt applied after the confirm
    ]
    marks = [ShortfallMark(Position("reservations", 0, 99), 2, "p")]
    assert check_stock(inputs, moves, marks, max_lag_ms=1).findings == []
