"""State written by older versions (pydantic-dumped JSON objects) reads back as it was written,
through pydantic models of its shapes: pydantic never builds one of the core's dataclasses
itself, which a compiled build of the core would not allow."""

from __future__ import annotations

import json
from dataclasses import asdict, fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from stockflow.core.saga import LineState, Saga
from stockflow.core.stock import Reservation, Stock
from stockflow.processing.codec import StockRecord, decode_entry, decode_saga, decode_stock
from stockflow.processing.legacy_state import LEGACY_SHAPES, decode_legacy

from fixtures import SAGA_MS, SAGA_NAMES, SAGAS

ENTRIES = st.builds(
    Reservation,
    order_id=SAGA_NAMES,
    product_id=SAGA_NAMES,
    quantity=st.integers(1, 10**6),
    seq=st.integers(0, 10**9),
    expires_at_ms=SAGA_MS,
    status=st.sampled_from(["pending", "confirmed", "released", "refused"]),
    release_reason=st.none() | st.sampled_from(["cancelled", "expired", "compensation"]),
    finished_at_ms=st.none() | SAGA_MS,
    refusal=st.none() | st.sampled_from(["insufficient_stock", "unknown_product"]),
    available=st.none() | st.integers(0, 10**6),
    held_at=st.none() | st.integers(0, 2**40),
)
RECORDS = st.builds(
    StockRecord,
    stock=st.builds(Stock, st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**9)),
    wal_key=st.none() | SAGA_NAMES,
    wal_value=st.none() | SAGA_NAMES,
    offset=st.none() | st.integers(0, 2**40),
    event_ms=st.none() | SAGA_MS,
)


def _dumped(value: object) -> bytes:
    """``value`` as an older version wrote it: the dataclass as a JSON object (tuples as
    arrays, nested dataclasses as objects)."""
    return json.dumps(asdict(value)).encode()  # type: ignore[call-overload]


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(saga=SAGAS)
def test_a_legacy_saga_reads_back_as_written(saga: Saga) -> None:
    decoded = decode_saga(_dumped(saga))
    assert decoded == saga and type(decoded) is Saga
    assert type(decoded.lines) is tuple
    assert all(type(line) is LineState for line in decoded.lines)
    assert decoded.placed_at == saga.placed_at
    assert decoded.placed_at is None or type(decoded.placed_at) is tuple


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(entry=ENTRIES, record=RECORDS)
def test_a_legacy_entry_and_counters_record_read_back_as_written(
    entry: Reservation, record: StockRecord
) -> None:
    assert decode_entry(_dumped(entry)) == entry
    decoded = decode_stock(_dumped(record))
    assert decoded == record and type(decoded.stock) is Stock


def test_fields_an_older_version_did_not_write_take_their_defaults() -> None:
    old = {
        "order_id": "o-1",
        "lines": [{"product_id": "p", "quantity": 2}],
        "fulfilment": "all_or_nothing",
        "status": "reserving",
        "placed_at_ms": 1,
        "deadline_ms": 2,
        "expires_at_ms": 3,
        "reply_partition": 0,
    }
    saga = decode_saga(json.dumps(old).encode())
    assert saga.lines[0].answer == "pending" and saga.lines[0].action == "reserve"
    assert not (saga.product_decides or saga.forwards) and saga.placed_at is None


@pytest.mark.parametrize(
    "raw",
    [
        b'{"on_hand": "many"}',
        b'{"stock": {"on_hand": 1}, "wal_key": 5}',
        b'{"stock": {"reserved": 1}}',
    ],
)
def test_a_value_that_is_no_legacy_record_raises(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        decode_legacy(StockRecord, raw)


@pytest.mark.parametrize("kind", [StockRecord, Stock, Reservation, Saga, LineState])
def test_each_legacy_shape_has_its_dataclass_fields_in_order(kind: type) -> None:
    # decode_legacy fills the dataclass positionally from the shape's fields: a field added to
    # the dataclass must be added to its shape too, at the same place.
    shape = LEGACY_SHAPES[kind.__name__]
    assert list(shape.model_fields) == [each.name for each in fields(kind)]
