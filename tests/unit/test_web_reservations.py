"""The ``reservation`` of a stock answer read back into the ledger entry it shows."""

from __future__ import annotations

import json
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from stockflow.core.stock import Reservation
from stockflow.web.reservations import reservation_answer, reservation_of

MS = st.integers(min_value=0, max_value=4_102_444_800_000)  # up to 2100

ENTRIES = st.builds(
    Reservation,
    order_id=st.text(min_size=1, max_size=12),
    product_id=st.just("p"),
    quantity=st.integers(min_value=1, max_value=10**6),
    seq=st.integers(min_value=0, max_value=10**6),
    expires_at_ms=MS,
    status=st.sampled_from(["pending", "confirmed", "released", "refused"]),
    release_reason=st.sampled_from([None, "cancelled", "expired", "compensation"]),
    finished_at_ms=st.none() | MS,
    refusal=st.sampled_from([None, "insufficient_stock", "unknown_product"]),
    available=st.none() | st.integers(min_value=0, max_value=10**6),
)


@given(ENTRIES)
def test_an_entry_survives_the_json_answer(entry: Reservation) -> None:
    answer = json.loads(json.dumps(reservation_answer(entry)))
    read = reservation_of(answer, order_id=entry.order_id, product_id="p")
    assert read == replace(entry, seq=0)  # the sequence number is not shown


def test_what_cannot_be_read_is_no_entry() -> None:
    good = reservation_answer(Reservation("o", "p", 1, 3, 1_000))
    assert reservation_of(None, order_id="o", product_id="p") is None
    assert reservation_of(good, order_id="other", product_id="p") is None
    assert reservation_of({**good, "status": "held"}, order_id="o", product_id="p") is None
    assert reservation_of({**good, "expires_at": "soon"}, order_id="o", product_id="p") is None
    assert reservation_of([good], order_id="o", product_id="p") is None
    assert reservation_of(good, order_id="o", product_id="p") == Reservation("o", "p", 1, 0, 1_000)
