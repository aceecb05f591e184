"""The hot outputs the codec writes from plain values (bytes templates, no model built) are,
byte for byte, what the public models dump: for any ids (quotes, backslashes, control
characters, any Unicode), any status and any counts."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from stockflow.core.single_line import line_end
from stockflow.core.stock import Reservation, StockDecision, entry_event
from stockflow.models import (
    LineAnswer,
    LineRefusal,
    OrderRejected,
    OrderReserved,
    ReservedLine,
    iso_from_ms,
)
from stockflow.processing.codec import encode, encode_entry
from stockflow.processing.entry_events import (
    encode_answer,
    encode_end,
    encode_entry_event,
    encode_new_hold,
    encode_outcome,
    encode_reserved,
)

from fixtures import JSON_IDS

REFUSALS = ["insufficient_stock", "unknown_product", "timeout", "compensated", "invalid_order"]
RELEASES = ["cancelled", "expired", "compensation"]


@st.composite
def entries(draw: Any) -> Reservation:
    status = draw(st.sampled_from(["pending", "confirmed", "released", "refused"]))
    finished = None if status == "pending" else draw(st.integers(0, 2**53))
    return Reservation(
        order_id=draw(JSON_IDS),
        product_id=draw(JSON_IDS),
        quantity=draw(st.integers(1, 1_000_000_000)),
        seq=-1 if status == "refused" else draw(st.integers(0, 2**40)),
        expires_at_ms=draw(st.integers(0, 2**41)),
        status=status,
        release_reason=draw(st.sampled_from(RELEASES)) if status == "released" else None,
        finished_at_ms=finished,
        refusal=draw(st.sampled_from(REFUSALS)) if status == "refused" else None,
        available=draw(st.integers(0, 10**12)) if status == "refused" else None,
        held_at=draw(st.integers(0, 2**62)),
    )


@given(entries())
def test_entry_event_is_the_models_dump(entry: Reservation) -> None:
    assert encode_entry_event(entry) == encode(entry_event(entry))


@given(entries())
def test_line_answer_is_the_models_dump(entry: Reservation) -> None:
    answer = StockDecision(source=entry).answer
    assert answer is not None
    assert encode_answer(entry) == encode(answer)


@given(entries())
def test_end_report_is_the_models_dump(entry: Reservation) -> None:
    end = line_end(entry)
    raw = encode_end(entry)
    if end not in ("confirmed", "cancelled", "expired"):
        assert raw is None
        return
    model = LineAnswer(
        order_id=entry.order_id, product_id=entry.product_id, status=end, quantity=entry.quantity
    )
    assert raw == encode(model)


@given(entries())
def test_outcome_is_the_models_dump(entry: Reservation) -> None:
    if entry.status == "refused":
        assert entry.refusal is not None
        model: OrderRejected | OrderReserved = OrderRejected(
            order_id=entry.order_id,
            reason="unknown_product"
            if entry.refusal == "unknown_product"
            else "insufficient_stock",
            lines=[
                LineRefusal(
                    product_id=entry.product_id,
                    quantity=entry.quantity,
                    reason=entry.refusal,
                    available=entry.available,
                )
            ],
        )
    else:
        model = OrderReserved(
            order_id=entry.order_id,
            lines=[ReservedLine(product_id=entry.product_id, quantity=entry.quantity)],
            expires_at=iso_from_ms(entry.expires_at_ms),
        )
    assert encode_outcome(entry) == encode(model)


@given(entries())
def test_reserved_pair_is_the_event_and_the_outcome(entry: Reservation) -> None:
    # The product writer encodes a held single-line order's event and outcome together.
    pending = replace(
        entry,
        status="pending",
        seq=0,
        release_reason=None,
        finished_at_ms=None,
        refusal=None,
        available=None,
    )
    assert encode_reserved(pending) == (encode_entry_event(pending), encode_outcome(pending))


@given(entries(), st.booleans())
def test_a_new_hold_is_its_entry_event_and_outcome_or_answer(
    entry: Reservation, outcome: bool
) -> None:
    # The product writer's usual Reserve writes these from the entry's values, building none:
    # a single-line order's outcome, or a saga's line answer.
    pending = replace(
        entry,
        status="pending",
        release_reason=None,
        finished_at_ms=None,
        refusal=None,
        available=None,
    )
    last = encode_outcome(pending) if outcome else encode_answer(pending)
    assert encode_new_hold(
        pending.order_id,
        pending.product_id,
        pending.quantity,
        pending.seq,
        pending.expires_at_ms,
        pending.held_at,
        outcome=outcome,
    ) == (encode_entry(pending), encode_entry_event(pending), last)
