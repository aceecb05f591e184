"""The plain read of the usual ``OrderPlaced`` agrees with the models' full validation: what it
accepts it reads exactly as the models would, and what it does not accept goes to the models,
which parse it or give the dead-letter reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockflow.models import ORDER_EVENT_ADAPTER, OrderPlaced
from stockflow.processing.codec import parse
from stockflow.processing.order_input import Placed, parse_order

# Around every constraint the models hold: id lengths 1..256, quantities 1..1e9, strict types.
EDGE_IDS = st.sampled_from(["", "x", "x" * 256, "x" * 257, "é" * 256, "é" * 257, "商品", "\x00"])
IDS = st.one_of(st.text(max_size=6), EDGE_IDS)
QUANTITIES = st.one_of(
    st.integers(-2, 3),
    st.sampled_from([1_000_000_000, 1_000_000_001, 2**64]),
    st.sampled_from([1.0, 2.5, True, False, "1", None, [1], {}]),
)
ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=3))
VALID_LINES = st.lists(
    st.fixed_dictionaries(
        {"product_id": st.text(min_size=1, max_size=6), "quantity": st.integers(1, 5)}
    ),
    min_size=1,
    max_size=3,
)
VALID = st.fixed_dictionaries(
    {
        "type": st.just("OrderPlaced"),
        "order_id": st.text(min_size=1, max_size=6),
        "lines": VALID_LINES,
    },
    optional={
        "fulfilment": st.sampled_from(["all_or_nothing", "partial"]),
        "reservation_ttl": st.none(),
    },
)
# One change to a valid order: a top-level field or one line's field set to a value at or past
# a constraint, or a key dropped.
TOP_CHANGES = st.tuples(
    st.sampled_from(["type", "order_id", "lines", "fulfilment", "reservation_ttl", "note"]),
    st.one_of(
        IDS,
        ANY_VALUE,
        st.sampled_from(["OrderPaid", "OrderCancelled", "Other", "some", []]),
        st.sampled_from([30, 1.5, 0, -1.0, "5", 10**9, [], [1]]),
    ),
)
LINE_CHANGES = st.tuples(
    st.integers(0, 2),
    st.sampled_from(["product_id", "quantity", "note"]),
    st.one_of(IDS, QUANTITIES, ANY_VALUE),
)
DROPS = st.sampled_from(["type", "order_id", "lines", "fulfilment", "line.product_id"])


@st.composite
def orders(draw: st.DrawFn) -> dict[str, Any]:
    order: dict[str, Any] = draw(VALID)
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["top", "line", "drop"]))
        if kind == "top":
            key, value = draw(TOP_CHANGES)
            order[key] = value
        elif kind == "line" and isinstance(order.get("lines"), list) and order["lines"]:
            at, key, value = draw(LINE_CHANGES)
            lines = order["lines"]
            line = lines[at % len(lines)]
            if isinstance(line, dict):
                line[key] = value
            else:
                lines[at % len(lines)] = value
        elif kind == "drop":
            key = draw(DROPS)
            if key == "line.product_id":
                if isinstance(order.get("lines"), list) and order["lines"]:
                    first = order["lines"][0]
                    if isinstance(first, dict):
                        first.pop("product_id", None)
            else:
                order.pop(key, None)
    return order


EVENTS = orders()


def _agree(raw: bytes) -> Any:
    fast = parse_order(raw)
    full = parse(ORDER_EVENT_ADAPTER, raw)
    if isinstance(fast, Placed):
        assert isinstance(full, OrderPlaced), full
        assert fast.order_id == full.order_id
        assert [(line.product_id, line.quantity) for line in fast.lines] == [
            (line.product_id, line.quantity) for line in full.lines
        ]
        assert fast.fulfilment == full.fulfilment
        assert fast.reservation_ttl == full.reservation_ttl
    else:
        assert fast == full
    return fast


@settings(max_examples=1500, deadline=None, derandomize=True, database=None)
@given(event=EVENTS)
def test_orders_read_as_the_models_would(event: dict[str, Any]) -> None:
    _agree(json.dumps(event).encode())


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(event=EVENTS, cut=st.integers(0, 200), junk=st.binary(max_size=3))
def test_damaged_bytes_get_the_models_reason(event: dict[str, Any], cut: int, junk: bytes) -> None:
    raw = json.dumps(event).encode()
    _agree(raw[:cut] + junk)


def test_the_usual_order_is_read_plainly() -> None:
    raw = b'{"type":"OrderPlaced","order_id":"o-1","lines":[{"product_id":"sku-1","quantity":2}]}'
    placed = _agree(raw)
    assert isinstance(placed, Placed)
    assert (placed.order_id, placed.fulfilment, placed.reservation_ttl) == (
        "o-1",
        "all_or_nothing",
        None,
    )
    partial = _agree(
        b'{"type":"OrderPlaced","order_id":"o-2","fulfilment":"partial","reservation_ttl":null,'
        b'"lines":[{"product_id":"a","quantity":1},{"product_id":"b","quantity":3,"x":0}]}'
    )
    assert isinstance(partial, Placed) and partial.fulfilment == "partial"


def test_anything_unusual_goes_to_the_models() -> None:
    ttl = _agree(
        b'{"type":"OrderPlaced","order_id":"o","lines":[{"product_id":"a","quantity":1}],'
        b'"reservation_ttl":30}'
    )
    assert isinstance(ttl, OrderPlaced) and ttl.reservation_ttl == 30
    extra = _agree(
        b'{"type":"OrderPlaced","order_id":"o","lines":[{"product_id":"a","quantity":1}],"x":1}'
    )
    assert isinstance(extra, OrderPlaced)
    assert _agree(b"not json") == parse(ORDER_EVENT_ADAPTER, b"not json")
    assert isinstance(_agree(b'{"type":"OrderPlaced","order_id":"o","lines":[]}'), str)
    assert parse_order(None) == "record has no value (tombstone)"


def _variant(**changes: Any) -> bytes:
    order: dict[str, Any] = {
        "type": "OrderPlaced",
        "order_id": "o",
        "lines": [{"product_id": "p", "quantity": 1}],
    }
    line = changes.pop("line", {})
    order["lines"][0].update(line)
    order.update(changes)
    return json.dumps(order).encode()


@pytest.mark.parametrize(
    "raw",
    [
        _variant(order_id=order_id)
        for order_id in ["x" * 256, "x" * 257, "é" * 256, "é" * 257, "", 1, None]
    ]
    + [
        _variant(line={"product_id": product_id})
        for product_id in ["x" * 256, "x" * 257, "商" * 257, "", 1, None]
    ]
    + [
        _variant(line={"quantity": quantity})
        for quantity in [1_000_000_000, 1_000_000_001, 0, -1, True, 1.0, "1", None, 2**70]
    ]
    + [_variant(lines=lines) for lines in [[], {}, None, [1], [[]]]]
    + [
        _variant(fulfilment=fulfilment)
        for fulfilment in ["partial", "all_or_nothing", "some", None, [], 1]
    ]
    + [_variant(reservation_ttl=ttl) for ttl in [None, 30, 0.5, 0, -1, "5", 10**12]]
    + [_variant(type=kind) for kind in ["OrderPaid", "OrderCancelled", "orderplaced", None]]
    + [_variant(note=1), _variant(fulfilment="partial", reservation_ttl=None, note=1)]
    # A required field missing (the fast path leaves it to the models):
    + [
        b'{"order_id":"o","lines":[{"product_id":"p","quantity":1}]}',
        b'{"type":"OrderPlaced","lines":[{"product_id":"p","quantity":1}]}',
        b'{"type":"OrderPlaced","order_id":"o"}',
        b'{"type":"OrderPlaced","order_id":"o","lines":[{"quantity":1}]}',
        b'{"type":"OrderPlaced","order_id":"o","lines":[{"product_id":"p"}]}',
        b'{"type":"OrderPlaced","order_id":"o","fulfilment":"partial","note":1}',
    ],
)
def test_each_constraint_at_its_edge(raw: bytes) -> None:
    _agree(raw)
