"""The processors' written-out paths for the usual single-line order, held to their general
paths: the order desk's new order (``OrderDesk._place_single`` against ``place()`` on the
model) and the product writer's new reservation, a single-line order's or a saga's line
(against the core's decision, the stock record's own encoder and the public models)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stockflow.core.policy import Policy
from stockflow.core.stock import Stock, reserve
from stockflow.keys import entry_key, stock_key
from stockflow.models import (
    ORDER_EVENT_ADAPTER,
    LineAnswer,
    OrderReserved,
    ProductReserved,
    Reserve,
    ReservedLine,
    iso_from_ms,
)
from stockflow.processing.codec import encode, encode_entry, encode_stock_values
from stockflow.processing.order_input import Placed, parse_order
from stockflow.processing.orders import OrderDesk
from stockflow.processing.products import ProductWriter, log_position
from stockflow.processing.records import Meta, Out
from stockflow.processing.store import MemoryStore

from fixtures import JSON_IDS, order_placed

MS = st.integers(0, 2**47)  # ISO dates end at the year 9999

POLICIES = st.builds(
    Policy,
    reservation_ttl_ms=st.integers(1, 10**9),
    saga_timeout_ms=st.integers(1, 10**9),
    max_lines=st.integers(1, 5),
    expiry_bucket_ms=st.integers(1, 10_000),
    expiry_bucket_bytes=st.integers(1, 200),
)

ORDERS = st.lists(
    st.tuples(
        JSON_IDS,
        JSON_IDS,
        st.integers(1, 10**9),
        st.sampled_from([None, "all_or_nothing", "partial"]),
        MS,
        st.none() | MS,
    ),
    min_size=1,
    max_size=4,
)


def _as_model(raw: bytes | None) -> Any:
    """parse_order as the models read every order: the general path of handle_order."""
    return ORDER_EVENT_ADAPTER.validate_json(raw or b"")


def _outs(outputs: list[Out]) -> list[tuple[Any, ...]]:
    return [(out.role, out.key, out.value, out.partition) for out in outputs]


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(policy=POLICIES, orders=ORDERS, partition=st.integers(0, 50), first_offset=MS)
def test_a_new_single_line_order_is_placed_as_place_decides(
    policy: Policy,
    orders: list[tuple[str, str, int, str | None, int, int | None]],
    partition: int,
    first_offset: int,
) -> None:
    # Orders one after another in one partition (they may share an expiry timer, or fill it):
    # the desk reading them as plain values writes the same saga, timers and Reserve as the
    # desk deciding them through place() on the model, byte for byte.
    fast = OrderDesk(MemoryStore(), policy)
    general = OrderDesk(MemoryStore(), policy, parse=_as_model)
    assert fast._forwards_single  # so a new order read as plain values takes _place_single
    for index, (order_id, product_id, quantity, fulfilment, ts, clock) in enumerate(orders):
        raw = order_placed(order_id, (product_id, quantity), fulfilment=fulfilment)
        offset = first_offset + index

        def at() -> Meta:
            return Meta("orders", partition, offset, ts, order_id.encode(), clock)  # noqa: B023

        read = parse_order(raw)
        assert isinstance(read, Placed) and len(read.lines) == 1
        fast_step = fast.handle_order(raw, at())
        general_step = general.handle_order(raw, at())
        assert _outs(fast_step.outputs) == _outs(general_step.outputs)
        assert fast.store.items() == general.store.items()


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    order_id=JSON_IDS,
    product_id=JSON_IDS,
    quantity=st.integers(1, 1000),
    spare=st.integers(0, 1000),
    reserved=st.integers(0, 1000),
    next_seq=st.integers(0, 10**6),
    expires_at_ms=MS,
    ts=MS,
    offset=MS,
    partition=st.integers(0, 50),
    decides=st.booleans(),
)
def test_a_new_reservation_writes_and_publishes_as_decided(
    order_id: str,
    product_id: str,
    quantity: int,
    spare: int,
    reserved: int,
    next_seq: int,
    expires_at_ms: int,
    ts: int,
    offset: int,
    partition: int,
    decides: bool,
) -> None:
    # The writer's written-out new hold (no entry or decision built): the counters with a copy
    # of the entry, the entry, then ProductReserved and either the order's OrderReserved (a
    # single-line order its writer decides: Reserve.outcome and .decides) or the saga's line
    # answer (a saga's line: neither), as the core decided them and the models dump them.
    # Nothing else written.
    store = MemoryStore()
    before = Stock(reserved + quantity + spare, reserved, next_seq)
    skey, ekey = stock_key(product_id), entry_key(product_id, order_id)
    store.put(skey, encode_stock_values(before, None, None, 0, 0))
    command = Reserve(
        order_id=order_id,
        product_id=product_id,
        quantity=quantity,
        expires_at_ms=expires_at_ms,
        reply_partition=partition,
        outcome=decides,
        decides=decides,
    )
    step = ProductWriter(store, Policy()).handle(
        encode(command), Meta("product_commands", partition, offset, ts)
    )
    decided = reserve(
        before,
        None,
        order_id=order_id,
        product_id=product_id,
        quantity=quantity,
        expires_at_ms=expires_at_ms,
        now_ms=ts,
        held_at=log_position(offset, 0),
    )
    assert decided.stock is not None and decided.entry is not None
    entry = encode_entry(decided.entry)
    assert store.items() == {
        skey: encode_stock_values(decided.stock, ekey, entry.decode(), offset, ts),
        ekey: entry,
    }
    expires_at = iso_from_ms(expires_at_ms)
    key = order_id.encode()
    reserved = ProductReserved(
        order_id=order_id, product_id=product_id, quantity=quantity, expires_at=expires_at
    )
    if decides:
        outcome = OrderReserved(
            order_id=order_id,
            lines=[ReservedLine(product_id=product_id, quantity=quantity)],
            expires_at=expires_at,
        )
        last = ("reservations", key, encode(outcome), None)
    else:
        answer = LineAnswer(
            order_id=order_id, product_id=product_id, status="reserved", quantity=quantity
        )
        last = ("order_replies", key, encode(answer), partition)
    assert _outs(step.outputs) == [("reservations", key, encode(reserved), None), last]
