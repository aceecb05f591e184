"""The processors' written-out paths for the usual single-line order, held to their general
paths: the order desk's new order (``OrderDesk._place_single`` against ``place()`` on the
model)."""

from __future__ import annotations

from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from stockflow.core.policy import Policy
from stockflow.models import ORDER_EVENT_ADAPTER
from stockflow.processing import orders as desk_module
from stockflow.processing.orders import OrderDesk
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
    general = OrderDesk(MemoryStore(), policy)
    for index, (order_id, product_id, quantity, fulfilment, ts, clock) in enumerate(orders):
        raw = order_placed(order_id, (product_id, quantity), fulfilment=fulfilment)
        offset = first_offset + index

        def at() -> Meta:
            return Meta("orders", partition, offset, ts, order_id.encode(), clock)  # noqa: B023

        with mock.patch.object(OrderDesk, "_place_single", wraps=fast._place_single) as spy:
            fast_step = fast.handle_order(raw, at())
        new = not any(earlier[0] == order_id for earlier in orders[:index])
        assert spy.call_count == (1 if new else 0)
        with mock.patch.object(desk_module, "parse_order", _as_model):
            general_step = general.handle_order(raw, at())
        assert _outs(fast_step.outputs) == _outs(general_step.outputs)
        assert fast.store.items() == general.store.items()
